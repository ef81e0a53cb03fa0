import AgentRuntime
import Foundation
import Logging
import Protocol
import ShoalSupport
import Testing

@testable import Agents

/// Paths beside the package: the stand-ins of this repository and the recorded fixtures (`../shared/fixtures`).
enum Paths {
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // Support.swift, AgentsTests, Tests
        return url.path
    }()
    static var standIns: String { packageRoot + "/Tests/Fixtures/standins" }
    static var recorded: String { (packageRoot as NSString).deletingLastPathComponent + "/shared/fixtures" }

    static func recordedText(_ relative: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: recorded + "/" + relative) else {
            throw ShoalError(.notFound, "recorded fixture \(relative) is missing in \(recorded)")
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// A private copy of the stand-in `kubectl`, `terraform`, `sudo` and `curl` with their answers, plus the recorded
/// Prometheus and Grafana answers.
struct StandIns {
    let directory: String

    init() throws {
        directory = temporaryDirectory("shoal-standins")
        for name in try FileManager.default.contentsOfDirectory(atPath: Paths.standIns) {
            let data = try Data(contentsOf: URL(fileURLWithPath: Paths.standIns + "/" + name))
            let executable = ["kubectl", "terraform", "sudo", "curl"].contains(name)
            try SecureFile.write(data, to: directory + "/" + name, mode: executable ? 0o755 : 0o644)
        }
        try answer("raw-ready.out", Paths.recordedText("prometheus/ready-200.txt"))
        try answer("raw-targets.json", Paths.recordedText("prometheus/api-v1-targets-openapi-golden-example.json"))
        try answer("raw-health.json", Paths.recordedText("grafana/api-health-200-docs-example.json"))
    }

    var kubectl: String { directory + "/kubectl" }
    var terraform: String { directory + "/terraform" }

    /// Writes an answer file (`KEY.json`, `KEY.out` or `KEY.stderr`).
    func answer(_ file: String, _ text: String) throws { try SecureFile.write(text, to: directory + "/" + file) }
    func remove(_ file: String) { try? FileManager.default.removeItem(atPath: directory + "/" + file) }
    func text(_ file: String) -> String {
        (try? String(contentsOfFile: directory + "/" + file, encoding: .utf8)) ?? ""
    }

    /// kubectl's calls without the `--kubeconfig PATH --request-timeout Ns` every call starts with.
    func kubectlCalls() -> [String] {
        text("calls.log").split(separator: "\n").map { line in
            var words = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            if words.first == "--kubeconfig" { words.removeFirst(2) }
            if words.first == "--request-timeout" { words.removeFirst(2) }
            return words.joined(separator: " ")
        }
    }

    /// The kubeconfig paths kubectl was given.
    func kubeconfigPaths() -> Set<String> {
        Set(
            text("calls.log").split(separator: "\n").compactMap { line in
                let words = line.split(separator: " ")
                return words.first == "--kubeconfig" && words.count > 1 ? String(words[1]) : nil
            })
    }

    func terraformCalls() -> [String] { text("terraform-calls.log").split(separator: "\n").map(String.init) }

    func options(workDirectory: String) -> AgentOptions {
        var options = AgentOptions(workDirectory: workDirectory)
        options.kubectlExecutable = kubectl
        options.terraformExecutable = terraform
        options.kubectlTimeout = .seconds(10)
        return options
    }

    func delete() { try? FileManager.default.removeItem(atPath: directory) }
}

func temporaryDirectory(_ prefix: String = "shoal-agents") -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
    try? SecureFile.createDirectory(path, mode: 0o700)
    return path
}

/// A step as the coordinator would hand it to an agent.
func stepContext(
    _ step: String, role: Role, request: WorkflowRequest, workflow: String = "shoal",
    inputs: [String: [String: JSONValue]] = [:], artifacts: [Artifact] = [], params: [String: JSONValue] = [:]
) -> StepContext {
    StepContext(
        key: StepKey(workflow: workflow, step: step, attempt: 1),
        assignment: StepAssignment(role: role, request: request, params: params, inputs: inputs, artifacts: []),
        artifacts: artifacts, agentID: "\(role.rawValue)-test", logger: Logger(label: "test"))
}

/// The JSON object of typed params or an output, as a step's assignment carries it.
func object<T: Encodable>(_ value: T, step: StepName) throws -> [String: JSONValue] {
    try StepContract.object(value, step: step)
}

/// A real-mode request for the local target with short waits.
func realRequest(target: Target = .local, waitSeconds: Int = 2) -> WorkflowRequest {
    var request = WorkflowRequest()
    request.realDeployment = true
    request.target = target
    request.nodes = 1
    request.waitTimeoutSeconds = waitSeconds
    return request
}

/// The kubeconfig artifact the provision step hands on.
func kubeconfigArtifact() throws -> Artifact {
    let text = try String(contentsOfFile: Paths.standIns + "/kubeconfig.yaml", encoding: .utf8)
    return Artifact(name: "kubeconfig", path: "kubeconfigs/shoal/kubeconfig", sensitive: true, text: text)
}

/// Whether an external tool is there; a missing tool fails under CI and is skipped loudly otherwise.
func requireTool(_ name: String) -> Bool {
    if ProcessRunner.locate(name) != nil { return true }
    if ProcessInfo.processInfo.environment["CI"] != nil {
        Issue.record("\(name) is required when CI is set, but it is not on PATH")
    } else {
        print("SKIPPED: \(name) is not installed; this test needs it (set CI=1 to make this a failure)")
    }
    return false
}
