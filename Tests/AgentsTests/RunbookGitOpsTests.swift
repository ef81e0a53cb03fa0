import Protocol
import Testing

@testable import Agents

@Suite struct RunbookGitOpsTests {
    @Test func theRunbookNamesTheCommandsOfEachGitOpsFeature() {
        var request = WorkflowRequest()
        request.examples = true
        request.monitoringSource = "kustomize"
        request.environment = .staging
        let text = Runbook.render(workflow: "lab", request: request, inputs: Runbook.Inputs())
        for expected in [
            "### Argo CD manages itself", "argocd/kustomization.yaml", "shoal gitops push lab -d output",
            "shoal app add lab", "shoal app remove lab", "postgres/postgres-auth",
            "kubectl kustomize output/gitops/lab/monitoring/overlays/staging", "argocd.argoproj.io/refresh=normal",
            "http://argocd-server.argocd.svc/api/webhook",
            "### Many clusters (a fleet)", "shoal create -d output --join-fleet lab", "apps/fleet-monitoring.yaml",
            "kubectl -n argocd get secrets -l shoal.dev/fleet=lab", "shoal validate lab -d output",
        ] {
            #expect(text.contains(expected), "\(expected)")
        }
        request.monitoringSource = "helm"
        let helm = Runbook.render(workflow: "lab", request: request, inputs: Runbook.Inputs())
        for expected in [
            "apps/monitoring-prometheus.yaml", "monitoring/helm/grafana-values.yaml", "prometheus | 28.10.0",
            "https://kubernetes-sigs.github.io/headlamp", "shoal gitops push lab -d output",
        ] {
            #expect(helm.contains(expected), "\(expected)")
        }
        #expect(!helm.contains("syncs the plain directory"))
        request.argocd = false
        let off = Runbook.render(workflow: "lab", request: request, inputs: Runbook.Inputs())
        #expect(!off.contains("shoal app add"))
        #expect(!off.contains("--join-fleet"))
        request.argocd = true
        request.argocdManifest = "/srv/install.yaml"
        let airgapped = Runbook.render(workflow: "lab", request: request, inputs: Runbook.Inputs())
        #expect(airgapped.contains("not managed from git"))
    }
}
