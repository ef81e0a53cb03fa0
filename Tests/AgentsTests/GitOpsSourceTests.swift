import AgentRuntime
import Cluster
import Foundation
import GitOps
import Logging
import Protocol
import ShoalSupport
import Testing

@testable import Agents

/// Where the monitoring step puts the GitOps repository: the in-cluster git server by default, in both modes.
@Suite struct GitOpsSourceTests {
    /// A demo cluster as the provision and gitops-engine steps hand it on.
    func demoState(workflow: String = "shoal") -> Artifact {
        var cluster = SimulatedCluster.provision(name: workflow, nodes: 1, k3sVersion: "v1.31.4+k3s1")
        cluster.installArgoCD(version: ArgoCDInstall.defaultVersion, adminPassword: "demo-password")
        return cluster.artifact(workflow: workflow)
    }

    @Test func demoMonitoringPushesIntoTheModelledServerAndValidationNeedsOnlyTheState() async throws {
        guard requireTool("git") else { return }
        let work = temporaryDirectory()
        let handler = try MonitoringHandler(options: AgentOptions(workDirectory: work), logger: Logger(label: "test"))
        let output = try await handler.run(
            stepContext("monitoring", role: .monitoring, request: WorkflowRequest(), artifacts: [demoState()]))
        let repoURL = (try output.decode(MonitoringOutput.self, step: "monitoring")).repoURL
        #expect(repoURL == "http://shoal-git.shoal-gitops.svc.cluster.local/shoal/shoal.git")
        #expect((try output.decode(MonitoringOutput.self, step: "monitoring")).gitopsSource == .inCluster)
        #expect(output.summary.contains("Applications Synced and Healthy: root, monitoring, argocd"), "\(output.summary)")
        let state = try #require(output.artifacts.first { $0.name == "cluster-state" })
        let cluster = try SimulatedCluster.decode(state.data)
        let pushed = try #require(cluster.gitServer?.repositories["shoal/shoal.git"])
        #expect(pushed.head == (try output.decode(MonitoringOutput.self, step: "monitoring")).commit)
        #expect(output.artifacts.contains { $0.name == "gitops-push-password" && $0.sensitive })

        // A validation agent on another host has no work directory in common: the state is enough.
        try FileManager.default.removeItem(atPath: work)
        let validation = ValidationHandler(options: AgentOptions(workDirectory: temporaryDirectory()))
        let checked = try await validation.run(
            stepContext(
                "validate/applications", role: .validation, request: WorkflowRequest(), artifacts: [state],
                params: ["check": "applications"]))
        #expect(try checked.decode(CheckOutput.self, step: "validate/applications").result.passed, "\(checked.summary)")
    }

    @Test func realModePushesToTheInClusterServerAndTheApplicationsNameItsServiceURL() async throws {
        guard requireTool("git") else { return }
        let standIns = try StandIns()
        let work = temporaryDirectory()
        let served = temporaryDirectory()
        defer {
            standIns.delete()
            try? FileManager.default.removeItem(atPath: work)
            try? FileManager.default.removeItem(atPath: served)
        }
        // The cluster already holds the push password (a second run keeps the server's user).
        let password = "in-cluster-push-password-0123"
        let secret: JSONValue = [
            "apiVersion": "v1", "kind": "Secret",
            "metadata": ["name": "shoal-git-push", "namespace": "shoal-gitops"],
            "data": ["password": .string(Data(password.utf8).base64EncodedString())],
        ]
        try standIns.answer("secret-shoal-gitops-shoal-git-push.json", try secret.jsonText())
        // A real smart-HTTP server stands in for the Gitea behind the NodePort.
        let server = try GitHTTPServer(root: served, pushToken: password)
        let port = try await server.start()
        var options = standIns.options(workDirectory: work)
        options.gitopsPushURL = "http://127.0.0.1:\(port)"
        let handler = try MonitoringHandler(options: options, logger: Logger(label: "test"))
        let output = try await handler.run(
            stepContext("monitoring", role: .monitoring, request: realRequest(), artifacts: [try kubeconfigArtifact()]))
        await server.stop()

        let repoURL = (try output.decode(MonitoringOutput.self, step: "monitoring")).repoURL
        #expect(repoURL == InClusterGitServer.repoURL(workflow: "shoal"))
        let monitoring = try output.decode(MonitoringOutput.self, step: "monitoring")
        #expect(monitoring.pushURL == "http://127.0.0.1:\(port)/shoal/shoal.git")
        let head = try await ProcessRunner().run("git", ["--git-dir", "\(served)/shoal/shoal.git", "rev-parse", "main"])
        #expect(head.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == monitoring.commit)
        let applied = standIns.text("applied.yaml")
        #expect(applied.contains("image: \(InClusterGitServer.image)"))
        #expect(applied.contains("nodePort: \(InClusterGitServer.nodePort)"))
        // Every Application names the in-cluster Service, never this host.
        let repoURLs = applied.split(separator: "\n").filter { $0.contains("repoURL:") }
        #expect(!repoURLs.isEmpty && repoURLs.allSatisfy { $0.contains(InClusterGitServer.host) }, "\(repoURLs)")
        #expect(!applied.contains("password: \(password)"), "an existing password is not applied again")
        let calls = standIns.kubectlCalls()
        #expect(calls.contains { $0.hasPrefix("rollout status deployment/shoal-git -n shoal-gitops") }, "\(calls)")
        let artifact = try #require(output.artifacts.first { $0.name == "gitops-push-password" })
        #expect(artifact.sensitive && artifact.text == password + "\n")
    }

    @Test func anAgentAdvertisingItsHostLeavesServingToGitopsServeOnTheSamePort() async throws {
        guard requireTool("git") else { return }
        let work = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        try SecureFile.createDirectory(work + "/gitops")
        // `shoal gitops serve -d WORK` holds the port.
        let service = try GitHTTPServer(root: work + "/gitops")
        let port = try await service.start()
        var options = AgentOptions(workDirectory: work)
        options.gitopsListen = "127.0.0.1:\(port)"
        options.gitopsAdvertise = "192.0.2.10"
        let handler = try MonitoringHandler(options: options, logger: Logger(label: "test"))
        let output = try await handler.run(
            stepContext("monitoring", role: .monitoring, request: WorkflowRequest(), artifacts: [demoState()]))
        await service.stop()
        let monitoring = try output.decode(MonitoringOutput.self, step: "monitoring")
        #expect(monitoring.repoURL == "http://192.0.2.10:\(port)/shoal")
        #expect((try output.decode(MonitoringOutput.self, step: "monitoring")).gitopsSource == .host)
        #expect(output.log.contains { $0.contains("port \(port) in use") })
        // The simulated Argo CD cloned the commit from that service.
        #expect(output.summary.contains("Applications Synced and Healthy"), "\(output.summary)")
    }

    @Test func anAdvertisedAddressThatIsNoHostStopsTheAgentAtStart() throws {
        for bad in ["a;id", "host\nname", "http://x"] {
            var options = AgentOptions(workDirectory: temporaryDirectory())
            options.gitopsAdvertise = bad
            #expect(throws: ShoalError.self) { try MonitoringHandler(options: options, logger: Logger(label: "test")) }
        }
        var options = AgentOptions(workDirectory: temporaryDirectory())
        options.gitopsPushURL = "http://user:secret@10.0.0.1:30418"
        #expect(throws: ShoalError.self) { try MonitoringHandler(options: options, logger: Logger(label: "test")) }
    }
}
