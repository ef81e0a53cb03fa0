import Coordinator
import Foundation
import ShoalSupport
import Testing

/// A coordinator and one agent per role as separate `shoal` processes on loopback with CURVE keys, each agent
/// in a work directory of its own (as on separate hosts), and a client that reaches them only through the
/// coordinator.
final class RemoteLab {
    let directory: String
    let keys: String
    let standIns: StandInDirectory
    private(set) var control = ""
    private var processes: [String: Process] = [:]
    private var gitServer: GitServerStandIn?

    init(pinnedWait: String = "2s") throws {
        directory = Shoal.temporaryDirectory()
        keys = directory + "/keys"
        standIns = try StandInDirectory()
        let coordinatorKey = try KeyFile.generate(name: "coordinator", directory: keys)
        _ = coordinatorKey
        for name in ["agents", "client"] {
            let pair = try KeyFile.generate(name: name, directory: keys)
            try KeyFile.writePublic(pair, to: "\(keys)/allow/\(name).pub")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Shoal.executable)
        process.arguments = [
            "coordinator", "--control", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*", "--journal",
            directory + "/coordinator/journal.sqlite", "--dir", directory + "/coordinator/output", "--key",
            keys + "/coordinator.key", "--allow", keys + "/allow", "--pinned-wait", pinnedWait, "--heartbeat", "250ms",
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = try logHandle("coordinator")
        try ProcessLaunch.run(process)
        processes["coordinator"] = process
        var buffer = Data()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, control.isEmpty {
            guard let chunk = FileDescriptorIO.readSome(pipe.fileHandleForReading.fileDescriptor), !chunk.isEmpty
            else { break }
            buffer.append(chunk)
            let text = String(decoding: buffer, as: UTF8.self)
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("ready ") }) else { continue }
            control =
                line.split(separator: " ").first { $0.hasPrefix("control=") }.map { String($0.dropFirst(8)) } ?? ""
        }
        guard !control.isEmpty else {
            throw ShoalError(.launchFailed, "the coordinator did not start; see \(directory)")
        }
    }

    deinit { stopAll() }

    /// Where an agent keeps its files: a directory of its own, as on its own host.
    func workDirectory(_ id: String) -> String { "\(directory)/\(id)/work" }

    /// Starts an agent of `role` named `id`, with the stand-ins first on its PATH.
    func startAgent(_ role: String, id: String, arguments: [String] = []) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Shoal.executable)
        process.arguments =
            [
                "agent", role, "--coordinator", control, "--id", id, "--work-dir", workDirectory(id), "--state-dir",
                "\(directory)/\(id)/state", "--key", keys + "/agents.key", "--coordinator-key",
                keys + "/coordinator.pub",
            ] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = standIns.searchPath
        environment["HOME"] = "\(directory)/\(id)"
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try logHandle(id)
        try ProcessLaunch.run(process)
        processes[id] = process
    }

    /// Every role once; the monitoring agent pushes to the in-cluster git server, whose NodePort is stood in for
    /// by `shoal gitops serve`.
    func startAgents() async throws {
        for role in ["planner", "infra", "argocd", "validation", "docs"] { try startAgent(role, id: "\(role)-1") }
        let server = try await GitServerStandIn(standIns: standIns, directory: directory)
        gitServer = server
        try startAgent("monitoring", id: "monitoring-1", arguments: ["--gitops-push-url", server.url])
    }

    /// SIGTERM, then waits for the process to end.
    func stop(_ name: String) {
        guard let process = processes.removeValue(forKey: name) else { return }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    func stopAll() {
        for name in processes.keys.sorted() where name != "coordinator" { stop(name) }
        stop("coordinator")
        gitServer?.stop()
        gitServer = nil
    }

    /// The client's options: the coordinator and this client's keys.
    var client: [String] {
        ["--coordinator", control, "--key", keys + "/client.key", "--coordinator-key", keys + "/coordinator.pub"]
    }

    /// Runs a shoal command as the client, from a directory of its own (the laptop).
    func run(_ arguments: [String], timeout: Duration = .seconds(90)) async throws -> ProcessResult {
        try await Shoal.run(
            arguments + client, timeout: timeout,
            environment: ["HOME": directory + "/client", "KUBECONFIG": directory + "/client/kubeconfig"])
    }

    func log(_ name: String) -> String {
        (try? String(contentsOfFile: "\(directory)/logs/\(name).log", encoding: .utf8)) ?? ""
    }

    private func logHandle(_ name: String) throws -> FileHandle {
        try SecureFile.createDirectory(directory + "/logs")
        let path = "\(directory)/logs/\(name).log"
        FileManager.default.createFile(atPath: path, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw ShoalError(.io, "cannot write \(path)")
        }
        return handle
    }
}

