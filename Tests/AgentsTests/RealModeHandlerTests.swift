import AgentRuntime
import Cluster
import Foundation
import GitOps
import Logging
import Protocol
import ShoalSupport
import Testing

@testable import Agents

/// The real-mode step handlers against stand-in `terraform` and `kubectl` (see Tests/Fixtures/standins).
@Suite(.serialized) struct RealModeHandlerTests {
    // MARK: provision

    @Test func provisionRunsTerraformThroughApplyAndWaitsForTheNodes() async throws {
        let standIns = try StandIns()
        let work = temporaryDirectory()
        defer {
            standIns.delete()
            try? FileManager.default.removeItem(atPath: work)
        }
        let handler = InfraHandler(options: standIns.options(workDirectory: work))
        let output = try await handler.run(stepContext("provision", role: .infra, request: realRequest()))

        let calls = standIns.terraformCalls()
        #expect(
            calls.map { $0.split(separator: " ").first.map(String.init) ?? "" } == [
                "init", "validate", "plan", "apply",
            ])
        #expect(calls.filter { $0.hasPrefix("plan") || $0.hasPrefix("apply") }.allSatisfy { $0.hasSuffix("token=set") })
        #expect(calls.last?.contains("apply -input=false -no-color -auto-approve tfplan") == true)
        #expect(standIns.kubectlCalls() == ["get nodes -o json"])

