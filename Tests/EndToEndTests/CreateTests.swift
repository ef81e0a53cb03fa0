import Foundation
import ShoalSupport
import Testing

@Suite(.serialized) struct CreateTests {
    @Test func createRunsTheWholeWorkflowAndWritesTheOutputTree() async throws {
        let directory = Shoal.temporaryDirectory()
        let output = directory + "/out"
        let started = ContinuousClock.now
        let result = try await Shoal.run(["create", "-p", "k3s", "-n", "2", "--monitoring", "--headlamp", "-d", output])
        let elapsed = ContinuousClock.now - started
        #expect(result.status == 0, "stdout: \(result.standardOutput)\nstderr: \(result.standardError)")
        #expect(elapsed < .seconds(30))
        let workflow = try #require(Shoal.workflowID(in: result.standardOutput))
        let stdout = result.standardOutput
        #expect(stdout.contains("Workflow \(workflow) succeeded"))
        #expect(stdout.contains("Health: score"))
        for port in ["30080", "30090", "30300", "30466"] { #expect(stdout.contains(":\(port)")) }

        let files = FileManager.default
        #expect(files.fileExists(atPath: "\(output)/terraform/\(workflow)/main.tf"))
        #expect(files.fileExists(atPath: "\(output)/terraform/\(workflow)/terraform.tfvars.json"))
        #expect(SecureFile.mode(of: "\(output)/kubeconfigs/\(workflow)/kubeconfig") == 0o600)
        for name in ["00-namespace.yaml", "10-prometheus.yaml", "20-grafana.yaml", "25-headlamp.yaml"] {
            #expect(files.fileExists(atPath: "\(output)/gitops/\(workflow)/monitoring/\(name)"), "\(name)")
            #expect(files.fileExists(atPath: "\(output)/manifests/\(workflow)/monitoring/\(name)"), "\(name)")
        }
        let log = try await ProcessRunner().run("git", ["-C", "\(output)/gitops/\(workflow)", "log", "--oneline"])
        #expect(log.succeeded && !log.standardOutput.isEmpty, "the GitOps repository has a commit")
        let status = try await ProcessRunner().run("git", ["-C", "\(output)/gitops/\(workflow)", "status", "--porcelain"])
        #expect(status.standardOutput.isEmpty, "everything is committed")
        let application = try String(contentsOfFile: "\(output)/argocd-apps/\(workflow)/monitoring-app.yaml", encoding: .utf8)
        #expect(application.contains("kind: Application"))
        #expect(application.contains("automated:"))
        #expect(application.contains("prune: true"))
        #expect(application.contains("selfHeal: true"))
        #expect(files.fileExists(atPath: "\(output)/docs/\(workflow)/runbook.md"))
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(output)/docs/\(workflow)/health-report.json"))) as? [String: Any]
        #expect((report?["score"] as? Int) == 100)

        // The journal of the embedded run answers afterwards.
        let shown = try await Shoal.run(["status", workflow, "-d", output])
        #expect(shown.status == 0)
        #expect(shown.standardOutput.contains("workflow \(workflow): succeeded"))
        let listed = try await Shoal.run(["list", "-d", output])
        #expect(listed.standardOutput.contains(workflow))
        #expect(processes(mentioning: output).isEmpty, "no child outlives create")
    }

    @Test func withoutHeadlampThereIsNoHeadlampManifest() async throws {
        let output = Shoal.temporaryDirectory() + "/out"
        let result = try await Shoal.run(["create", "-n", "1", "--no-headlamp", "-d", output])
        #expect(result.status == 0, "\(result.standardError)")
        let workflow = try #require(Shoal.workflowID(in: result.standardOutput))
        let files = try FileManager.default.contentsOfDirectory(atPath: "\(output)/gitops/\(workflow)/monitoring")
        #expect(files.contains("10-prometheus.yaml"))
        #expect(!files.contains("25-headlamp.yaml"))
        #expect(!result.standardOutput.contains(":30466"))
    }

    @Test func checksAreSpreadOverEveryValidationWorker() async throws {
        let output = Shoal.temporaryDirectory() + "/out"
        let result = try await Shoal.run(["create", "-n", "1", "--validation-workers", "3", "-d", output])
        #expect(result.status == 0, "\(result.standardError)")
        let workflow = try #require(Shoal.workflowID(in: result.standardOutput))
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(output)/docs/\(workflow)/health-report.json"))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let checks = try #require(report["checks"] as? [[String: Any]])
        let agents = Set(checks.compactMap { $0["agent"] as? String })
        #expect(agents == ["validation-1", "validation-2", "validation-3"])
    }

    @Test(arguments: [
        (["-n", "0"], "--nodes must be between 1 and 99"),
        (["-e", "production", "-n", "2"], "production needs at least 3 nodes"),
        (["-p", "eks"], "not supported yet"),
        (["--no-argocd", "--argocd-manifest", "/tmp/install.yaml"], "--argocd-manifest needs Argo CD"),
        (["--wait-timeout", "0s"], "--wait-timeout"),
        (["--sim-delay", "forever"], "--sim-delay"),
        (["--detach"], "--detach needs --coordinator"),
    ])
    func badInputIsAOneLineUsageError(arguments: [String], message: String) async throws {
        let result = try await Shoal.run(["create"] + arguments + ["-d", Shoal.temporaryDirectory()])
        #expect(result.status == 64 || result.status == 2, "status \(result.status)")
        #expect(result.standardError.contains(message), "\(result.standardError)")
        let lines = result.standardError.split(separator: "\n").filter { $0.hasPrefix("Error") || $0.hasPrefix("error") }
        #expect(lines.count == 1)
        #expect(!result.standardError.contains("Stack dump"))
        #expect(!result.standardError.contains("Fatal error"))
    }

    @Test func anUnusableOutputDirectoryIsAOneLineError() async throws {
        let result = try await Shoal.run(["create", "-d", "/proc/x"])
        #expect(result.status != 0)
        #expect(result.standardError.split(separator: "\n").count == 1, "\(result.standardError)")
        #expect(result.standardError.contains("/proc/x"))
    }

    @Test func everyAgentIsItsOwnProcessAndCtrlCStopsThemAll() async throws {
        let output = Shoal.temporaryDirectory() + "/out"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Shoal.executable)
        process.arguments = ["create", "-n", "1", "--sim-delay", "2s", "-d", output]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until the coordinator and all seven agents run.
        var children: [(pid: Int32, command: String)] = []
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            // Only shoal's own services: agents also start git and terraform in the output directory.
            children = processes(mentioning: output).filter {
                $0.pid != process.processIdentifier && ($0.command.contains(" agent ") || $0.command.contains(" coordinator "))
            }
            if children.count >= 8 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(children.count == 8, "coordinator + 7 agents: \(children.map(\.command))")
        #expect(Set(children.map(\.pid)).count == children.count)
        #expect(children.filter { $0.command.contains(" agent ") }.count == 7)
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        #expect(process.terminationStatus != 0)
        let stopDeadline = ContinuousClock.now + .seconds(15)
        while !processes(mentioning: output).isEmpty && ContinuousClock.now < stopDeadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(processes(mentioning: output).isEmpty, "nothing left running after Ctrl-C")
    }

    @Test func helpAndVersionDescribeTheInterface() async throws {
        let help = try await Shoal.run(["create", "--help"])
        for option in ["--platform", "--nodes", "--environment", "--no-monitoring", "--no-headlamp", "--real-deployment", "--output", "--dir", "--validation-workers", "--coordinator", "--sim-delay", "--no-argocd", "--argocd-manifest", "--gitops-remote", "--merge-kubeconfig", "--wait-timeout"] {
            #expect(help.standardOutput.contains(option), "\(option)")
        }
        let version = try await Shoal.run(["version"])
        #expect(version.status == 0)
        #expect(version.standardOutput.hasPrefix("shoal "))
        #expect(version.standardOutput.contains("libzmq 4."))
    }
}
