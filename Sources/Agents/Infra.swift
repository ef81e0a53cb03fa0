import AgentRuntime
import Cluster
import Foundation
import Protocol
import ShoalSupport
import Terraform

/// Provisions K3s: writes the Terraform for the target; in demo mode runs
/// terraform init/validate/plan where it is installed and hands on the
/// simulated cluster, in real mode checks the ssh hosts' keys, then runs
/// init/validate/plan/apply and waits for the nodes (`RealProvision`). Either
/// way the kubeconfig is handed on. The `destroy` step runs terraform destroy
/// here, where the workflow's Terraform state is (`InfraDestroy`).
struct InfraHandler: StepHandler {
    let options: AgentOptions

    func run(_ context: StepContext) async throws -> StepOutput {
        if context.step == .destroy {
            return try await InfraDestroy(options: options, context: context).run()
        }
        let request = context.request
        let workflow = context.workflow
        let topology = Planner.topology(for: request)
        let directory = Provisioning.terraformDirectory(workDirectory: options.workDirectory, workflow: workflow)
        let kubeconfigPath = "\(options.workDirectory)/kubeconfigs/\(workflow)/kubeconfig"
        var spec = try Provisioning.terraformSpec(
            for: request, workflow: workflow, kubeconfigPath: kubeconfigPath,
            advertiseAddress: request.advertiseAddress ?? options.advertiseAddress)
        let target = spec.target
        var log: [String] = []
        if request.realDeployment && target == .ssh {
            // Before anything is installed: a reinstalled host's new key stops the run here, naming the host.
            let keys = HostKeys(keyscan: options.sshKeyscanExecutable, keygen: options.sshKeygenExecutable)
            let (hosts, lines) = try await keys.pin(
                spec.hosts, knownHosts: options.knownHostsPath ?? HostKeys.defaultKnownHosts())
            spec.hosts = hosts
            spec.knownHostsPath = "\(directory)/known_hosts"
            try SecureFile.write(lines.joined(separator: "\n") + "\n", to: "\(directory)/known_hosts", mode: 0o644)
            log.append("SSH host keys checked: \(hosts.map { HostKeys.knownHostsName($0) }.joined(separator: ", "))")
        }
        let files = try TerraformRenderer.render(spec)
        var artifacts: [Artifact] = []
        for file in files {
            try SecureFile.write(file.contents, to: "\(directory)/\(file.name)")
            artifacts.append(Artifact(name: "terraform/\(file.name)", path: "terraform/\(workflow)/\(file.name)", text: file.contents))
        }
        let token = TerraformRunner.generateToken()
        guard let wireTarget = Target(rawValue: target.rawValue) else {
            throw ShoalError(.invalidInput, "unknown target '\(target.rawValue)'")
        }
        var output = ProvisionOutput(
            target: wireTarget, nodes: TerraformRenderer.nodeNames(spec), k3sVersion: spec.k3sVersion,
            terraform: "", nodeAddress: Provisioning.nodeAddress(spec), apiEndpoint: Provisioning.apiEndpoint(spec))
        if request.realDeployment {
            return try await RealProvision(options: options, context: context, spec: spec, directory: directory)
                .run(token: token, artifacts: artifacts, output: output, log: log)
        }
        // Demo mode: the simulated cluster stands where apply would have built one. It needs nothing terraform
        // reports, so it is modelled while terraform runs.
        async let clusterState = Self.simulatedClusterState(
            workflow: workflow, nodes: request.nodes, servers: topology.servers, k3sVersion: spec.k3sVersion)
        var terraformNote: String
        if TerraformRunner.isInstalled(executable: options.terraformExecutable) {
            let runner = TerraformRunner(executable: options.terraformExecutable)
            // init installs nothing for shoal's configuration (no provider but the built-in one, no module, no
            // backend: see versions.tf), and validate and plan need only what init installs: the three run at
            // once. Should init have installed something after all, validate and plan run again after it. validate
            // only reads the directory and plan writes nothing validate reads (its plan file, its state lock); an
            // init error comes first, then a validation error.
            async let earlyValidation = runner.validate(directory: directory)
            async let earlyPlanning = runner.plan(directory: directory, token: token)
            let initialized = try await runner.initialize(directory: directory)
            log.append("terraform init: exit \(initialized.status)")
            guard initialized.succeeded else {
                throw ShoalError(
                    .commandFailed, "terraform init failed in \(directory)", cause: initialized.standardErrorTail())
            }
            var validated = try await earlyValidation
            var planning = try await earlyPlanning
            if Provisioning.initInstalledSomething(directory: directory) {
                async let validation = runner.validate(directory: directory)
                async let replanning = runner.plan(directory: directory, token: token)
                validated = try await validation
                planning = try await replanning
            }
            log.append("terraform validate: exit \(validated.status)")
            guard validated.succeeded else {
                throw ShoalError(
                    .commandFailed, "terraform validate failed in \(directory)", cause: validated.standardErrorTail())
            }
            let (result, plan) = planning
            log.append("terraform plan: exit \(result.status)")
            guard result.succeeded, let plan else {
                throw ShoalError(.commandFailed, "terraform plan failed in \(directory)", cause: result.standardErrorTail())
            }
            output.terraformPlan = TerraformPlanCounts(add: plan.add, change: plan.change, destroy: plan.destroy)
            terraformNote = "terraform init+validate+plan ok (\(plan.add) to add)"
        } else {
            terraformNote = "terraform not installed: init/validate/plan skipped"
            log.append(terraformNote)
        }
        output.terraform = terraformNote

        if target == .docker {
            // Where `--add-host host.k3d.internal:host-gateway` points on a default docker install (the default
            // bridge's gateway); the model has no docker to ask.
            output.hostGateway = "172.17.0.1"
        }
        artifacts.append(await clusterState)
        let kubeconfig = Kubeconfig.render(
            cluster: workflow, server: Provisioning.apiEndpoint(spec), token: Secrets.password(length: 40))
        artifacts.append(
            Artifact(
                name: ArtifactName.kubeconfig, path: "kubeconfigs/\(workflow)/kubeconfig", sensitive: true,
                text: kubeconfig))
        artifacts.append(Artifact(name: ArtifactName.k3sToken, path: nil, sensitive: true, text: token))
        let summary = "\(request.nodes) node(s) on \(target.rawValue), K3s \(spec.k3sVersion); \(terraformNote)"
        return try StepOutput(summary: summary, typed: output, artifacts: artifacts, log: log)
    }
}

