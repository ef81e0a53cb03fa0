import Foundation
import ShoalSupport
import Testing

/// The shoal executable built next to this test bundle.
enum Shoal {
    static var executable: String {
        let bundle = Bundle.main.bundleURL.deletingLastPathComponent()
        let candidates = [bundle.appendingPathComponent("shoal").path, packageRoot + "/.build/debug/shoal"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[1]
    }

    static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// Runs shoal with arguments and a timeout.
    static func run(_ arguments: [String], timeout: Duration = .seconds(60), environment: [String: String] = [:]) async throws
        -> ProcessResult
    {
        try await ProcessRunner().run(executable, arguments, environment: environment, timeout: timeout)
    }

    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "shoal-e2e-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The workflow id printed by `shoal create`.
    static func workflowID(in output: String) -> String? {
        output.split(separator: "\n").first { $0.hasPrefix("workflow ") && $0.hasSuffix(" submitted") }
            .map { String($0.split(separator: " ")[1]) }
    }
}

/// Processes whose command line mentions `marker`.
func processes(mentioning marker: String) -> [(pid: Int32, command: String)] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    var found: [(Int32, String)] = []
    for entry in entries {
        guard let pid = Int32(entry), pid != getpid(),
            let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
        else { continue }
        let command = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        if command.contains(marker) { found.append((pid, command)) }
    }
    return found
}
