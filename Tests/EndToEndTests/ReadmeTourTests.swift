import Foundation
import ShoalSupport
import Testing

extension EndToEndCommands {
    /// The README's short tour, command by command, as a reader would type it: `shoal` on PATH, in a directory of
    /// its own, the tour's example workflow id replaced by the one the first `create` printed.
    @Suite struct ReadmeTourTests {
        /// The example id the tour's lines use.
        static let exampleID = "k3s-dev-1a2b3c"

        static func tour() throws -> [String] {
            let readme = try String(contentsOfFile: Shoal.packageRoot + "/README.md", encoding: .utf8)
            guard let heading = readme.range(of: "## A short tour"),
                let open = readme.range(of: "```sh\n", range: heading.upperBound..<readme.endIndex),
                let close = readme.range(of: "\n```", range: open.upperBound..<readme.endIndex)
            else { throw ShoalError(.invalidInput, "README.md has no tour block") }
            return readme[open.upperBound..<close.lowerBound].split(separator: "\n").map(String.init)
                .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        }

        @Test(.timeLimit(.minutes(5)))
        func everyCommandOfTheTourWorksAsWritten() async throws {
            let lines = try Self.tour()
            #expect(lines.count >= 8, "the tour: \(lines)")
            let directory = Shoal.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let bin = directory + "/bin"
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: bin + "/shoal", withDestinationPath: Shoal.executable)
            let environment = [
                "PATH": bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                "HOME": directory, "KUBECONFIG": directory + "/kubeconfig",
            ]
            var workflow: String?
            var ran = 0
            for line in lines {
                // A real deployment needs lab hosts this machine does not have: the one line not run here.
                if line.contains("--real-deployment") { continue }
                let command = workflow.map { line.replacingOccurrences(of: Self.exampleID, with: $0) } ?? line
                let result = try await ProcessRunner().run(
                    "bash", ["-c", command], workingDirectory: directory, environment: environment,
                    timeout: .seconds(120))
                #expect(
                    result.succeeded,
                    "\(command)\nexit \(result.status)\n\(result.standardOutput.suffix(2000))\n\(result.standardError.suffix(2000))")
                guard result.succeeded else { return }
                if workflow == nil, command.hasPrefix("shoal create") {
                    workflow = try #require(Shoal.workflowID(in: result.standardOutput), "\(result.standardOutput)")
                }
                #expect(workflow != nil || !line.contains(Self.exampleID), "an id before: \(line)")
                ran += 1
            }
            #expect(ran == lines.count - lines.filter { $0.contains("--real-deployment") }.count)
            let id = try #require(workflow)
            #expect(FileManager.default.fileExists(atPath: "\(directory)/output/reports/\(id)/index.html"))
            let status = try await ProcessRunner().run(
                "bash", ["-c", "shoal status \(id) -d output"], workingDirectory: directory, environment: environment)
            #expect(status.standardOutput.contains("workflow \(id): destroyed"), "\(status.standardOutput)")
        }
    }
}
