import AgentRuntime
import Protocol

/// Writes the cluster's runbook: what was built, how to reach it, where the
/// credentials are, and what to do when a check fails.
struct DocsHandler: StepHandler {
    func run(_ context: StepContext) async throws -> StepOutput {
        let inputs = Runbook.Inputs(
            provision: try context.input(ProvisionOutput.self), monitoring: try context.input(MonitoringOutput.self),
            healthReport: try context.input(HealthReportOutput.self))
        let text = Runbook.render(workflow: context.workflow, request: context.request, inputs: inputs)
        let path = "docs/\(context.workflow)/runbook.md"
        return try StepOutput(
            summary: "runbook written (\(path))", typed: DocsOutput(path: path),
            artifacts: [Artifact(name: ArtifactName.runbook, path: path, text: text)])
    }
}

/// The runbook's text, from the request and the outputs of earlier steps.
public enum Runbook {
    /// The outputs of earlier steps the runbook shows, each nil when that step did not run.
    public struct Inputs: Sendable {
        public var provision: ProvisionOutput?
        public var monitoring: MonitoringOutput?
        public var healthReport: HealthReportOutput?

        public init(
            provision: ProvisionOutput? = nil, monitoring: MonitoringOutput? = nil,
            healthReport: HealthReportOutput? = nil
        ) {
            self.provision = provision
            self.monitoring = monitoring
            self.healthReport = healthReport
        }
    }

