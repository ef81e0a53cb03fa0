import AgentRuntime
import Cluster
import Foundation
import Protocol
import ShoalSupport
import Terraform

/// Provisions K3s: writes the Terraform for the target; in demo mode runs
/// terraform init/validate/plan where it is installed and hands on the
/// simulated cluster, in real mode runs init/validate/plan/apply and waits
/// for the nodes (`RealProvision`). Either way the kubeconfig is handed on.
struct InfraHandler: StepHandler {
    let options: AgentOptions

    func run(_ context: StepContext) async throws -> StepOutput {
        let request = context.request
        let workflow = context.workflow
        let topology = Planner.topology(for: request)
        let directory = "\(options.workDirectory)/terraform/\(workflow)"
        let kubeconfigPath = "\(options.workDirectory)/kubeconfigs/\(workflow)/kubeconfig"
        guard let target = K3sTarget(rawValue: request.target.rawValue) else {
            throw ShoalError(.invalidInput, "unknown target '\(request.target.rawValue)'")
        }
        let spec = TerraformSpec(
            clusterName: workflow, target: target, nodes: request.nodes, highAvailability: topology.highAvailability,
            k3sVersion: request.k3sVersion.isEmpty ? TerraformSpec.defaultK3sVersion : request.k3sVersion,
            hosts: try request.hosts.map(SSHHost.parse), sshKeyPath: request.sshKeyPath,
            airgapDirectory: request.airgapDirectory, kubeconfigPath: kubeconfigPath)
        let files = try TerraformRenderer.render(spec)
        var artifacts: [Artifact] = []
        for file in files {
            try SecureFile.write(file.contents, to: "\(directory)/\(file.name)")
            artifacts.append(Artifact(name: "terraform/\(file.name)", path: "terraform/\(workflow)/\(file.name)", text: file.contents))
        }
        let token = TerraformRunner.generateToken()
        var log: [String] = []
        var values: [String: JSONValue] = [
            "target": .string(target.rawValue),
            "nodes": .array(TerraformRenderer.nodeNames(spec).map { .string($0) }),
            "k3sVersion": .string(spec.k3sVersion),
        ]
        if request.realDeployment {
            return try await RealProvision(options: options, context: context, spec: spec, directory: directory)
                .run(token: token, artifacts: artifacts, values: values)
        }
        var terraformNote: String
        if TerraformRunner.isInstalled() {
            let runner = TerraformRunner()
            for (name, call) in [("init", 0), ("validate", 1)] {
                let result = call == 0 ? try await runner.initialize(directory: directory) : try await runner.validate(directory: directory)
                log.append("terraform \(name): exit \(result.status)")
                guard result.succeeded else {
                    throw ShoalError(.commandFailed, "terraform \(name) failed in \(directory)", cause: result.standardErrorTail())
                }
            }
            let (result, plan) = try await runner.plan(directory: directory, token: token)
            log.append("terraform plan: exit \(result.status)")
            guard result.succeeded, let plan else {
                throw ShoalError(.commandFailed, "terraform plan failed in \(directory)", cause: result.standardErrorTail())
            }
            values["terraformPlan"] = ["add": .number(Double(plan.add)), "change": .number(Double(plan.change)), "destroy": .number(Double(plan.destroy))]
            terraformNote = "terraform init+validate+plan ok (\(plan.add) to add)"
        } else {
            terraformNote = "terraform not installed: init/validate/plan skipped"
            log.append(terraformNote)
        }
        values["terraform"] = .string(terraformNote)

        // Demo mode: the simulated cluster stands where apply would have built one.
        let cluster = SimulatedCluster.provision(
            name: workflow, nodes: request.nodes, servers: topology.servers, k3sVersion: spec.k3sVersion)
        let address = "127.0.0.1"
        values["nodeAddress"] = .string(address)
        values["apiEndpoint"] = .string("https://\(address):6443")
        if target == .docker {
            // Where `--add-host host.k3d.internal:host-gateway` points on a default docker install (the default
            // bridge's gateway); the model has no docker to ask.
            values["hostGateway"] = "172.17.0.1"
        }
        artifacts.append(cluster.artifact(workflow: workflow))
        let kubeconfig = Kubeconfig.render(cluster: workflow, server: "https://\(address):6443", token: Secrets.password(length: 40))
        artifacts.append(Artifact(name: "kubeconfig", path: "kubeconfigs/\(workflow)/kubeconfig", sensitive: true, text: kubeconfig))
        artifacts.append(Artifact(name: "k3s-token", path: nil, sensitive: true, text: token))
        let summary = "\(request.nodes) node(s) on \(target.rawValue), K3s \(spec.k3sVersion); \(terraformNote)"
        return StepOutput(summary: summary, values: values, artifacts: artifacts, log: log)
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
