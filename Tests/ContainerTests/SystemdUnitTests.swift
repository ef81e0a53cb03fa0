import Foundation
import ShoalSupport
import Testing

/// contrib/systemd: the unit files pass `systemd-analyze verify` without a warning, and every option their
/// ExecStart gives shoal is one shoal knows.
@Suite struct SystemdUnitTests {
    static let units: [(name: String, command: String)] = [
        ("shoal-coordinator.service", "coordinator"), ("shoal-agent@.service", "agent"),
    ]

    /// The unit file with ExecStart pointing at this build's binary (verify checks that the program exists).
    static func copy(_ name: String, to directory: String) throws {
        let text = try String(contentsOfFile: Package.root + "/contrib/systemd/" + name, encoding: .utf8)
        let path = directory + "/" + name
        try SecureFile.write(text.replacingOccurrences(of: "/usr/local/bin/shoal", with: Package.shoal), to: path)
    }

    @Test func unitsPassSystemdAnalyzeVerify() async throws {
        guard ProcessRunner.locate("systemd-analyze") != nil else {
            unavailable("systemd-analyze is not installed")
            return
        }
        let directory = NSTemporaryDirectory() + "shoal-units-\(uniqueSuffix())"
        try SecureFile.createDirectory(directory, mode: 0o700)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for unit in Self.units { try Self.copy(unit.name, to: directory) }
        for unit in ["shoal-coordinator.service", "shoal-agent@infra-1.service"] {
            let result = try await ProcessRunner().run(
                "systemd-analyze", ["verify", "--man=no", "\(directory)/\(unit)"], timeout: .seconds(60))
            #expect(result.succeeded, "\(unit): \(result.standardError)")
            let warnings = result.standardError.split(separator: "\n").filter { !$0.contains("Failed to connect") }
            #expect(warnings.isEmpty, "\(unit) verifies without warnings: \(warnings)")
        }
    }

    @Test(arguments: units)
    func execStartUsesOptionsShoalKnows(unit: (name: String, command: String)) async throws {
        let text = try String(contentsOfFile: Package.root + "/contrib/systemd/" + unit.name, encoding: .utf8)
        let joined = text.replacingOccurrences(of: "\\\n", with: " ")
        let execStart = try #require(joined.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        let words = execStart.dropFirst("ExecStart=".count).split(separator: " ").map(String.init)
        #expect(words.first == "/usr/local/bin/shoal" && words.dropFirst().first == unit.command, "\(execStart)")
        let options = words.filter { $0.hasPrefix("--") }
        #expect(options.count >= 4, "\(execStart)")
        let help = try await ProcessRunner().run(Package.shoal, [unit.command, "--help"], timeout: .seconds(30))
        for option in options {
            #expect(help.standardOutput.contains(option + " "), "shoal \(unit.command) has \(option)")
        }
        #expect(text.contains("WantedBy=multi-user.target"), "enabled units start at boot")
        #expect(text.contains("Restart=always"), "a crashed service comes back")
        #expect(text.contains("StateDirectory=shoal/"), "state survives a restart")
    }
}