    public static func render(workflow: String, request: WorkflowRequest, inputs: Inputs) -> String {
        let provision = inputs.provision
        let host = provision?.nodeAddress ?? "<node address>"
        let mode = request.realDeployment ? "real deployment" : "demo (simulated cluster)"
        let kubeconfig = "output/kubeconfigs/\(workflow)/kubeconfig"
        var lines: [String] = []
        lines.append("# Runbook: \(workflow)")
        lines.append("")
        lines.append("| | |")
        lines.append("|---|---|")
        lines.append("| Platform | \(request.platform) (\(provision?.k3sVersion ?? "K3s")) |")
        lines.append("| Environment | \(request.environment.rawValue) |")
        lines.append("| Nodes | \(request.nodes) on target `\((provision?.target ?? request.target).rawValue)` |")
        lines.append("| Mode | \(mode) |")
        lines.append("| API server | \(provision?.apiEndpoint ?? "https://\(host):6443") |")
        if let repo = inputs.monitoring?.repoURL {
            lines.append("| GitOps repository | \(repo) (`output/gitops/\(workflow)`) |")
        }
        if let report = inputs.healthReport {
            lines.append("| Health at creation | \(report.score)/100 (\(report.status)) |")
        }
        lines.append("")
        lines.append("## Access")
        lines.append("")
        lines.append("| Service | URL | Login |")
        lines.append("|---|---|---|")
        if request.argocd {
            lines.append("| Argo CD | http://\(host):30080 | `admin`, password below |")
        }
        if request.monitoring {
            lines.append("| Prometheus | http://\(host):30090 | none |")
            lines.append("| Grafana | http://\(host):30300 | `admin`, password below |")
            if request.headlamp {
                lines.append("| Headlamp | http://\(host):30466 | a ServiceAccount token, below |")
            }
        }
        lines.append("")
        lines.append("## Credentials")
        lines.append("")
        lines.append("Every credential file is readable by its owner only (mode 0600). Do not paste them into tickets.")
        lines.append("")
        lines.append("The paths below are in the output directory of the run (`output` by default: pass `-d DIR` for")
        lines.append("another; from another host, add `--coordinator URL` and the keys and the files are fetched first).")
        lines.append("")
        lines.append("```sh")
        lines.append("export KUBECONFIG=$(shoal kubeconfig \(workflow) -d output)   # \(kubeconfig)")
        lines.append("shoal credentials \(workflow) -d output                      # every login and the file of its secret")
        if request.argocd {
            lines.append("# Argo CD admin password")
            lines.append("shoal credentials \(workflow) argocd --show -d output")
            lines.append("kubectl -n argocd get secret argocd-initial-admin-secret -o jsonpath='{.data.password}' | base64 -d")
        }
        if request.monitoring {
            lines.append("# Grafana admin password (a Secret in the cluster, never in git)")
            lines.append("kubectl -n monitoring get secret grafana-admin -o jsonpath='{.data.admin-password}' | base64 -d")
            if request.headlamp {
                lines.append("# Headlamp login token (valid for 24 hours)")
                lines.append("kubectl -n monitoring create token headlamp-admin --duration=24h")
            }
        }
        lines.append("```")
        lines.append("")
        lines.append("## Everyday commands")
        lines.append("")
        lines.append("```sh")
        lines.append("shoal status \(workflow) -d output      # the workflow's steps")
        lines.append("shoal validate \(workflow) -d output    # run the health checks again, with the score")
        lines.append("shoal destroy \(workflow) -d output     # tear the cluster down (safe to repeat)")
        lines.append("kubectl get nodes -o wide")
        lines.append("kubectl get pods -A")
        if request.argocd {
            lines.append("kubectl -n argocd get applications      # sync and health of every Application")
        }
        lines.append("```")
        lines.append("")
        lines.append("## GitOps")
        lines.append("")
        if request.argocd {
            lines.append("The monitoring stack lives in the GitOps repository (App of Apps: `root` points at `apps/`,")
            lines.append("one Application per component). Argo CD syncs automatically, prunes what was removed from git")
            lines.append("and heals drift. Change the cluster through git, not with `kubectl edit`: commit in")
            lines.append("`output/gitops/\(workflow)`, then `shoal gitops push \(workflow) -d output` (from any host with the")
            lines.append("output directory) hands the commit to the git server the Applications read; Argo CD syncs it.")
            lines += gitOpsFeatures(workflow: workflow, request: request)
        } else {
            lines.append("Argo CD is off: the manifests in `output/manifests/\(workflow)/` were applied directly.")
            lines.append("Re-apply them with `kubectl apply --server-side -f output/manifests/\(workflow)/monitoring/`.")
        }
        lines.append("")
        lines.append("## Troubleshooting")
        lines.append("")
        lines.append("| Symptom | Check | Remedy |")
        lines.append("|---|---|---|")
        lines.append("| Node NotReady | `kubectl describe node NAME` | on the node: `systemctl status k3s` (server) or `k3s-agent`, `journalctl -u k3s` |")
        lines.append("| kube-system pod not ready | `kubectl -n kube-system get pods` | `kubectl -n kube-system describe pod NAME`; CoreDNS needs the node network, local-path needs disk space |")
        if request.argocd {
            lines.append("| Application OutOfSync | `kubectl -n argocd get application NAME -o yaml` (status.conditions) | fix the manifest named in the condition, commit, `shoal gitops push \(workflow)`; Argo CD syncs again |")
            lines.append("| Application Degraded | Argo CD UI, the resource tree | a missing Secret, ConfigMap or ServiceAccount is the usual cause: create it or fix the reference |")
        }
        if request.monitoring {
            lines.append("| Prometheus target down | http://\(host):30090/targets | check the target's Service and the Prometheus RBAC |")
            lines.append("| Grafana shows no data | Grafana > Connections > Data sources | the datasource must reach `prometheus.monitoring.svc:9090` |")
        }
        lines.append("| Re-check health | `shoal validate \(workflow) -d output` | the report at creation: `output/docs/\(workflow)/health-report.json` |")
        if let checks = inputs.healthReport?.checks {
            let failed = checks.filter { !$0.passed }
            if !failed.isEmpty {
                lines.append("")
                lines.append("## Failed checks at creation")
                lines.append("")
                for check in failed {
                    let remedy = check.remedy ?? ""
                    lines.append("- **\(check.name)**: \(check.message)" + (remedy.isEmpty ? "" : " Remedy: \(remedy)"))
                }
            }
        }
        lines.append("")
        return lines.joined(separator: "\n")
    }
}
