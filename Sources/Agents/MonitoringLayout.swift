import Cluster
import Foundation
import GitOps
import Protocol
import ShoalSupport

extension MonitoringHandler {
    /// The repository's files for this request: the monitoring stack, Argo CD's own Application (when Argo CD is
    /// installed from its release: an air-gapped `--argocd-manifest` install is not managed from git), the example
    /// applications and the user's (`--app`).
    static func layout(
        request: WorkflowRequest, repoURL: String, manifests: [ManifestFile], spec: MonitoringStackSpec,
        log: inout [String]
    ) throws -> RepositoryLayout {
        let applications = try request.applications.map(UserApplication.parse)
        var version: String?
        if request.argocd {
            if request.argocdManifest == nil {
                version = request.argocdVersion.isEmpty ? ArgoCDInstall.defaultVersion : request.argocdVersion
            } else {
                log.append("Argo CD installed from a local manifest: argocd/ is not rendered (not managed from git)")
            }
        }
        if request.argocd && !request.realDeployment && !SimulatedKustomizeNote.kubectlAvailable {
            log.append(
                "kubectl not found: the simulated Argo CD renders kustomizations with shoal's built-in subset "
                    + "(resources, patches, namespace, replicas); install kubectl for `kubectl kustomize`")
        }
        if request.monitoringSource == "helm" {
            log.append(
                "monitoring from Helm charts: "
                    + MonitoringHelm.charts(spec).map { "\($0.chart) \($0.version)" }.joined(separator: ", ")
                    + (request.realDeployment ? "" : " (the simulated Argo CD checks them against shoal's list)"))
            let helm = MonitoringHelm.render(spec, environment: request.environment.rawValue, repoURL: repoURL)
            return try RepositoryLayout.render(
                repoURL: repoURL, monitoring: helm.values, monitoringNamespace: spec.namespace,
                argoCDVersion: version, applications: applications, examples: request.examples,
                monitoringApplications: helm.applications)
        }
        let kustomize = request.monitoringSource == "kustomize"
        return try RepositoryLayout.render(
            repoURL: repoURL, monitoring: kustomize ? MonitoringKustomize.render(spec) : manifests,
            monitoringNamespace: spec.namespace, argoCDVersion: version, applications: applications,
            examples: request.examples,
            monitoringPath: kustomize ? MonitoringKustomize.overlayPath(request.environment.rawValue) : "monitoring")
    }

    /// The example applications' Secrets, created in the cluster only (never committed): PostgreSQL's password.
    static func applyExampleSecrets(_ client: any ClusterClient, password: String, log: inout [String]) async throws {
        _ = try await client.createNamespace("postgres")
        try await client.apply(manifests: ExampleApplications.postgresSecret(password: password), serverSide: true)
        log.append("Secret postgres/\(ExampleApplications.postgresSecretName) created in the cluster (not in git)")
    }
}

/// The GitOps repository a run would commit, rendered without a cluster, a git server or an agent: what
/// `shoal create --dry-run` writes. The Applications point at where the repository would go by default (the
/// in-cluster git server, or `--gitops-remote`); an agent started with `--gitops-advertise` would point them at itself.
public enum GitOpsPreview {
    /// - Returns: the repository's address and every file, the Applications included.
    /// - Throws: `ShoalError(.invalidInput)` for an application source or a version the real run refuses too.
    public static func repository(for request: WorkflowRequest, workflow: String) throws -> (
        repoURL: String, files: [ManifestFile]
    ) {
        var spec = MonitoringStackSpec(instance: workflow, headlamp: request.headlamp)
        spec.coordinatorMetrics = request.coordinatorMetrics
        let repoURL = request.gitopsRemote ?? InClusterGitServer.repoURL(workflow: workflow)
        var log: [String] = []
        let layout = try MonitoringHandler.layout(
            request: request, repoURL: repoURL, manifests: MonitoringStack.render(spec), spec: spec, log: &log)
        return (repoURL, layout.files)
    }
}
