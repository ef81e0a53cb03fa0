import GitOps
import Protocol

extension Runbook {
    /// The runbook's section on a fleet: how another cluster joins this one's Argo CD, and what then deploys there.
    static func fleetSection(workflow: String, request: WorkflowRequest) -> [String] {
        guard request.argocd, request.monitoring else { return [] }
        let repository = "output/gitops/\(workflow)"
        let secret = "argocd/\(FleetApplicationSets.secretName(cluster: "NAME"))"
        let label = "\(FleetApplicationSets.fleetLabel)=\(workflow)"
        return [
            "",
            "### Many clusters (a fleet)",
            "",
            "Another cluster joins this one's Argo CD with `--join-fleet` (same output directory). shoal applies its",
            "cluster Secret (`\(secret)`: server, token or client certificate)",
            "through this cluster's kubeconfig, never into git, and commits two ApplicationSets to \(repository):",
            "`\(FleetApplicationSets.monitoringPath)` (a `clusters` generator: the monitoring stack on every cluster",
            "labelled `\(label)`, this one included, replacing `apps/monitoring.yaml`) and",
            "`\(FleetApplicationSets.applicationsPath)` (a `matrix` of the members and the applications of `apps/`).",
            "",
            "```sh",
            "shoal create -d output --join-fleet \(workflow)                  # a new cluster, registered here",
            "shoal create -d output --join-fleet \(workflow) --real-deployment --target ssh --hosts ...",
            "kubectl -n argocd get secrets -l \(label)     # the registered clusters",
            "kubectl -n argocd get applicationsets,applications",
            "shoal validate \(workflow) -d output                              # each cluster's score and the fleet's",
            "shoal app add \(workflow) shop shop -d output                     # also deployed to every member",
            "```",
            "",
            "To take a cluster out, delete its Secret (`kubectl -n argocd delete secret "
                + "\(FleetApplicationSets.secretName(cluster: "NAME"))`): the ApplicationSets delete its Applications.",
            "Argo CD no longer reaches that cluster then, so what they deployed",
            "stays there: delete those namespaces on it yourself.",
        ]
    }
}
