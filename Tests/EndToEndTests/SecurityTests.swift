import Coordinator
import Foundation
import Protocol
import ShoalSupport
import Testing

/// Every regular file under `root`, recursively (`.git` included).
private func files(under root: String) -> [String] {
    guard let enumerator = FileManager.default.enumerator(atPath: root) else { return [] }
    var found: [String] = []
    while let relative = enumerator.nextObject() as? String {
        var isDirectory: ObjCBool = false
        let path = root + "/" + relative
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
            found.append(path)
        }
    }
    return found
}

private func contents(_ path: String) -> Data { FileManager.default.contents(atPath: path) ?? Data() }

/// Every run of base64 characters (16 or more) in `data`, decoded: JSON carries `Data` as base64, so a secret
/// can hide in a file without its bytes appearing there.
func decodedBase64Runs(in data: Data) -> [Data] {
    func isBase64(_ byte: UInt8) -> Bool {
        (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || (byte >= 48 && byte <= 57) || byte == 43
            || byte == 47 || byte == 61
    }
    var decoded: [Data] = []
    let bytes = [UInt8](data)
    var start = 0
    while start < bytes.count {
        guard isBase64(bytes[start]) else {
            start += 1
            continue
        }
        var end = start
        while end < bytes.count && isBase64(bytes[end]) { end += 1 }
        if end - start >= 16 {
            let run = String(decoding: bytes[start..<end], as: UTF8.self).replacingOccurrences(of: "=", with: "")
            // Every alignment, since a run may start mid-token (a JSON key or a prefix glued to it).
            for offset in 0..<4 where offset < run.count {
                var text = String(run.dropFirst(offset))
                if text.count % 4 == 1 { text.removeLast() }
                while text.count % 4 != 0 { text += "=" }
                if let data = Data(base64Encoded: text) { decoded.append(data) }
            }
        }
        start = end
    }
    return decoded
}

/// The one line of an error, and that there is only one.
private func oneLineError(_ result: ProcessResult) -> String? {
    let lines = result.standardError.split(separator: "\n").filter { $0.hasPrefix("Error") || $0.hasPrefix("error") }
    return lines.count == 1 ? String(lines[0]) : nil
}

@Suite(.serialized) struct SecurityEndToEndTests {
    @Test func aDemoRunLeavesNoSecretOnScreenInLogsInTheJournalOrInTerraform() async throws {
        let output = Shoal.temporaryDirectory() + "/out"
        let result = try await Shoal.run(["create", "-n", "2", "-d", output, "--log-level", "debug"])
        #expect(result.status == 0, "stdout: \(result.standardOutput)\nstderr: \(result.standardError)")
        let workflow = try #require(Shoal.workflowID(in: result.standardOutput))
        let credentials = "\(output)/kubeconfigs/\(workflow)"

        // The secrets, from the 0600 files that hold them...
        var secrets: [String: String] = [:]
        for name in ["argocd-admin-password", "grafana-admin-password", "gitops-push-password"] {
            #expect(SecureFile.mode(of: "\(credentials)/\(name)") == 0o600, "\(name)")
            secrets[name] = String(decoding: contents("\(credentials)/\(name)"), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        for file in try FileManager.default.contentsOfDirectory(atPath: credentials) {
            #expect(SecureFile.mode(of: "\(credentials)/\(file)") == 0o600, "\(file)")
        }
        let kubeconfig = String(decoding: contents("\(credentials)/kubeconfig"), as: UTF8.self)
        let tokenLine = try #require(kubeconfig.split(separator: "\n").first { $0.contains("token:") })
        secrets["kubeconfig token"] = tokenLine.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(
            in: .whitespaces)
        // ...and the K3s join token, which no file holds: the coordinator's
        // journal has it, sealed; its own key opens it.
        let journal = try Journal(path: "\(output)/.shoal/journal.sqlite")
        let provisionArtifacts = try journal.artifacts(workflow: workflow, steps: ["provision"]).map(\.artifact)
        let token = try #require(provisionArtifacts.first { $0.name == "k3s-token" })
        #expect(token.sensitive)
        secrets["k3s token"] = token.text.trimmingCharacters(in: .whitespacesAndNewlines)
        for (name, secret) in secrets { #expect(secret.count >= 16, "\(name) looks like a real secret") }

        // Where secrets may be: the credential files in kubeconfigs/<workflow>/.
        // Nowhere else in the output tree, the journal and the logs included.
        let allowed = Set([
            "argocd-admin-password", "grafana-admin-password", "gitops-push-password", "kubeconfig",
            "simulated-cluster.json",
        ])
        var checked = 0
        for path in files(under: output) {
            if path.hasPrefix(credentials + "/"), allowed.contains((path as NSString).lastPathComponent) { continue }
            let data = contents(path)
            checked += 1
            let decoded = decodedBase64Runs(in: data)
            for (name, secret) in secrets {
                #expect(data.range(of: Data(secret.utf8)) == nil, "\(name) found in \(path)")
                #expect(
                    !decoded.contains { $0.range(of: Data(secret.utf8)) != nil }, "\(name) found base64 in \(path)")
            }
        }
        // The agents' records were among those files: they exist, and secrets are in them only sealed.
        #expect(files(under: "\(output)/.shoal/agents").contains { $0.hasSuffix("infra-1.results.jsonl") })
        #expect(checked > 20)
        for (name, secret) in secrets {
            #expect(!result.standardOutput.contains(secret), "\(name) on standard output")
            #expect(!result.standardError.contains(secret), "\(name) on standard error")
        }
        // The GitOps repository's history: git stores objects compressed, so ask git.
        let repository = "\(output)/gitops/\(workflow)"
        for (name, secret) in secrets {
            let grep = try await ProcessRunner().run("git", ["-C", repository, "grep", "-F", "-e", secret, "HEAD"])
            #expect(grep.status == 1 && grep.standardOutput.isEmpty, "\(name) committed to the GitOps repository")
        }
        // The journal holds sealed rows, not clear ones.
        let raw = contents("\(output)/.shoal/journal.sqlite") + contents("\(output)/.shoal/journal.sqlite-wal")
        #expect(raw.range(of: Data("shoal-sealed-1:".utf8)) != nil)

        // Modes: the journal, its key, the throwaway keys.
        #expect(SecureFile.mode(of: "\(output)/.shoal") == 0o700)
        #expect(SecureFile.mode(of: "\(output)/.shoal/journal.sqlite") == 0o600)
        #expect(SecureFile.mode(of: "\(output)/.shoal/journal.sqlite.key") == 0o600)
        #expect(SecureFile.mode(of: "\(output)/.shoal/logs") == 0o700)
        #expect(SecureFile.mode(of: credentials) == 0o700)
        let keys = "\(output)/.shoal/keys"
        #expect(SecureFile.mode(of: keys) == 0o700)
        #expect(SecureFile.mode(of: "\(keys)/allow") == 0o700)
        let keyFiles = try FileManager.default.contentsOfDirectory(atPath: keys)
        let secretKeys = keyFiles.filter { $0.hasSuffix(".key") }
        #expect(Set(secretKeys).isSuperset(of: ["coordinator.key", "client.key", "planner-1.key", "validation-2.key"]))
        for file in secretKeys { #expect(SecureFile.mode(of: "\(keys)/\(file)") == 0o600, "\(file)") }
        let allowList = try FileManager.default.contentsOfDirectory(atPath: "\(keys)/allow").sorted()
        #expect(allowList.contains("client.pub") && allowList.contains("infra-1.pub"))
        #expect(!allowList.contains("coordinator.pub"), "the coordinator's own key is no peer's")
        #expect(!allowList.contains { $0.hasSuffix(".key") })
        for file in allowList {
            #expect(!String(decoding: contents("\(keys)/allow/\(file)"), as: UTF8.self).contains("secret-key"))
        }
        // The bus ran with CURVE: the coordinator says so by saying nothing of --insecure.
        let coordinatorLog = String(decoding: contents("\(output)/.shoal/logs/coordinator.log"), as: UTF8.self)
        #expect(coordinatorLog.contains("allow-list loaded"))
        #expect(!coordinatorLog.contains("bus security off"))
    }

    @Test func insecureIsExplicitAndWarns() async throws {
        let output = Shoal.temporaryDirectory() + "/out"
        let result = try await Shoal.run(["create", "-n", "1", "--insecure", "-d", output])
        #expect(result.status == 0, "\(result.standardError)")
        #expect(result.standardError.contains("warning: --insecure"))
        let coordinatorLog = String(decoding: contents("\(output)/.shoal/logs/coordinator.log"), as: UTF8.self)
        #expect(coordinatorLog.contains("bus security off"))
    }

    @Test(arguments: [
        (["create", "-n", "2", "--hosts", "a;rm -rf /"], "invalid host 'a;rm -rf /'"),
        (["create", "-n", "2", "--hosts", "u@h;reboot,u@b"], "invalid host 'u@h;reboot'"),
        (["create", "--argocd-version", "v3;id"], "invalid --argocd-version 'v3;id'"),
        (["status", "../etc"], "invalid workflow id '../etc'"),
        (["status", "k3s-dev-1/../../x"], "invalid workflow id"),
        (["keys", "generate", "../evil"], "invalid key name '../evil'"),
    ])
    func hostileInputIsRefusedWithOneLine(arguments: [String], message: String) async throws {
        let directory = Shoal.temporaryDirectory()
        let place = arguments[0] == "keys" ? ["--dir", directory] : ["-d", directory]
        let result = try await Shoal.run(arguments + place)
        #expect(result.status != 0)
        let line = try #require(oneLineError(result), "\(result.standardError)")
        #expect(line.contains(message), "\(line)")
        #expect(!result.standardError.contains("Fatal error"))
        // Nothing was created from the hostile value.
        #expect(!FileManager.default.fileExists(atPath: directory + "/../evil.key"))
    }

    @Test func keysAreGeneratedAllowedListedAndRevoked() async throws {
        let directory = Shoal.temporaryDirectory()
        let generated = try await Shoal.run(["keys", "generate", "infra-7", "--dir", directory + "/keys"])
        #expect(generated.status == 0, "\(generated.standardError)")
        #expect(SecureFile.mode(of: directory + "/keys") == 0o700)
        #expect(SecureFile.mode(of: directory + "/keys/infra-7.key") == 0o600)
        #expect(SecureFile.mode(of: directory + "/keys/infra-7.pub") == 0o644)
        let secret = try KeyFile.loadSecret(directory + "/keys/infra-7.key")
        #expect(generated.standardOutput.contains(secret.publicKey))
        #expect(!generated.standardOutput.contains(secret.secretKey!), "the secret key is never printed")
        let again = try await Shoal.run(["keys", "generate", "infra-7", "--dir", directory + "/keys"])
        #expect(again.status != 0 && again.standardError.contains("--force"), "an existing key is not overwritten")

        let allow = directory + "/allow"
        let allowed = try await Shoal.run(["keys", "allow", directory + "/keys/infra-7.pub", "--allow", allow])
        #expect(allowed.status == 0, "\(allowed.standardError)")
        #expect(try KeyFile.loadPublic(allow + "/infra-7.pub").publicKey == secret.publicKey)
        // Handing it the secret file copies only the public half.
        let fromSecret = try await Shoal.run(["keys", "allow", directory + "/keys/infra-7.key", "--allow", allow])
        #expect(fromSecret.status == 0)
        #expect(!String(decoding: contents(allow + "/infra-7.pub"), as: UTF8.self).contains("secret-key"))
        let listed = try await Shoal.run(["keys", "list", "--allow", allow])
        #expect(listed.standardOutput.contains("infra-7"))
        #expect(listed.standardOutput.contains(secret.publicKey))
        let revoked = try await Shoal.run(["keys", "revoke", "infra-7", "--allow", allow])
        #expect(revoked.status == 0, "\(revoked.standardError)")
        #expect(!FileManager.default.fileExists(atPath: allow + "/infra-7.pub"))
        let unknown = try await Shoal.run(["keys", "revoke", "infra-7", "--allow", allow])
        #expect(unknown.status != 0 && oneLineError(unknown) != nil)
    }

    @Test func helpShowsTheSecurityOptions() async throws {
        let cases: [([String], [String])] = [
            (["coordinator", "--help"], ["--key", "--allow", "--insecure"]),
            (["agent", "--help"], ["--key", "--coordinator-key", "--insecure"]),
            (["create", "--help"], ["--key", "--coordinator-key", "--insecure"]),
            (["status", "--help"], ["--key", "--coordinator-key", "--insecure"]),
            (["list", "--help"], ["--key", "--coordinator-key", "--insecure"]),
            (["keys", "--help"], ["generate", "list", "allow", "revoke"]),
            (["keys", "generate", "--help"], ["--dir", "--force"]),
            (["keys", "revoke", "--help"], ["--allow"]),
        ]
        for (arguments, options) in cases {
            let help = try await Shoal.run(arguments)
            for option in options { #expect(help.standardOutput.contains(option), "\(arguments): \(option)") }
        }
    }

    @Test func badKeyFilesAreOneLineErrors() async throws {
        let directory = Shoal.temporaryDirectory()
        _ = try await Shoal.run(["keys", "generate", "coordinator", "--dir", directory])
        _ = try await Shoal.run(["keys", "generate", "agent-1", "--dir", directory])
        try FileManager.default.createDirectory(atPath: directory + "/allow", withIntermediateDirectories: true)
        let coordinator = ["coordinator", "--journal", directory + "/j.sqlite", "--allow", directory + "/allow"]
        let missingKey = try await Shoal.run(["coordinator"])
        #expect(oneLineError(missingKey)?.contains("--key is required") == true, "\(missingKey.standardError)")
        let absent = try await Shoal.run(coordinator + ["--key", directory + "/nope.key"])
        #expect(oneLineError(absent)?.contains("does not exist") == true, "\(absent.standardError)")
        chmod(directory + "/coordinator.key", 0o644)
        let exposed = try await Shoal.run(coordinator + ["--key", directory + "/coordinator.key"])
        #expect(oneLineError(exposed)?.contains("chmod 600") == true, "\(exposed.standardError)")
        try SecureFile.write(
            "format: shoal-curve-1\nname: x\npublic-key: short\n", to: directory + "/bad.key", mode: 0o600)
        let malformed = try await Shoal.run(coordinator + ["--key", directory + "/bad.key"])
        #expect(oneLineError(malformed)?.contains("not a valid shoal key file") == true, "\(malformed.standardError)")
        let agent = try await Shoal.run([
            "agent", "docs", "--coordinator", "tcp://127.0.0.1:9", "--key", directory + "/agent-1.key",
        ])
        #expect(oneLineError(agent)?.contains("--coordinator-key is required") == true, "\(agent.standardError)")
        let both = try await Shoal.run([
            "list", "--coordinator", "tcp://127.0.0.1:9", "--insecure", "--key", directory + "/agent-1.key",
        ])
        #expect(oneLineError(both)?.contains("--insecure cannot be combined") == true, "\(both.standardError)")
    }

    @Test func separateProcessesTalkCURVEAndAnUnlistedAgentIsRefused() async throws {
        let directory = Shoal.temporaryDirectory()
        let keys = directory + "/keys"
        let allow = directory + "/allow"
        for name in ["coordinator", "alice", "planner-x", "stranger"] {
            let made = try await Shoal.run(["keys", "generate", name, "--dir", keys])
            #expect(made.status == 0)
        }
        for name in ["alice", "planner-x"] {
            _ = try await Shoal.run(["keys", "allow", "\(keys)/\(name).pub", "--allow", allow])
        }
        let coordinator = Process()
        coordinator.executableURL = URL(fileURLWithPath: Shoal.executable)
        coordinator.arguments = [
            "coordinator", "--control", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*", "--journal",
            directory + "/journal.sqlite", "--dir", directory + "/out", "--key", "\(keys)/coordinator.key",
            "--allow", allow,
        ]
        let stdout = Pipe()
        let logPath = directory + "/coordinator.log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        coordinator.standardOutput = stdout
        coordinator.standardError = FileHandle(forWritingAtPath: logPath)
        try coordinator.run()
        defer {
            coordinator.terminate()
            coordinator.waitUntilExit()
        }
        var ready = ""
        while !ready.contains("\n") {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            ready += String(decoding: chunk, as: UTF8.self)
        }
        let control = try #require(ready.split(separator: " ").first { $0.hasPrefix("control=") }?.dropFirst(8))
            .trimmingCharacters(in: .whitespacesAndNewlines)

        let client = ["--coordinator", control, "--coordinator-key", "\(keys)/coordinator.pub"]
        let listed = try await Shoal.run(["list"] + client + ["--key", "\(keys)/alice.key"])
        #expect(listed.status == 0, "\(listed.standardError)")
        #expect(listed.standardOutput.hasPrefix("WORKFLOW"))
        let refused = try await Shoal.run(["list"] + client + ["--key", "\(keys)/stranger.key"], timeout: .seconds(30))
        #expect(oneLineError(refused)?.contains("refused this client's key") == true, "\(refused.standardError)")
        let plain = try await Shoal.run(["list", "--coordinator", control, "--insecure"], timeout: .seconds(30))
        #expect(plain.standardError.contains("warning: --insecure"))
        #expect(oneLineError(plain)?.contains("requires CURVE") == true, "\(plain.standardError)")

        // An agent whose key is not allowed is refused, and both sides say so.
        let agent = try await Shoal.run(
            ["agent", "planner", "--id", "planner-s", "--key", "\(keys)/stranger.key"] + client,
            timeout: .seconds(3))
        #expect(agent.timedOut, "the agent keeps trying until stopped")
        #expect(agent.standardError.contains("coordinator refused this agent's key"), "\(agent.standardError)")
        let log = String(decoding: contents(logPath), as: UTF8.self)
        #expect(log.contains("connection refused"))
        #expect(log.contains("reason=unknown-key"))
        let strangerKey = try KeyFile.loadPublic("\(keys)/stranger.pub").publicKey
        #expect(log.contains(strangerKey))
    }
}
