import Foundation
import ShoalSupport
import Testing

/// `shoal gitops serve` standing in for the in-cluster git server behind its NodePort: it takes pushes with the
/// password that the stand-in kubectl hands out as the cluster's `shoal-git-push` Secret.
final class GitServerStandIn: @unchecked Sendable {  // set once in init, read after
    static let password = "stand-in-git-push-password-0123"
    let process = Process()
    let root: String
    private(set) var url = ""

    init(standIns: StandInDirectory, directory: String) async throws {
        root = directory + "/git-server"
        let secret = """
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shoal-git-push", "namespace": "shoal-gitops"},
             "data": {"password": "\(Data(Self.password.utf8).base64EncodedString())"}}
            """
        try SecureFile.write(secret, to: standIns.path + "/secret-shoal-gitops-shoal-git-push.json")
        let tokenFile = directory + "/push-token"
        try SecureFile.write(Self.password + "\n", to: tokenFile, mode: 0o600)
        let pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: Shoal.executable)
        process.arguments = ["gitops", "serve", "-d", root, "--listen", "127.0.0.1:0", "--push-token-file", tokenFile]
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let handle = pipe.fileHandleForReading
        url = try await Task.detached {
            // The service prints one line once it listens: "serving ROOT at http://127.0.0.1:PORT/ ...".
            var text = ""
            while !text.contains("\n"), let chunk = FileDescriptorIO.readSome(handle.fileDescriptor), !chunk.isEmpty {
                text += String(decoding: chunk, as: UTF8.self)
            }
            guard let range = text.range(of: #"http://127\.0\.0\.1:[0-9]+"#, options: .regularExpression) else {
                throw ShoalError(.notFound, "shoal gitops serve printed no address: \(text)")
            }
            return String(text[range])
        }.value
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
    }
}

extension EndToEndCommands {
    @Suite struct GitOpsSourceTests {
        func commit(_ repository: String, _ files: [String: String], message: String) async throws {
            for (name, text) in files { try SecureFile.write(text, to: repository + "/" + name) }
            let runner = ProcessRunner()
            let identity = [
                "-c", "user.name=tester", "-c", "user.email=tester@shoal.invalid", "-c", "commit.gpgsign=false",
            ]
            _ = try await runner.run("git", ["-C", repository, "add", "-A"])
            let committed = try await runner.run("git", identity + ["-C", repository, "commit", "-q", "-m", message])
            #expect(committed.succeeded, "\(committed.standardError)")
        }