extension InfraHandler {
    /// The `cluster-state` artifact of a newly provisioned simulated cluster.
    static func simulatedClusterState(workflow: String, nodes: Int, servers: Int, k3sVersion: String) async
        -> Artifact
    {
        SimulatedCluster.provision(name: workflow, nodes: nodes, servers: servers, k3sVersion: k3sVersion)
            .artifact(workflow: workflow)
    }
}

/// How a request becomes a Terraform spec, and the addresses that spec hands on.
public enum Provisioning {
    /// The infra step that tears a workflow's cluster down where its Terraform state is.
    public static let destroyStep = StepName.destroy.wireName

    /// Where the infra agent keeps a workflow's Terraform configuration and state.
    public static func terraformDirectory(workDirectory: String, workflow: String) -> String {
        "\(workDirectory)/terraform/\(workflow)"
    }

    /// Whether `terraform init` left in `directory` what it installs (providers, modules, their lock file): then
    /// what ran beside it must run again.
    static func initInstalledSomething(directory: String) -> Bool {
        FileManager.default.fileExists(atPath: "\(directory)/.terraform")
            || FileManager.default.fileExists(atPath: "\(directory)/.terraform.lock.hcl")
    }

    /// The spec the infra agent provisions for `request`: hosts parsed, each with its `--node-ip` and
    /// `--flannel-iface`, and the addresses.
    /// - Throws: `ShoalError(.invalidInput)` for a bad host, or a per-host setting that names no host.
    public static func terraformSpec(
        for request: WorkflowRequest, workflow: String, kubeconfigPath: String, advertiseAddress: String?
    ) throws -> TerraformSpec {
        guard let target = K3sTarget(rawValue: request.target.rawValue) else {
            throw ShoalError(.invalidInput, "unknown target '\(request.target.rawValue)'")
        }
        let parsed = try request.hosts.map(SSHHost.parse)
        let names = Set(parsed.map(\.host))
        for (flag, values) in [("--node-ip", request.nodeIPs), ("--flannel-iface", request.flannelInterfaces)] {
            if let unknown = values.keys.sorted().first(where: { !names.contains($0) }) {
                throw ShoalError(
                    .invalidInput, "\(flag) \(Names.printable(unknown))=...: no --hosts entry has that HOST")
            }
        }
        let hosts = parsed.map { host in
            var copy = host
            copy.nodeIP = request.nodeIPs[host.host]
            copy.flannelInterface = request.flannelInterfaces[host.host]
            return copy
        }
        let spec = TerraformSpec(
            clusterName: workflow, target: target, nodes: request.nodes,
            highAvailability: Planner.topology(for: request).highAvailability,
            k3sVersion: request.k3sVersion.isEmpty ? TerraformSpec.defaultK3sVersion : request.k3sVersion,
            hosts: hosts, sshKeyPath: request.sshKeyPath, airgapDirectory: request.airgapDirectory,
            kubeconfigPath: kubeconfigPath, advertiseAddress: advertiseAddress, apiAddress: request.apiAddress)
        try spec.validate()
        return spec
    }

    /// Where the NodePorts answer for other hosts: the advertised address, else the first SSH host, else this
    /// machine's loopback (`local` and `docker` without an advertised address serve this host only).
    public static func nodeAddress(_ spec: TerraformSpec) -> String {
        if let address = spec.advertiseAddress { return address }
        if spec.target == .ssh, let first = spec.hosts.first { return first.host }
        return "127.0.0.1"
    }

    /// The API server's URL as the kubeconfig names it.
    public static func apiEndpoint(_ spec: TerraformSpec) -> String {
        let host = nodeAddress(spec)
        return "https://\(host.contains(":") ? "[\(host)]" : host):6443"
    }
}

/// A kubeconfig for one cluster with a bearer token.
enum Kubeconfig {
    static func render(cluster: String, server: String, token: String) -> String {
        """
        apiVersion: v1
        kind: Config
        clusters:
        - name: \(cluster)
          cluster:
            server: \(server)
            insecure-skip-tls-verify: true
        users:
        - name: \(cluster)-admin
          user:
            token: \(token)
        contexts:
        - name: shoal-\(cluster)
          context:
            cluster: \(cluster)
            user: \(cluster)-admin
        current-context: shoal-\(cluster)

        """
    }
}