        let kubeconfig = try #require(output.artifacts.first { $0.name == "kubeconfig" })
        #expect(kubeconfig.sensitive && kubeconfig.mode == 0o600)
        #expect(kubeconfig.text.contains("server: https://127.0.0.1:6443"))
        #expect(SecureFile.mode(of: "\(work)/kubeconfigs/shoal/kubeconfig") == 0o600)
        let token = try #require(output.artifacts.first { $0.name == "k3s-token" })
        #expect(token.sensitive && token.path == nil && token.text.count == 64)
        #expect(!output.artifacts.contains { $0.name == "cluster-state" }, "no simulated cluster in real mode")
        #expect((try output.decode(ProvisionOutput.self, step: "provision")).readyNodes == ["shoal-server-0"])
        #expect((try output.decode(ProvisionOutput.self, step: "provision")).apiEndpoint == "https://127.0.0.1:6443")
        #expect((try output.decode(ProvisionOutput.self, step: "provision")).nodeAddress == "127.0.0.1")
        #expect(output.summary.contains("1 node(s) Ready"))
    }

    @Test func provisionFailsInBoundedTimeWhenANodeStaysNotReady() async throws {
        let standIns = try StandIns()
        let work = temporaryDirectory()
        defer {
            standIns.delete()
            try? FileManager.default.removeItem(atPath: work)
        }
        // Recorded: four kind nodes, k8rs-worker3 NotReady (NodeStatusUnknown).
        try standIns.answer(
            "nodes.json", Paths.recordedText("kubernetes/kind-nodes-v1.36.1-unreachable-unschedulable.json"))
        var request = realRequest(target: .docker, waitSeconds: 1)
        request.nodes = 4
        let handler = InfraHandler(options: standIns.options(workDirectory: work))
        let started = ContinuousClock.now
        let error = await #expect(throws: ShoalError.self) {
            try await handler.run(stepContext("provision", role: .infra, request: request))
        }
        // Bounded by the request's 1 s, far below the 5 min default (the margin is for a loaded machine).
        #expect(ContinuousClock.now - started < .seconds(60))
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("3 of 4 planned nodes Ready after 1.0s") == true)
        #expect(error?.message.contains("k8rs-worker3 NotReady") == true)
    }

    @Test func aFailedApplyFailsTheStepWithTerraformsMessage() async throws {
        let standIns = try StandIns()
        let work = temporaryDirectory()
        defer {
            standIns.delete()
            try? FileManager.default.removeItem(atPath: work)
        }
        try standIns.answer(
            "apply.stderr",
            "\nError: local-exec provisioner error\n\n  with terraform_data.local_server[\"shoal-server-0\"]\n")
        let handler = InfraHandler(options: standIns.options(workDirectory: work))
        let error = await #expect(throws: ShoalError.self) {
            try await handler.run(stepContext("provision", role: .infra, request: realRequest()))
        }
        #expect(error?.code == .commandFailed)
        #expect(error?.message.contains("terraform apply failed") == true)
        #expect(error?.cause?.contains("local-exec provisioner error") == true)
        #expect(standIns.kubectlCalls().isEmpty, "no wait after a failed apply")
    }

    // MARK: ssh hosts

    /// Host keys made by the real ssh-keygen, as `TYPE BASE64`.
    static func hostKey(_ type: String, in directory: String) async throws -> String {
        let path = "\(directory)/key-\(UUID().uuidString)"
        let made = try await ProcessRunner().run("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", "x", "-f", path])
        try #require(made.succeeded, "ssh-keygen: \(made.standardErrorTail())")
        let line = try String(contentsOfFile: path + ".pub", encoding: .utf8)
        return line.split(separator: " ").prefix(2).joined(separator: " ")
    }

    func sshOptions(_ standIns: StandIns, work: String, knownHosts: String) throws -> AgentOptions {
        try FileManager.default.setAttributes(
            [.posixPermissions: 0o755], ofItemAtPath: standIns.directory + "/ssh-keyscan")
        var options = standIns.options(workDirectory: work)
        options.sshKeyscanExecutable = standIns.directory + "/ssh-keyscan"
        options.knownHostsPath = knownHosts
        return options
    }

    func sshRequest() -> WorkflowRequest {
        var request = realRequest(target: .ssh)
        request.hosts = ["ubuntu@node1.lab"]
        request.nodeIPs = ["node1.lab": "10.20.0.11"]
        request.flannelInterfaces = ["node1.lab": "ens4"]
        request.advertiseAddress = "node1.public.example"
        return request
    }

    /// The host's keys are read and compared with known_hosts before terraform runs; the key Terraform's SSH client
    /// will be shown (ECDSA before Ed25519) is pinned in terraform.tfvars.json, with the node IP and flannel
    /// interface of the host, and every key goes into the configuration's own known_hosts.
    @Test func sshProvisionPinsTheHostKeysAndPassesThePerHostSettings() async throws {
        guard requireTool("ssh-keygen") else { return }
        let standIns = try StandIns()
        let work = temporaryDirectory()
        defer {
            standIns.delete()
            try? FileManager.default.removeItem(atPath: work)
        }
        let ecdsa = try await Self.hostKey("ecdsa", in: work)
        let ed25519 = try await Self.hostKey("ed25519", in: work)
        try standIns.answer("keyscan-node1.lab.out", "node1.lab \(ed25519)\nnode1.lab \(ecdsa)\n")
        let knownHosts = "\(work)/known_hosts"
        try SecureFile.write("node1.lab \(ed25519)\n", to: knownHosts)
        let handler = InfraHandler(options: try sshOptions(standIns, work: work, knownHosts: knownHosts))
        let output = try await handler.run(stepContext("provision", role: .infra, request: sshRequest()))

        #expect(standIns.text("ssh-keyscan-calls.log").contains("-p 22"))
        #expect(output.log.first == "SSH host keys checked: node1.lab")
        let directory = "\(work)/terraform/shoal"
        let tfvars = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/terraform.tfvars.json"))
        let values = try #require(JSONSerialization.jsonObject(with: tfvars) as? [String: Any])
        let host = try #require((values["hosts"] as? [[String: Any]])?.first)
        #expect(host["host_key"] as? String == ecdsa)
        #expect(host["node_ip"] as? String == "10.20.0.11")
        #expect(host["flannel_iface"] as? String == "ens4")
        #expect(values["advertise_address"] as? String == "node1.public.example")
        #expect(values["known_hosts_path"] as? String == "\(directory)/known_hosts")
        let pinned = try String(contentsOfFile: "\(directory)/known_hosts", encoding: .utf8)
        #expect(pinned == "node1.lab \(ed25519)\nnode1.lab \(ecdsa)\n")
        let commands = standIns.terraformCalls().map { String($0.prefix { $0 != " " }) }
        #expect(commands == ["init", "validate", "plan", "apply"])
        #expect((try output.decode(ProvisionOutput.self, step: "provision")).nodeAddress == "node1.public.example")
    }

    /// A reinstalled host presents a key known_hosts does not have: the step stops before terraform runs, naming
    /// the host and the command that removes the old key.
    @Test func aChangedHostKeyStopsTheProvisionBeforeAnythingIsInstalled() async throws {
        guard requireTool("ssh-keygen") else { return }
        let standIns = try StandIns()
        let work = temporaryDirectory()
        defer {
            standIns.delete()
            try? FileManager.default.removeItem(atPath: work)
        }
        let old = try await Self.hostKey("ed25519", in: work)
        let new = try await Self.hostKey("ed25519", in: work)
        try standIns.answer("keyscan-node1.lab.out", "node1.lab \(new)\n")
        let knownHosts = "\(work)/known_hosts"
        try SecureFile.write("node1.lab \(old)\n", to: knownHosts)
        let handler = InfraHandler(options: try sshOptions(standIns, work: work, knownHosts: knownHosts))
        let error = await #expect(throws: ShoalError.self) {
            try await handler.run(stepContext("provision", role: .infra, request: sshRequest()))
        }
        #expect(error?.code == .hostKeyChanged)
        let message = error?.message ?? ""
        #expect(message.contains("the SSH host key of node1.lab changed"))
        #expect(message.contains("ssh-keygen -R 'node1.lab' -f \(knownHosts)"))
        #expect(message.contains("ED25519") || message.contains("SHA256:"), "\(message)")
        #expect(!message.contains("\n"))
        #expect(standIns.terraformCalls().isEmpty, "terraform ran despite the changed key")

        // A host that does not answer is named too.
        standIns.remove("keyscan-node1.lab.out")
        let silent = await #expect(throws: ShoalError.self) {
            try await handler.run(stepContext("provision", role: .infra, request: sshRequest()))
        }
        #expect(silent?.code == .unreachable)
        #expect(silent?.message.contains("node1.lab port 22") == true)
    }

    // MARK: destroy

    /// The destroy step runs terraform destroy on the agent that holds the state, in its work directory; a second
    /// run finds nothing left, and an agent without that state refuses, saying so.
    @Test func destroyRunsWhereTheStateIs() async throws {
        let standIns = try StandIns()
        let work = temporaryDirectory()
        let elsewhere = temporaryDirectory()
        defer {
            standIns.delete()
            try? FileManager.default.removeItem(atPath: work)
            try? FileManager.default.removeItem(atPath: elsewhere)
        }
        let handler = InfraHandler(options: standIns.options(workDirectory: work))
        let provisioned = try await handler.run(stepContext("provision", role: .infra, request: realRequest()))
        let token = try #require(provisioned.artifacts.first { $0.name == "k3s-token" })

        let destroyed = try await handler.run(
            stepContext(
                Provisioning.destroyStep, role: .infra, request: realRequest(), artifacts: [token],
                params: try destroyParams()))
        #expect(try destroyed.decode(DestroyOutput.self, step: "destroy").destroyedResources == 1)
        #expect(destroyed.summary.contains("1 resource(s) removed"))
        let directory = "\(work)/terraform/shoal"
        let dirs = standIns.text("terraform-dirs.log").split(separator: "\n").map(String.init)
        #expect(dirs.last == "destroy \(URL(fileURLWithPath: directory).resolvingSymlinksInPath().path)"
            || dirs.last == "destroy \(directory)", "\(dirs)")
        #expect(standIns.terraformCalls().last?.hasSuffix("token=set") == true)
        #expect(!FileManager.default.fileExists(atPath: "\(work)/kubeconfigs/shoal/kubeconfig"))

        let again = try await handler.run(
            stepContext(
                Provisioning.destroyStep, role: .infra, request: realRequest(), artifacts: [token],
                params: try destroyParams()))
        #expect(try again.decode(DestroyOutput.self, step: "destroy").destroyedResources == 0)
        #expect(standIns.terraformCalls().filter { $0.hasPrefix("destroy") }.count == 1)

        // The configuration alone (as the output tree of a multi-host run holds it) is not the state.
        let copy = "\(elsewhere)/terraform/shoal"
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        for name in ["main.tf", "terraform.tfvars.json"] {
            try FileManager.default.copyItem(atPath: "\(directory)/\(name)", toPath: "\(copy)/\(name)")
        }
        let other = InfraHandler(options: standIns.options(workDirectory: elsewhere))
        let error = await #expect(throws: ShoalError.self) {
            try await other.run(
                stepContext(
                    Provisioning.destroyStep, role: .infra, request: realRequest(), params: try destroyParams()))
        }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("no Terraform state in \(elsewhere)/terraform/shoal") == true)
        #expect(error?.message.contains("infra agent infra-test") == true)
        #expect(standIns.terraformCalls().filter { $0.hasPrefix("destroy") }.count == 1)

        // Demo mode applied nothing: its destroy step succeeds without terraform.
        let demo = try await other.run(
            stepContext(
                Provisioning.destroyStep, role: .infra, request: WorkflowRequest(), params: try destroyParams()))
        #expect(try demo.decode(DestroyOutput.self, step: "destroy").destroyedResources == 0)
        #expect(demo.summary.hasPrefix("demo mode: nothing was applied"))
        #expect(standIns.terraformCalls().filter { $0.hasPrefix("destroy") }.count == 1)
    }

    private func destroyParams() throws -> [String: JSONValue] {
        try object(DestroyParams(target: "shoal", agent: "infra-test"), step: .destroy)
    }

    // MARK: gitops-engine

    @Test func argoCDIsInstalledWithExactlyTheInstallStepsThenItsPasswordIsRead() async throws {
        let standIns = try StandIns()
        defer { standIns.delete() }
        let handler = ArgoCDHandler(options: standIns.options(workDirectory: temporaryDirectory()))
        let context = stepContext(
            "gitops-engine", role: .argocd, request: realRequest(), artifacts: [try kubeconfigArtifact()])
        let output = try await handler.run(context)

        let install = ArgoCDInstall()
        let expected =
            install.kubectlSteps().map { $0.joined(separator: " ") }
            + install.waitSteps().map { step in
                step.map { $0.hasPrefix("--timeout=") ? "--timeout=2s" : $0 }.joined(separator: " ")
            }
            + ["get secret argocd-initial-admin-secret --namespace argocd -o json"]
        #expect(standIns.kubectlCalls() == expected)
        let password = try #require(output.artifacts.first { $0.name == "argocd-admin-password" })
        #expect(password.sensitive && password.text == "stand-in-admin-password\n")
        #expect(!output.log.joined().contains("stand-in-admin-password"), "the password is not logged")
        // The kubeconfig went to a private file that is gone afterwards.
        let kubeconfigs = standIns.kubeconfigPaths()
        #expect(kubeconfigs.count == 1)
        #expect(kubeconfigs.allSatisfy { !FileManager.default.fileExists(atPath: $0) })

        // A second run finds the namespace: AlreadyExists is not an error.
        let again = try await handler.run(context)
        #expect(again.log.first?.hasSuffix("(already there)") == true)
    }

    @Test func anAirGappedInstallAppliesTheLocalManifest() async throws {
        let standIns = try StandIns()
        defer { standIns.delete() }
        var request = realRequest()
        request.argocdManifest = "/srv/airgap/argocd-install.yaml"
        let handler = ArgoCDHandler(options: standIns.options(workDirectory: temporaryDirectory()))
        let output = try await handler.run(
            stepContext("gitops-engine", role: .argocd, request: request, artifacts: [try kubeconfigArtifact()]))
        #expect(
            standIns.kubectlCalls().contains(
                "apply --server-side --force-conflicts -n argocd -f /srv/airgap/argocd-install.yaml"))
        #expect(output.summary.contains("from /srv/airgap/argocd-install.yaml"))
    }

    @Test func aRolloutThatDoesNotFinishFailsTheStep() async throws {
        let standIns = try StandIns()
        defer { standIns.delete() }
        try standIns.answer(
            "rollout-status.stderr",
            "Waiting for deployment \"argocd-server\" rollout to finish: 0 of 1 updated replicas are available...\n"
                + "error: timed out waiting for the condition\n")
        let handler = ArgoCDHandler(options: standIns.options(workDirectory: temporaryDirectory()))
        let error = await #expect(throws: ShoalError.self) {
            try await handler.run(
                stepContext(
                    "gitops-engine", role: .argocd, request: realRequest(), artifacts: [try kubeconfigArtifact()]))
        }
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("deployment/argocd-server in namespace argocd was not rolled out") == true)
    }

    @Test func aMissingAdminSecretIsWaitedForThenReported() async throws {
        let standIns = try StandIns()
        defer { standIns.delete() }
        standIns.remove("secret-argocd-argocd-initial-admin-secret.json")
        try standIns.answer(
            "secret-argocd-argocd-initial-admin-secret.stderr",
            Paths.recordedText("kubernetes/kubectl-error-notfound-argocd-initial-admin-secret.txt"))
        let handler = ArgoCDHandler(options: standIns.options(workDirectory: temporaryDirectory()))
        let started = ContinuousClock.now
        let error = await #expect(throws: ShoalError.self) {
            try await handler.run(
                stepContext(
                    "gitops-engine", role: .argocd, request: realRequest(waitSeconds: 1),
                    artifacts: [try kubeconfigArtifact()]))
        }
        #expect(ContinuousClock.now - started < .seconds(60))
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("argocd-initial-admin-secret") == true)
    }

    // MARK: monitoring

    @Test func monitoringCommitsServesAppliesTheRootAndWaitsForTheApplications() async throws {
        guard requireTool("git") else { return }
        let standIns = try StandIns()
        let work = temporaryDirectory()
        defer {
            standIns.delete()
            try? FileManager.default.removeItem(atPath: work)
        }
        var options = standIns.options(workDirectory: work)
        options.gitopsAdvertise = "192.0.2.10"
        let handler = try MonitoringHandler(options: options, logger: Logger(label: "test"))
        let output = try await handler.run(
            stepContext("monitoring", role: .monitoring, request: realRequest(), artifacts: [try kubeconfigArtifact()]))

        let repoURL = (try output.decode(MonitoringOutput.self, step: "monitoring")).repoURL
        #expect(repoURL.hasPrefix("http://192.0.2.10:") && repoURL.hasSuffix("/shoal"))
        // Nothing names this host's loopback to the steps after it (they may run elsewhere).
        #expect((try output.decode(MonitoringOutput.self, step: "monitoring")).servedURL == nil)
        #expect(!"\(output.values)".contains("127.0.0.1"))
        let monitoring = try output.decode(MonitoringOutput.self, step: "monitoring")
        #expect(monitoring.applications == ["root", "monitoring", "argocd"])
        #expect(output.summary.contains("Applications Synced and Healthy: root, monitoring, argocd"))
        let refresh = #"--type merge -p {"metadata":{"annotations":{"argocd.argoproj.io/refresh":"normal"}}}"#
        #expect(
            standIns.kubectlCalls() == [
                "create namespace monitoring", "apply -f - --server-side --force-conflicts",
                "apply -f - --server-side --force-conflicts", "get applications.argoproj.io --namespace argocd -o json",
                "patch application monitoring -n argocd \(refresh)", "patch application root -n argocd \(refresh)",
                "patch application argocd -n argocd \(refresh)",
                "get applications.argoproj.io --namespace argocd -o json",
            ])
        let applied = standIns.text("applied.yaml")
        #expect(applied.contains("name: grafana-admin"))
        #expect(applied.contains("kind: Application") && applied.contains("repoURL: \(repoURL)"))
        #expect(!output.artifacts.contains { $0.name == "cluster-state" })
        let password = try #require(output.artifacts.first { $0.name == "grafana-admin-password" })
        #expect(password.sensitive)
        // The Secret went to the cluster, never into git.
        let log = try await ProcessRunner().run(
            "git",
            ["-C", "\(work)/gitops/shoal", "grep", "-I", "-l", password.text.trimmingCharacters(in: .newlines), "HEAD"])
        #expect(!log.succeeded)
    }

    @Test func applicationsThatStayOutOfSyncAreReportedWithoutFailingTheStep() async throws {
        guard requireTool("git") else { return }
        let standIns = try StandIns()
        let work = temporaryDirectory()
        defer {
            standIns.delete()
            try? FileManager.default.removeItem(atPath: work)
        }
        let outOfSync = standIns.text("applications.json").replacingOccurrences(
            of: "\"status\": \"Synced\"", with: "\"status\": \"OutOfSync\"")
        try standIns.answer("applications.json", outOfSync)
        var options = standIns.options(workDirectory: work)
        options.gitopsAdvertise = "192.0.2.10"
        let handler = try MonitoringHandler(options: options, logger: Logger(label: "test"))
        let started = ContinuousClock.now
        let output = try await handler.run(
            stepContext(
                "monitoring", role: .monitoring, request: realRequest(waitSeconds: 1),
                artifacts: [try kubeconfigArtifact()]))
        #expect(ContinuousClock.now - started < .seconds(60))
        #expect(output.summary.contains("Applications not Synced and Healthy within 1.0s"))
        #expect(output.summary.contains("monitoring OutOfSync/Healthy"))
    }

    @Test func realModeRefusesARepositoryServedOnLoopbackOnly() async throws {
        guard requireTool("git") else { return }
        let standIns = try StandIns()
        defer { standIns.delete() }
        var options = standIns.options(workDirectory: temporaryDirectory())
        options.gitopsAdvertise = "127.0.0.1"
        let handler = try MonitoringHandler(options: options, logger: Logger(label: "test"))
        let error = await #expect(throws: ShoalError.self) {
            try await handler.run(
                stepContext(
                    "monitoring", role: .monitoring, request: realRequest(), artifacts: [try kubeconfigArtifact()]))
        }
        #expect(error?.message.contains("names this host only") == true)
        #expect(standIns.kubectlCalls().isEmpty)
    }

    @Test func withoutArgoCDEveryManifestIsAppliedServerSide() async throws {
        guard requireTool("git") else { return }
        let standIns = try StandIns()
        let work = temporaryDirectory()
        defer {
            standIns.delete()
            try? FileManager.default.removeItem(atPath: work)
        }
        var request = realRequest()
        request.argocd = false
        var options = standIns.options(workDirectory: work)
        options.gitopsAdvertise = "192.0.2.10"
        let handler = try MonitoringHandler(options: options, logger: Logger(label: "test"))
        let output = try await handler.run(
            stepContext("monitoring", role: .monitoring, request: request, artifacts: [try kubeconfigArtifact()]))
        let manifests = (try output.decode(MonitoringOutput.self, step: "monitoring")).manifests
        let applies = standIns.kubectlCalls().filter { $0 == "apply -f - --server-side --force-conflicts" }
        #expect(applies.count == manifests.count + 1, "the admin Secret, then every manifest")
        #expect(!standIns.kubectlCalls().contains { $0.contains("applications") })
        let applied = standIns.text("applied.yaml")
        #expect(!applied.contains("kind: Application"))
        #expect(applied.contains("kind: DaemonSet") && applied.contains("name: prometheus"))
        #expect(output.summary.contains("applied with kubectl apply --server-side"))
    }

    @Test func dockerTargetMapsTheDockerHostInCoreDNS() async throws {
        guard requireTool("git") else { return }
        let standIns = try StandIns()
        let work = temporaryDirectory()
        defer {
            standIns.delete()
            try? FileManager.default.removeItem(atPath: work)
        }
        var request = realRequest(target: .docker)
        request.nodes = 2
        // By default the repository goes to the in-cluster git server; an advertised host serves it itself.
        let plain = try MonitoringHandler(options: standIns.options(workDirectory: work), logger: Logger(label: "test"))
        #expect(plain.source(for: request) == .inCluster)

        var options = standIns.options(workDirectory: work)
        options.gitopsAdvertise = "host.k3d.internal"
        let handler = try MonitoringHandler(options: options, logger: Logger(label: "test"))
        let context = stepContext(
            "monitoring", role: .monitoring, request: request,
            inputs: [
                "provision": try object(
                    ProvisionOutput(
                        target: .docker, nodes: ["shoal-server-0", "shoal-agent-0"], k3sVersion: "v1.36.3+k3s1",
                        terraform: "ok", nodeAddress: "127.0.0.1", apiEndpoint: "https://127.0.0.1:6443",
                        hostGateway: "172.18.0.1"), step: .provision)
            ], artifacts: [try kubeconfigArtifact()])
        let output = try await handler.run(context)
        let monitoring = try output.decode(MonitoringOutput.self, step: "monitoring")
        #expect(monitoring.repoURL.hasPrefix("http://host.k3d.internal:"))
        let calls = standIns.kubectlCalls()
        #expect(calls.contains("get configmap coredns --namespace kube-system -o json"))
        let patch = try #require(calls.first { $0.hasPrefix("patch configmap coredns -n kube-system --type merge") })
        #expect(patch.contains(#"172.18.0.2 shoal-server-0\n172.18.0.1 host.k3d.internal\n"#))
        #expect(output.log.contains("CoreDNS NodeHosts: 172.18.0.1 host.k3d.internal"))

        // Without the provision step's address the step says what to do.
        let missing = stepContext(
            "monitoring", role: .monitoring, request: request, artifacts: [try kubeconfigArtifact()])
        let error = await #expect(throws: ShoalError.self) { try await handler.run(missing) }
        #expect(error?.message.contains("--gitops-advertise") == true)
    }

    // MARK: validation

    @Test func validationChecksRunWithKubectlAndTheWorkflowsKubeconfig() async throws {
        let standIns = try StandIns()
        defer { standIns.delete() }
        let handler = ValidationHandler(options: standIns.options(workDirectory: temporaryDirectory()))
        for check in HealthCheckKind.allCases {
            let output = try await handler.run(
                stepContext(
                    "validate/\(check.rawValue)", role: .validation, request: realRequest(),
                    artifacts: [try kubeconfigArtifact()], params: ["check": .string(check.rawValue)]))
            let result = try output.decode(CheckOutput.self, step: "validate/\(check.rawValue)").result
            #expect(result.passed, "\(check.rawValue): \(output.summary)")
            #expect(result.name == check.rawValue)
        }
        #expect(standIns.kubeconfigPaths().allSatisfy { !FileManager.default.fileExists(atPath: $0) })
    }
}
