import Cluster
import GitOps
import Protocol

extension Runbook {
    /// The runbook's sections on what the GitOps repository manages beyond the monitoring stack: Argo CD itself,
    /// user applications, the monitoring stack's source, and syncing right after a push.
    static func gitOpsFeatures(workflow: String, request: WorkflowRequest) -> [String] {
        guard request.argocd else { return [] }
        let repository = "output/gitops/\(workflow)"
        var lines: [String] = []
        lines.append("")
        lines.append("### Argo CD manages itself")
        lines.append("")
        if request.argocdManifest != nil {
            lines.append("Argo CD was installed from a local manifest (air-gapped): it is not managed from git. Upgrade it")
            lines.append("by running `kubectl apply --server-side --force-conflicts -n argocd -f NEW-install.yaml`.")
        } else {
            lines.append("`apps/argocd.yaml` syncs `argocd/`: a Kustomize directory over the pinned release's install")
            lines.append("manifest, with `server.insecure` and the NodePort \(ArgoCDInstall.nodePort) as patches, applied server")
            lines.append("side. Upgrading Argo CD is a commit (deleting that Application leaves Argo CD installed):")
            lines.append("")
            lines.append("```sh")
            lines.append("sed -i 's#/argo-cd/v[0-9.]*/#/argo-cd/vNEW/#' \(repository)/argocd/kustomization.yaml")
            lines.append("git -C \(repository) commit -am 'Argo CD vNEW'")
            lines.append("shoal gitops push \(workflow) -d output")
            lines.append("kubectl -n argocd get application argocd        # Synced/Healthy at the new version")
            lines.append("```")
        }
        lines.append("")
        lines.append("### Applications")
        lines.append("")
        lines.append("One Application per application in `apps/`, each deployed into the namespace of its name:")
        lines.append("")
        lines.append("```sh")
        lines.append("shoal app add \(workflow) shop shop -d output          # a directory of \(repository), committed with it")
        lines.append("shoal app add \(workflow) guestbook https://github.com/argoproj/argocd-example-apps.git//guestbook -d output")
        lines.append("shoal app add \(workflow) podinfo helm:https://stefanprodan.github.io/podinfo//podinfo@6.7.1 -d output")
        lines.append("shoal app remove \(workflow) shop -d output           # Argo CD prunes its resources")
        lines.append("```")
        if request.examples {
            lines.append("")
            lines.append("The examples `web`, `postgres` and `valkey` live in `examples/`. PostgreSQL's password is in the")
            lines.append("Secret `postgres/\(ExampleApplications.postgresSecretName)` (created in the cluster, not in git) and in")
            lines.append("`output/kubeconfigs/\(workflow)/postgres-password` (0600).")
        }
        lines.append("")
        lines.append("A chart's values are `values/NAME.yaml` in git; the version is exact. A demo cluster does not fetch")
        lines.append("charts: it checks repository, chart and version against the list shoal ships (see docs/gitops.md).")
        lines.append("")
        lines.append("### The monitoring stack's source")
        lines.append("")
        if request.monitoringSource == "helm" {
            let charts = MonitoringHelm.charts(MonitoringStackSpec(instance: workflow, headlamp: request.headlamp))
            lines.append("The monitoring stack is Helm charts from their registries, one Application each (no")
            lines.append("`apps/monitoring.yaml`); their values are in `\(MonitoringHelm.directory)/`:")
            lines.append("")
            lines.append("| Application | Chart | Version | Repository | Values |")
            lines.append("|---|---|---|---|---|")
            for chart in charts {
                lines.append(
                    "| `\(chart.applicationPath)` | \(chart.chart) | \(chart.version) | \(chart.repository) | "
                        + "`\(chart.valuesPath)` |")
            }
            lines.append("")
            lines.append("An upgrade is a commit of a new exact version in the Application's `targetRevision`, then")
            lines.append("`shoal gitops push \(workflow) -d output`. A demo cluster does not fetch charts: it knows")
            lines.append("these versions only, and an unknown one is a failed sync naming the file. `--join-fleet` of")
            lines.append("this cluster is not available yet (its fleet ApplicationSet deploys a directory).")
        } else if request.monitoringSource == "kustomize" {
            let overlay = MonitoringKustomize.overlayPath(request.environment.rawValue)
            lines.append("`apps/monitoring.yaml` syncs `\(overlay)`: `monitoring/base/` with the")
            lines.append("\(request.environment.rawValue) overlay (Prometheus retention and resources, Headlamp replicas). Check an")
            lines.append("edit before committing with `kubectl kustomize \(repository)/\(overlay)`.")
        } else {
            lines.append("`apps/monitoring.yaml` syncs the plain directory `monitoring/` (`--monitoring-source kustomize` lays")
            lines.append("it out as a base with an overlay per environment).")
        }
        lines.append("")
        lines.append("### Sync on push")
        lines.append("")
        lines.append("`shoal gitops push` and `shoal app add|remove` annotate every Application with")
        lines.append("`\(ApplicationRefresh.annotation)=normal`, so Argo CD compares at once instead of at its next poll")
        lines.append("(3 minutes). By hand: `kubectl -n argocd annotate application NAME \(ApplicationRefresh.annotation)=normal --overwrite`.")
        lines.append("For pushes made with plain `git push`, let the in-cluster git server of a real cluster call Argo CD's")
        lines.append("webhook (its Deployment allows `\(ArgoCDWebhook.host)` as a webhook host; NODE is a node's address):")
        lines.append("")
        lines.append("```sh")
        lines.append("curl -u shoal:\"$(cat output/kubeconfigs/\(workflow)/gitops-push-password)\" \\")
        lines.append("  -H 'Content-Type: application/json' -X POST \\")
        lines.append("  http://NODE:\(InClusterGitServer.nodePort)/api/v1/repos/shoal/\(workflow)/hooks \\")
        lines.append("  -d '{\"type\":\"gitea\",\"active\":true,\"events\":[\"push\"],\"config\":{\"url\":\"\(ArgoCDWebhook.url)\",\"content_type\":\"json\"}}'")
        lines.append("```")
        lines += fleetSection(workflow: workflow, request: request)
        return lines
    }
}