extension EndToEndCommands {
    @Suite struct RemoteCommandsTests {
        func describe(_ result: ProcessResult) -> String {
            "status \(result.status)\nstdout: \(result.standardOutput)\nstderr: \(result.standardError)"
        }

        @Test func validateDestroyLogsAndGetRunThroughTheCoordinatorOnTheAgentsThatHoldTheState() async throws {
            let lab = try RemoteLab()
            defer { lab.stopAll() }
            try await lab.startAgents()
            let created = try await lab.run([
                "create", "--real-deployment", "--target", "local", "--wait-timeout", "5s",
            ])
            #expect(created.status == 0, "\(describe(created))\n\(lab.log("coordinator"))")
            let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
            #expect(created.standardOutput.contains("Health: score 100/100 (healthy)"))

            // The Terraform state is in the infra agent's own work directory, nowhere else.
            let infraDirectory = lab.workDirectory("infra-1") + "/terraform/\(workflow)"
            let state = try String(contentsOfFile: infraDirectory + "/terraform.tfstate", encoding: .utf8)
            #expect(state.contains("local_server"))
            #expect(
                !FileManager.default.fileExists(
                    atPath: "\(lab.directory)/coordinator/output/terraform/\(workflow)/terraform.tfstate"))

            // logs: terraform's own output, from the journal of the coordinator.
            let logs = try await lab.run(["logs", workflow, "provision"])
            #expect(logs.status == 0, "\(describe(logs))")
            #expect(logs.standardOutput.contains("==> provision (attempt 1, infra-1 on"))
            #expect(logs.standardOutput.contains("Apply complete! Resources: 3 added"))
            #expect(logs.standardOutput.contains("terraform apply: exit 0"))
            #expect(!logs.standardOutput.contains("==> monitoring"), "only the step asked for")
            let unknownStep = try await lab.run(["logs", workflow, "no-such-step"])
            #expect(unknownStep.status != 0)
            #expect(unknownStep.standardError.contains("has no step 'no-such-step'"), "\(describe(unknownStep))")

            // validate: a workflow of its own on the validation agent, with the target's kubeconfig.
            let callsBefore = lab.standIns.lines("calls.log").count
            let validated = try await lab.run(["validate", workflow])
            #expect(validated.status == 0, "\(describe(validated))")
            #expect(validated.standardOutput.contains("Health: score 100/100 (healthy)"))
            #expect(validated.standardOutput.contains("(real cluster)"))
            #expect(validated.standardOutput.contains("Checked by validation-1"))
            #expect(lab.standIns.lines("calls.log").count > callsBefore, "kubectl ran again for the checks")

            // get: the output tree on the client's host; secrets only when asked for.
            let tree = lab.directory + "/client/tree"
            let got = try await lab.run(["get", workflow, "-d", tree])
            #expect(got.status == 0, "\(describe(got))")
            #expect(FileManager.default.fileExists(atPath: "\(tree)/terraform/\(workflow)/main.tf"))
            #expect(FileManager.default.fileExists(atPath: "\(tree)/docs/\(workflow)/health-report.json"))
            #expect(!FileManager.default.fileExists(atPath: "\(tree)/kubeconfigs/\(workflow)/kubeconfig"))
            #expect(
                got.standardError.contains("withheld (sensitive; pass --sensitive): kubeconfigs/\(workflow)/kubeconfig")
            )
            let secret = try await lab.run(["get", workflow, "-d", tree, "--sensitive"])
            #expect(secret.status == 0, "\(describe(secret))")
            #expect(SecureFile.mode(of: "\(tree)/kubeconfigs/\(workflow)/kubeconfig") == 0o600)