        @Test func afterCreateHasExitedValidateSyncsFromTheInClusterServerAndFollowsPushesOnly() async throws {
            let output = Shoal.temporaryDirectory() + "/out"
            let created = try await Shoal.run(["create", "-n", "1", "-d", output])
            #expect(created.status == 0, "\(created.standardError)")
            let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
            #expect(processes(mentioning: output).isEmpty, "create left nothing running")
            for name in ["root-app.yaml", "monitoring-app.yaml"] {
                let text = try String(contentsOfFile: "\(output)/argocd-apps/\(workflow)/\(name)", encoding: .utf8)
                #expect(text.contains("repoURL: http://shoal-git.shoal-gitops.svc.cluster.local/shoal/\(workflow).git"))
                #expect(!text.contains("127.0.0.1"))
            }
            let healthy = try await Shoal.run(["validate", workflow, "-d", output])
            #expect(healthy.status == 0, "\(healthy.standardOutput)\(healthy.standardError)")
            #expect(healthy.standardOutput.contains("Health: score 100/100 (healthy)"))

            // A commit alone does not reach the cluster: Argo CD syncs what its git server holds.
            let repository = "\(output)/gitops/\(workflow)"
            try await commit(
                repository, ["monitoring/40-extra.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n"],
                message: "a manifest that does not parse")
            let unpushed = try await Shoal.run(["validate", workflow, "-d", output])
            #expect(unpushed.standardOutput.contains("Health: score 100/100 (healthy)"), "\(unpushed.standardOutput)")

            let pushed = try await Shoal.run(["gitops", "push", workflow, "-d", output])
            #expect(pushed.status == 0, "\(pushed.standardError)")
            #expect(pushed.standardOutput.contains("pushed "))
            let broken = try await Shoal.run(["validate", workflow, "-d", output])
            #expect(broken.status == 1)
            #expect(broken.standardOutput.contains("Health: score 80/100 (degraded)"), "\(broken.standardOutput)")
            #expect(broken.standardOutput.contains("monitoring/40-extra.yaml"))

            // The source gone: the server lost the repository. The score drops and says why.
            let statePath = "\(output)/kubeconfigs/\(workflow)/simulated-cluster.json"
            var state = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: statePath)))
                    as? [String: Any])
            var server = try #require(state["gitServer"] as? [String: Any])
            server["repositories"] = [String: Any]()
            state["gitServer"] = server
            try SecureFile.write(try JSONSerialization.data(withJSONObject: state), to: statePath, mode: 0o600)
            let gone = try await Shoal.run(["validate", workflow, "-d", output])
            #expect(gone.status == 1)
            #expect(gone.standardOutput.contains("repository not found"), "\(gone.standardOutput)")
            #expect(gone.standardOutput.contains("Health: score 80/100"), "\(gone.standardOutput)")
        }

        @Test func aRealDeploymentPushesToTheInClusterServerAndGitopsPushReachesItLater() async throws {
            let standIns = try StandInDirectory()
            let directory = Shoal.temporaryDirectory()
            let output = directory + "/out"
            let environment = ["PATH": standIns.searchPath, "HOME": directory]
            let gitServer = try await GitServerStandIn(standIns: standIns, directory: directory)
            let created = try await Shoal.run(
                [
                    "create", "--real-deployment", "--target", "local", "-d", output, "--wait-timeout", "5s",
                    "--gitops-push-url", gitServer.url,
                ], timeout: .seconds(60), environment: environment)
            #expect(created.status == 0, "\(created.standardOutput)\(created.standardError)")
            let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
            // Every Application the cluster got names the in-cluster Service, never a port of this host.
            let applied = try String(contentsOfFile: standIns.path + "/applied.yaml", encoding: .utf8)
            let repoURLs = applied.split(separator: "\n").filter { $0.contains("repoURL:") }
            #expect(repoURLs.count == 1, "the root Application; its children come from git")
            let served = "\(gitServer.root)/gitops/shoal/\(workflow).git"
            let child = try await ProcessRunner().run("git", ["--git-dir", served, "show", "main:apps/monitoring.yaml"])
            #expect(child.succeeded)
            for line in repoURLs + child.standardOutput.split(separator: "\n").filter({ $0.contains("repoURL:") }) {
                #expect(line.contains("http://shoal-git.shoal-gitops.svc.cluster.local/shoal/\(workflow).git"))
                #expect(!line.contains("127.0.0.1") && !line.contains("localhost"))
            }
            #expect(SecureFile.mode(of: "\(output)/kubeconfigs/\(workflow)/gitops-push-password") == 0o600)
            let local = try await ProcessRunner().run("git", ["-C", "\(output)/gitops/\(workflow)", "rev-parse", "HEAD"])
            let remote = try await ProcessRunner().run("git", ["--git-dir", served, "rev-parse", "main"])
            #expect(remote.succeeded && remote.standardOutput == local.standardOutput)

            // Later, a change: commit, push the documented way.
            try await commit(
                "\(output)/gitops/\(workflow)", ["monitoring/50-note.yaml": "apiVersion: v1\nkind: ConfigMap\n"],
                message: "a note")
            let pushed = try await Shoal.run(["gitops", "push", workflow, "-d", output], environment: environment)
            #expect(pushed.status == 0, "\(pushed.standardOutput)\(pushed.standardError)")
            let after = try await ProcessRunner().run("git", ["--git-dir", served, "rev-parse", "main"])
            let head = try await ProcessRunner().run("git", ["-C", "\(output)/gitops/\(workflow)", "rev-parse", "HEAD"])
            #expect(after.standardOutput == head.standardOutput)
            #expect(!pushed.standardOutput.contains(GitServerStandIn.password))

            // The host service stops gracefully on SIGTERM.
            gitServer.stop()
            #expect(gitServer.process.terminationReason == .exit && gitServer.process.terminationStatus == 0)
        }

        @Test func validationAgentsSharingNoFileSystemWithTheMonitoringAgentSyncFromTheStateTheyAreHanded()
            async throws
        {
            let directory = Shoal.temporaryDirectory()
            var children: [Process] = []
            defer {
                for child in children where child.isRunning { kill(child.processIdentifier, SIGTERM) }
                for child in children { child.waitUntilExit() }
            }
            let coordinator = Process()
            coordinator.executableURL = URL(fileURLWithPath: Shoal.executable)
            coordinator.arguments = [
                "coordinator", "--control", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*", "--journal",
                directory + "/journal.sqlite", "--dir", directory + "/out", "--insecure",
            ]
            let stdout = Pipe()
            coordinator.standardOutput = stdout
            coordinator.standardError = FileHandle.nullDevice
            try coordinator.run()
            children.append(coordinator)
            var ready = ""
            while !ready.contains("\n") {
                let chunk = stdout.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                ready += String(decoding: chunk, as: UTF8.self)
            }
            let control = try #require(ready.split(separator: " ").first { $0.hasPrefix("control=") }?.dropFirst(8))
                .trimmingCharacters(in: .whitespacesAndNewlines)
            // Each agent has a work directory of its own, as on separate hosts.
            let agents = [
                ("planner", "planner-1"), ("infra", "infra-1"), ("argocd", "argocd-1"), ("monitoring", "monitoring-1"),
                ("docs", "docs-1"), ("validation", "validation-1"), ("validation", "validation-2"),
            ]
            for (role, id) in agents {
                let agent = Process()
                agent.executableURL = URL(fileURLWithPath: Shoal.executable)
                agent.arguments = [
                    "agent", role, "--id", id, "--coordinator", control, "--insecure", "--work-dir",
                    "\(directory)/hosts/\(id)",
                ]
                agent.standardOutput = FileHandle.nullDevice
                agent.standardError = FileHandle.nullDevice
                try agent.run()
                children.append(agent)
            }
            let created = try await Shoal.run(
                ["create", "-n", "1", "--validation-workers", "2", "--coordinator", control, "--insecure"],
                timeout: .seconds(90))
            #expect(created.status == 0, "\(created.standardOutput)\(created.standardError)")
            #expect(created.standardOutput.contains("Health: score 100/100 (healthy)"), "\(created.standardOutput)")
            let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
            #expect(FileManager.default.fileExists(atPath: "\(directory)/hosts/monitoring-1/gitops/\(workflow)/.git"))
            for id in ["validation-1", "validation-2"] {
                #expect(!FileManager.default.fileExists(atPath: "\(directory)/hosts/\(id)/gitops/\(workflow)"))
            }
            let report = try String(
                contentsOfFile: "\(directory)/out/docs/\(workflow)/health-report.json", encoding: .utf8)
            #expect(report.contains("validation-1") || report.contains("validation-2"))
            let application = try String(
                contentsOfFile: "\(directory)/out/argocd-apps/\(workflow)/root-app.yaml", encoding: .utf8)
            #expect(application.contains("repoURL: http://shoal-git.shoal-gitops.svc.cluster.local/"))
        }

        @Test func anAdvertisedAddressThatIsNoHostIsAOneLineUsageError() async throws {
            for bad in ["a;id", "a\nb", "http://x/"] {
                let created = try await Shoal.run(["create", "--gitops-advertise", bad, "-d", Shoal.temporaryDirectory()])
                #expect(created.status == 64, "\(bad.debugDescription): \(created.status)")
                #expect(created.standardError.contains("--gitops-advertise must be a host name or an IP address"))
                let agent = try await Shoal.run([
                    "agent", "monitoring", "--coordinator", "tcp://127.0.0.1:1", "--insecure", "--gitops-advertise", bad,
                ])
                #expect(agent.status == 64, "\(agent.standardError)")
            }
        }

        @Test func gitopsHelpNamesServeAndPush() async throws {
            let help = try await Shoal.run(["gitops", "--help"])
            #expect(help.standardOutput.contains("serve") && help.standardOutput.contains("push"))
            let serve = try await Shoal.run(["gitops", "serve", "--help"])
            #expect(serve.standardOutput.contains("7402") && serve.standardOutput.contains("--push-token-file"))
            let bad = try await Shoal.run(["gitops", "serve", "--listen", "nowhere"])
            #expect(bad.status == 64)
        }
    }
}
