import Agents
import ArgumentParser
import Cluster
import Coordinator
import Foundation
import Protocol
import ShoalSupport
import Terraform

struct DestroyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "destroy",
        abstract: "Tear down a workflow's cluster and mark the workflow destroyed.",
        discussion: HelpExamples.discussion(
            """
            Real deployments: terraform destroy in OUTPUT/terraform/WORKFLOW (it uninstalls K3s from every node or \
            removes its containers, and deletes the kubeconfig). Both modes: the credential files in \
            OUTPUT/kubeconfigs/WORKFLOW are removed, the context shoal-WORKFLOW that --merge-kubeconfig added is \
            taken out of your kubeconfig, and the workflow is marked destroyed. The GitOps repository, manifests and \
            runbook are kept. Running it again is harmless.
            """, HelpExamples.destroy))

    @Argument(help: "The workflow id.", completion: .workflowIDs) var workflow: String
    @Option(name: [.short, .long], help: "Output directory of the run.") var output = "output"
    @Flag(help: "Destroy even when the journal says the workflow is still running (after a crash, say).")
    var force = false
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        _ = logging.bootstrap(label: "shoal.destroy")
        do {
            let recorded = try RecordedWorkflow(workflow, output: output)
            try await destroy(recorded)
        } catch let error as ShoalError {
            fail(error.description)
        }
    }

    private func destroy(_ recorded: RecordedWorkflow) async throws {
        let snapshot = recorded.snapshot
        if snapshot.state == .running && !force {
            throw ShoalError(
                .invalidInput,
                "workflow \(snapshot.id) is still running according to the journal; wait for it to finish, or pass "
                    + "--force if it was interrupted")
        }
        let already = snapshot.state == .destroyed
        if snapshot.request.realDeployment && !already {
            try await terraformDestroy(recorded)
        }
        // Credentials of a cluster that is gone: the kubeconfig (terraform removes its own copy), the passwords
        // and, in demo mode, the simulated cluster itself.
        for name in ["kubeconfig", "argocd-admin-password", "grafana-admin-password", "simulated-cluster.json"] {
            try? FileManager.default.removeItem(atPath: "\(recorded.kubeconfigDirectory)/\(name)")
        }
        let record = DeploymentOptions.mergeRecord(workflow: snapshot.id, output: recorded.output)
        let recordedPath = (try? String(contentsOfFile: record, encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let kubeconfig = recordedPath.flatMap { $0.isEmpty ? nil : $0 } ?? KubeconfigFile.defaultPath()
        if try KubeconfigFile.remove(name: "shoal-\(snapshot.id)", from: kubeconfig) {
            print("kubeconfig: context shoal-\(snapshot.id) removed from \(kubeconfig)")
        }
        try? FileManager.default.removeItem(atPath: record)
        try recorded.journal.markDestroyed(snapshot.id)
        if already {
            print("workflow \(snapshot.id) was already destroyed")
        } else {
            print(
                "GitOps repository: no longer served (the monitoring agent of an embedded run stops with create); "
                    + "kept at \(recorded.output)/gitops/\(snapshot.id)")
            print("workflow \(snapshot.id) destroyed")
        }
    }

    private func terraformDestroy(_ recorded: RecordedWorkflow) async throws {
        let directory = "\(recorded.output)/terraform/\(recorded.id)"
        guard FileManager.default.fileExists(atPath: directory + "/main.tf") else {
            print("no Terraform configuration in \(directory): nothing was provisioned")
            return
        }
        guard TerraformRunner.isInstalled() else {
            throw ShoalError(
                .executableNotFound,
                "terraform is needed to destroy \(recorded.id): install "
                    + Preflight.installHint("terraform"))
        }
        // The token is a required variable; destroy-time provisioners do not use it, so a run whose token was
        // never stored can be destroyed with any token of the right shape.
        let token =
            try recorded.artifact("k3s-token")?.text.trimmingCharacters(in: .whitespacesAndNewlines)
            ?? TerraformRunner.generateToken()
        print("terraform destroy in \(directory) ...")
        let runner = TerraformRunner()
        if !FileManager.default.fileExists(atPath: directory + "/.terraform") {
            let initialized = try await runner.initialize(directory: directory)
            guard initialized.succeeded else {
                throw ShoalError(
                    .commandFailed, "terraform init failed in \(directory)", cause: initialized.standardErrorTail())
            }
        }
        let result = try await runner.destroy(directory: directory, token: token)
        guard result.succeeded else {
            throw ShoalError(
                .commandFailed,
                "terraform destroy failed in \(directory); fix the cause and run `shoal destroy \(recorded.id)` again",
                cause: result.standardErrorTail())
        }
        // The saved plan would re-create everything if applied; it is stale now.
        try? FileManager.default.removeItem(atPath: "\(directory)/\(TerraformRunner.planFile)")
    }
}
