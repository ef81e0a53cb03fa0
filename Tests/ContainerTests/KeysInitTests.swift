import Foundation
import ShoalSupport
import Testing

/// `shoal keys init` (the compose file's init service) and `shoal health` (its healthchecks).
@Suite struct KeysInitTests {
    static func contents(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    @Test func initMakesEveryKeyOnceAndAllowsAllButTheCoordinator() async throws {
        let directory = NSTemporaryDirectory() + "shoal-keys-\(uniqueSuffix())/keys"
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        let names = ["coordinator", "infra", "validation", "cli"]
        let first = try await ProcessRunner().run(Package.shoal, ["keys", "init", directory] + names)
        #expect(first.succeeded, "\(first.standardError)")
        #expect(SecureFile.mode(of: directory) == 0o700)
        #expect(SecureFile.mode(of: directory + "/allow") == 0o700)
        for name in names {
            #expect(SecureFile.mode(of: "\(directory)/\(name).key") == 0o600, "\(name).key")
            #expect(FileManager.default.fileExists(atPath: "\(directory)/\(name).pub"), "\(name).pub")
        }
        let allowed = try FileManager.default.contentsOfDirectory(atPath: directory + "/allow").sorted()
        #expect(allowed == ["cli.pub", "infra.pub", "validation.pub"])
        for file in allowed {
            #expect(!Self.contents("\(directory)/allow/\(file)").contains("secret-key"), "\(file) is public only")
        }
        // A second run keeps every key: a restarted stack keeps its identities.
        let before = Self.contents(directory + "/infra.key")
        let second = try await ProcessRunner().run(Package.shoal, ["keys", "init", directory] + names)
        #expect(second.succeeded)
        #expect(second.standardOutput.contains("kept        \(directory)/infra.key"))
        #expect(Self.contents(directory + "/infra.key") == before)
    }

    @Test func initRefusesBadNamesWithOneLine() async throws {
        let directory = NSTemporaryDirectory() + "shoal-keys-\(uniqueSuffix())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for arguments in [[directory, "ok", "a;b"], [directory], [directory, "../escape"]] {
            let result = try await ProcessRunner().run(Package.shoal, ["keys", "init"] + arguments)
            #expect(result.status == 64, "\(arguments): \(result.standardError)")
            #expect(result.standardError.hasPrefix("Error: "), "\(result.standardError)")
        }
        #expect(!FileManager.default.fileExists(atPath: directory + "/ok.key"), "nothing is made on bad input")
    }

    @Test func healthFailsWithAReasonWhenNoCoordinatorAnswers() async throws {
        let directory = NSTemporaryDirectory() + "shoal-health-\(uniqueSuffix())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try await ProcessRunner().run(Package.shoal, ["keys", "init", directory, "coordinator", "cli"])
        #expect(made.succeeded)
        let keys = ["--key", directory + "/cli.key", "--coordinator-key", directory + "/coordinator.pub"]
        let badRole = try await ProcessRunner().run(
            Package.shoal, ["health", "--coordinator", "tcp://127.0.0.1:1", "--role", "nope"] + keys)
        #expect(badRole.status == 64, "\(badRole.standardError)")
        // Port 1 on loopback: nothing listens, so the check gives up with a reason and status 1.
        let down = try await ProcessRunner().run(
            Package.shoal, ["health", "--coordinator", "tcp://127.0.0.1:1"] + keys, timeout: .seconds(60))
        #expect(down.status == 1 && !down.timedOut, "\(down.standardError)")
        #expect(down.standardError.contains("no answer from the coordinator"), "\(down.standardError)")
    }
}
