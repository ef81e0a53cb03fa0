import AgentRuntime
import Cluster
import GitOps
import Protocol
import ShoalSupport

/// Installs the pinned Argo CD (server-side apply, NodePort 30080, plain
/// HTTP behind the NodePort) and hands on its admin password.
struct ArgoCDHandler: StepHandler {
    func run(_ context: StepContext) async throws -> StepOutput {
        let workflow = context.workflow
        var cluster = try SimulatedCluster.load(from: context)
        let install = ArgoCDInstall(version: context.request.argocdVersion.isEmpty ? ArgoCDInstall.defaultVersion : context.request.argocdVersion)
        let password = Secrets.password()
        cluster.installArgoCD(version: install.version, adminPassword: password)
        let log = install.kubectlSteps().map { "kubectl " + $0.joined(separator: " ") }
        return StepOutput(
            summary: "Argo CD \(install.version) on NodePort 30080",
            values: ["version": .string(install.version), "nodePort": 30080, "namespace": "argocd"],
            artifacts: [
                cluster.artifact(workflow: workflow),
                Artifact(
                    name: "argocd-admin-password", path: "kubeconfigs/\(workflow)/argocd-admin-password", sensitive: true,
                    text: password + "\n"),
            ],
            log: log)
    }
}

extension SimulatedCluster {
    /// The state as an artifact for the steps after this one. Sensitive: the
    /// model holds the cluster's Secrets.
    func artifact(workflow: String) -> Artifact {
        Artifact(name: "cluster-state", path: "kubeconfigs/\(workflow)/simulated-cluster.json", sensitive: true, data: encoded())
    }

    /// The simulated cluster handed on by earlier steps.
    static func load(from context: StepContext) throws -> SimulatedCluster {
        guard let artifact = context.artifact("cluster-state") else {
            throw ShoalError(.invalidInput, "no cluster state from the provision step")
        }
        return try SimulatedCluster.decode(artifact.data)
    }
}