            // kubeconfig and credentials from the client's host: fetched from the coordinator into -d DIR.
            let access = lab.directory + "/client/access"
            let merged = try await lab.run(["kubeconfig", workflow, "-d", access, "--merge"])
            #expect(merged.status == 0, "\(describe(merged))")
            #expect(
                merged.standardOutput.contains(
                    "kubeconfig: context shoal-\(workflow) merged into \(lab.directory)/client/kubeconfig"),
                "\(describe(merged))")
            #expect(SecureFile.mode(of: "\(access)/kubeconfigs/\(workflow)/kubeconfig") == 0o600)
            let credentials = try await lab.run(["credentials", workflow, "argocd", "-d", access])
            #expect(credentials.status == 0, "\(describe(credentials))")
            let passwordFile = "\(access)/kubeconfigs/\(workflow)/argocd-admin-password"
            #expect(credentials.standardOutput.contains(passwordFile), "\(describe(credentials))")
            #expect(SecureFile.mode(of: passwordFile) == 0o600)
            #expect(!credentials.standardOutput.contains("stand-in-admin-password"))

            // destroy: on the infra agent, in its work directory, where the state was.
            let destroyed = try await lab.run(["destroy", workflow, "--yes"])
            #expect(destroyed.status == 0, "\(describe(destroyed))")
            #expect(destroyed.standardOutput.contains("workflow \(workflow) destroyed"))
            #expect(destroyed.standardOutput.contains("(agent infra-1)"))
            let clientKubeconfig = try String(contentsOfFile: lab.directory + "/client/kubeconfig", encoding: .utf8)
            #expect(!clientKubeconfig.contains("shoal-\(workflow)"), "destroy took the merged context out")
            let destroys = lab.standIns.lines("terraform-dirs.log").filter { $0.hasPrefix("destroy ") }
            #expect(destroys == ["destroy \(infraDirectory)"], "\(destroys)")
            let after = try String(contentsOfFile: infraDirectory + "/terraform.tfstate", encoding: .utf8)
            #expect(after.contains("\"resources\": []"))

            let status = try await lab.run(["status", workflow])
            #expect(status.standardOutput.contains("workflow \(workflow): destroyed"), "\(describe(status))")
            let listed = try await lab.run(["list"])
            let line = listed.standardOutput.split(separator: "\n").first { $0.hasPrefix(workflow + " ") }
            #expect(line?.contains("destroyed") == true, "\(listed.standardOutput)")
            #expect(listed.standardOutput.contains("destroy of \(workflow)"))
            #expect(listed.standardOutput.contains("validate of \(workflow)"))

            // Again: nothing runs a second time; a destroyed cluster is not validated.
            let again = try await lab.run(["destroy", workflow, "--yes"])
            #expect(again.status == 0 && again.standardOutput.contains("already destroyed"), "\(describe(again))")
            #expect(lab.standIns.lines("terraform-dirs.log").filter { $0.hasPrefix("destroy ") }.count == 1)
            let gone = try await lab.run(["validate", workflow])
            #expect(gone.status != 0 && gone.standardError.contains("was destroyed"), "\(describe(gone))")
        }

        @Test func destroyWaitsForTheInfraAgentWithTheStateThenFailsNamingIt() async throws {
            let lab = try RemoteLab(pinnedWait: "2s")
            defer { lab.stopAll() }
            try await lab.startAgents()
            let created = try await lab.run([
                "create", "--real-deployment", "--target", "local", "--wait-timeout", "5s",
            ])
            #expect(created.status == 0, "\(describe(created))")
            let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
            // Another infra agent is there, but the state is not: destroy must not run on it.
            try lab.startAgent("infra", id: "infra-2")
            lab.stop("infra-1")
            let destroyed = try await lab.run(["destroy", workflow, "--yes"], timeout: .seconds(30))
            #expect(destroyed.status != 0)
            #expect(
                destroyed.standardError.contains("infra agent 'infra-1' is not connected (waited 2s)"),
                "\(describe(destroyed))")
            #expect(destroyed.standardError.contains("where the Terraform state of \(workflow) is"))
            #expect(lab.standIns.lines("terraform-dirs.log").filter { $0.hasPrefix("destroy ") }.isEmpty)
            let status = try await lab.run(["status", workflow])
            #expect(status.standardOutput.contains("workflow \(workflow): succeeded"), "\(describe(status))")

            // Back with the same id and work directory: destroy runs there.
            try lab.startAgent("infra", id: "infra-1")
            let retried = try await lab.run(["destroy", workflow, "--yes"])
            #expect(retried.status == 0, "\(describe(retried))")
            let destroys = lab.standIns.lines("terraform-dirs.log").filter { $0.hasPrefix("destroy ") }
            #expect(destroys == ["destroy \(lab.workDirectory("infra-1"))/terraform/\(workflow)"], "\(destroys)")
        }

        @Test func logsFollowARunningWorkflowUntilItEnds() async throws {
            let lab = try RemoteLab()
            defer { lab.stopAll() }
            try await lab.startAgents()
            let detached = try await lab.run(["create", "--sim-delay", "400ms", "--detach"])
            #expect(detached.status == 0, "\(describe(detached))")
            let workflow = try #require(
                detached.standardOutput.split(separator: "\n").compactMap { line in
                    line.split(separator: " ").first { $0.hasPrefix("k3s-") }.map(String.init)
                }.first)
            let status = try await lab.run(["status", workflow])
            #expect(status.standardOutput.contains("workflow \(workflow): running"), "\(describe(status))")
            let followed = try await lab.run(["logs", workflow, "-f"], timeout: .seconds(60))
            #expect(followed.status == 0, "\(describe(followed))")
            let headers = followed.standardOutput.split(separator: "\n").filter { $0.hasPrefix("==> ") }
            #expect(headers.first?.hasPrefix("==> plan (attempt 1, planner-1 on") == true, "\(headers)")
            #expect(headers.contains { $0.hasPrefix("==> docs (") }, "followed to the last step: \(headers)")
            #expect(Set(headers).count == headers.count, "each step's log once")
            let after = try await lab.run(["status", workflow])
            #expect(after.standardOutput.contains("workflow \(workflow): succeeded"))
        }

        @Test func badOptionsOfTheRemoteCommandsAreRefusedInOneLine() async throws {
            for (arguments, message) in [
                (["validate", "k3s-dev-000001", "--key", "x.key"], "go with --coordinator"),
                (["destroy", "k3s-dev-000001", "--insecure"], "go with --coordinator"),
                (
                    ["destroy", "k3s-dev-000001", "--coordinator", "tcp://127.0.0.1:9", "--insecure", "--force"],
                    "--force is for"
                ),
                (["logs", "k3s-dev-000001", "--coordinator", "http://x"], "--coordinator must be an endpoint"),
                (["logs", "k3s-dev-000001", "a\nb"], "a step name is 1-100 characters"),
                (["get", "Bad_Id"], "invalid workflow id"),
                (["get", "k3s-dev-000001", "-d", "/nonexistent-shoal"], "no shoal journal"),
            ] {
                let result = try await Shoal.run(arguments, timeout: .seconds(20))
                #expect(result.status != 0, "\(arguments)")
                #expect(result.standardError.contains(message), "\(arguments): \(result.standardError)")
                #expect(!result.standardError.contains("Fatal error"), "\(arguments)")
            }
        }

        @Test func embeddedLogsAndGetReadTheOutputDirectorysJournal() async throws {
            let directory = Shoal.temporaryDirectory()
            let output = directory + "/out"
            let created = try await Shoal.run(["create", "-d", output], timeout: .seconds(90))
            #expect(created.status == 0, "\(describe(created))")
            let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
            let logs = try await Shoal.run(["logs", workflow, "-d", output])
            #expect(logs.status == 0, "\(describe(logs))")
            for step in ["plan", "provision", "monitoring", "health-report"] {
                #expect(logs.standardOutput.contains("==> \(step) (attempt 1,"), "\(step): \(logs.standardOutput)")
            }
            #expect(logs.standardOutput.contains("terraform"))
            try FileManager.default.removeItem(atPath: "\(output)/terraform/\(workflow)/main.tf")
            let got = try await Shoal.run(["get", workflow, "-d", output])
            #expect(got.status == 0, "\(describe(got))")
            #expect(FileManager.default.fileExists(atPath: "\(output)/terraform/\(workflow)/main.tf"))
            // A second run in the same directory appends to the processes' log files.
            let second = try await Shoal.run(["create", "-d", output], timeout: .seconds(90))
            #expect(second.status == 0, "\(describe(second))")
            let coordinatorLog = try String(contentsOfFile: "\(output)/.shoal/logs/coordinator.log", encoding: .utf8)
            #expect(coordinatorLog.components(separatedBy: "workflow submitted").count - 1 == 2, "\(coordinatorLog)")
            let bad = try await Shoal.run(["logs", "Not_An_Id", "-d", output])
            #expect(bad.status != 0 && bad.standardError.contains("invalid workflow id"), "\(describe(bad))")
        }
    }
}
