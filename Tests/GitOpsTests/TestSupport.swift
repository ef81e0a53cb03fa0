import Foundation
import ShoalSupport
import Testing
import Yams

@testable import GitOps

/// External validators: present, or the test fails under CI and says loudly why it is skipped elsewhere.
enum Tools {
    static var isCI: Bool { !(ProcessInfo.processInfo.environment["CI"] ?? "").isEmpty }

    static func missing(_ why: String, sourceLocation: SourceLocation = #_sourceLocation) {
        if isCI {
            Issue.record("\(why) (CI is set, so this is a failure)", sourceLocation: sourceLocation)
        } else {
            print("SKIPPED (\(sourceLocation.fileName):\(sourceLocation.line)): \(why)")
        }
    }

    /// Whether the program is on PATH.
    static func available(_ name: String, install: String, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        if ProcessRunner.locate(name) != nil { return true }
        missing("\(name) is not installed; install it with: \(install)", sourceLocation: sourceLocation)
        return false
    }

    /// Whether python3 can import every module.
    static func pythonModules(_ modules: [String], install: String, sourceLocation: SourceLocation = #_sourceLocation)
        async -> Bool
    {
        guard available("python3", install: "apt-get install -y python3", sourceLocation: sourceLocation) else {
            return false
        }
        let result = try? await ProcessRunner().run(
            "python3", ["-c", "import " + modules.joined(separator: ", ")], timeout: .seconds(60))
        if result?.succeeded == true { return true }
        missing("python modules \(modules) are missing; install them with: \(install)", sourceLocation: sourceLocation)
        return false
    }
}

/// The package root, from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// A fresh directory, removed by the caller.
func makeTemporaryDirectory() throws -> String {
    var template = Array((NSTemporaryDirectory() + "/shoal-gitops-XXXXXX").utf8CString)
    guard let pointer = mkdtemp(&template) else { throw ShoalError(.io, "mkdtemp failed") }
    return String(cString: pointer)
}

func removeDirectory(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// A git runner that sees no global or system git configuration.
func isolatedRunner(home: String) -> ProcessRunner {
    ProcessRunner(environment: [
        "HOME": home, "XDG_CONFIG_HOME": home, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
    ])
}

/// All YAML documents of a text, as dictionaries.
func yamlDocuments(_ text: String) throws -> [[String: Any]] {
    try Yams.load_all(yaml: text).compactMap { $0 as? [String: Any] }
}

/// Every document of every file, with its file.
func allDocuments(_ files: [ManifestFile]) throws -> [(file: String, doc: [String: Any])] {
    try files.flatMap { file in try yamlDocuments(file.contents).map { (file.path, $0) } }
}

func kind(_ doc: [String: Any]) -> String { doc["kind"] as? String ?? "" }
func name(_ doc: [String: Any]) -> String { (doc["metadata"] as? [String: Any])?["name"] as? String ?? "" }

/// Follows a path of dictionary keys.
func value(_ doc: Any?, _ path: String...) -> Any? {
    var current = doc
    for key in path { current = (current as? [String: Any])?[key] }
    return current
}

/// The pod template spec of a workload, or nil for other kinds.
func podSpec(_ doc: [String: Any]) -> [String: Any]? {
    guard ["Deployment", "DaemonSet", "StatefulSet"].contains(kind(doc)) else { return nil }
    return value(doc, "spec", "template", "spec") as? [String: Any]
}

func containers(_ doc: [String: Any]) -> [[String: Any]] {
    (podSpec(doc)?["containers"] as? [[String: Any]] ?? [])
        + (podSpec(doc)?["initContainers"] as? [[String: Any]] ?? [])
}

/// Writes files into a new directory and returns their absolute paths.
func writeFiles(_ files: [ManifestFile], into directory: String) throws -> [String] {
    try files.map { file in
        let path = "\(directory)/\(file.path)"
        try SecureFile.write(file.contents, to: path)
        return path
    }
}

/// The whole GitOps repository shoal lays out for a cluster: monitoring manifests and the App of Apps.
func gitOpsFiles(instance: String = "lab", headlamp: Bool = true, repoURL: String = "http://10.0.0.5:8418/lab")
    -> (files: [ManifestFile], root: ManifestFile)
{
    let monitoring = MonitoringStack.render(MonitoringStackSpec(instance: instance, headlamp: headlamp))
    let apps = ArgoApplications.appOfApps(
        repoURL: repoURL, components: [(name: "monitoring", path: "monitoring", namespace: "monitoring")])
    return (monitoring + apps.children + [apps.root], apps.root)
}
