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
            removes its containers, and deletes the kubeconfig); a directory without Terraform state (the \
            infra agent of a multi-host run keeps it on its host) is refused unless --force. Both modes: the credential files in \
            OUTPUT/kubeconfigs/WORKFLOW are removed, the entries that `create --merge-kubeconfig` or `shoal \
            kubeconfig --merge` added to a kubeconfig are taken out of it (exactly those; nothing else changes), \
            and the workflow is marked destroyed. A real deployment is destroyed only after "destroy cluster \
            WORKFLOW on HOSTS? [y/N]" is answered y on a terminal, or with --yes (needed without a terminal). The \
            GitOps repository, manifests and runbook are kept. Running it again is harmless.

            With --coordinator (from any host) destroy runs as a workflow on that coordinator: its `destroy` step \
            goes to the infra agent that ran the workflow's provision step, where the Terraform state is, and waits \
            for that agent (the coordinator's --pinned-wait) if it is not connected; the coordinator then marks the \
            workflow destroyed. The local kubeconfig entries are removed as above.
            """, HelpExamples.destroy))

    @Argument(help: "The workflow id.", completion: .workflowIDs) var workflow: String
    @OptionGroup var directory: OutputDirectoryOption
    @Flag(
        help: ArgumentHelp(
            "Destroy even when the journal says the workflow is still running (after a crash, say), or when no "
                + "Terraform state is here."))
    var force = false
    @Flag(name: [.short, .long], help: "Destroy a real deployment without asking (needed without a terminal).")
    var yes = false
    @Option(
        help: ArgumentHelp("Destroy through a running coordinator, on the infra agent that holds the state (or $SHOAL_COORDINATOR, "
            + "or the context's)."))
    var coordinator: String?
    @OptionGroup var security: ClientSecurityOptions
    @OptionGroup var logging: LoggingOptions

    var output: String { directory.path }
    var endpoint: String? { ShoalConfig.coordinator(flag: coordinator).value }

    func validate() throws {
        try checkWorkflowID(workflow)
        try checkCoordinatorEndpoint(endpoint, security: security)
        if endpoint != nil && force {
            throw ValidationError(
                "--force is for the journal of an embedded run; the coordinator decides with --coordinator")
        }
    }

    func run() async throws {
        _ = logging.bootstrap(label: "shoal.destroy")
        if let coordinator = endpoint {
            do {
                try await destroyRemotely(coordinator)
            } catch let error as ShoalError {
                fail(error.description)
            }
            return
        }
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
            try Self.confirm(snapshot, yes: yes)
            try await terraformDestroy(recorded)
        }
        // Credentials of a cluster that is gone: the kubeconfig (terraform removes its own copy), the passwords
        // and, in demo mode, the simulated cluster itself.
        try Self.removeLocalCredentials(workflow: snapshot.id, output: recorded.output)
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

    /// Asks on the terminal before a real cluster is torn down; without a terminal, only `--yes` goes on.
    /// - Throws: `ShoalError(.invalidInput)` when there is no terminal to ask on, `.commandFailed` when the answer is
    ///   not yes.
    static func confirm(_ workflow: WorkflowSnapshot, yes: Bool) throws {
        guard !yes else { return }
        let hosts = Self.hosts(of: workflow)
        guard isatty(STDIN_FILENO) == 1 else {
            throw ShoalError(
                .invalidInput,
                "workflow \(workflow.id) is a real deployment (\(hosts)) and there is no terminal to confirm on: "
                    + "pass --yes to destroy it")
        }
        FileDescriptorIO.printError("destroy cluster \(workflow.id) on \(hosts)? [y/N] ")
        let answer = (readLine(strippingNewline: true) ?? "").trimmingCharacters(in: .whitespaces).lowercased()
        guard answer == "y" || answer == "yes" else {
            throw ShoalError(.commandFailed, "destroy of \(workflow.id) cancelled; nothing was changed")
        }
    }

    /// Where the workflow's cluster runs, for the question.
    static func hosts(of workflow: WorkflowSnapshot) -> String {
        let request = workflow.request
        if !request.hosts.isEmpty { return request.hosts.map(Names.printable).joined(separator: ", ") }
        let host = workflow.step(.provision)?.host.map(Names.printable) ?? "this machine"
        return request.target == .docker ? "docker containers on \(host)" : host
    }

    /// Credentials of a cluster that is gone, on this host: the kubeconfig (terraform removes its own copy), the
    /// passwords, in demo mode the simulated cluster itself, and the context `create --merge-kubeconfig` added.
    static func removeLocalCredentials(workflow: String, output: String) throws {
        let directory = "\(output)/kubeconfigs/\(workflow)"
        for name in [
            "kubeconfig", "argocd-admin-password", "grafana-admin-password", "headlamp-token", "simulated-cluster.json",
        ] {
            try? FileManager.default.removeItem(atPath: "\(directory)/\(name)")
        }
        try KubeconfigMerges.removeAll(workflow: workflow, output: output)
    }

    /// The destroy workflow on the coordinator; the target is marked destroyed there when it succeeds.
    private func destroyRemotely(_ coordinator: String) async throws {
        let target = try await RemoteOperation.target(workflow, coordinator: coordinator, security: security)
        if target.state == .destroyed {
            print("workflow \(target.id) was already destroyed")
            return
        }
        if target.request.realDeployment { try Self.confirm(target, yes: yes) }
        let id = workflow
        let display = ProgressDisplay()
        let final = try await RemoteOperation.run(
            WorkflowOperation(kind: .destroy, target: id), coordinator: coordinator, security: security,
            submitted: { operation in
                print("destroy workflow \(operation) of \(id) submitted")
                fflush(nil)
            }, progress: { display.update($0) })
        let step = final.step(Provisioning.destroyStep)
        guard final.state == .succeeded, let step else {
            throw ShoalError(
                .commandFailed,
                "destroy workflow \(final.id) \(final.state.rawValue): "
                    + "\(step?.error ?? final.error ?? "no reason given"); workflow \(id) is not destroyed "
                    + "(`shoal logs \(final.id) --coordinator ...` shows the steps' logs)")
        }
        print("\(step.summary ?? "destroyed") (agent \(step.agent ?? "?"))")
        try Self.removeLocalCredentials(workflow: id, output: absolutePath(output))
        print("workflow \(id) destroyed")
    }

    private func terraformDestroy(_ recorded: RecordedWorkflow) async throws {
        let directory = Provisioning.terraformDirectory(workDirectory: recorded.output, workflow: recorded.id)
        guard FileManager.default.fileExists(atPath: directory + "/main.tf") else {
            print("no Terraform configuration in \(directory): nothing was provisioned")
            return
        }
        if TerraformDestroy.stateResources(in: directory) == nil {
            // The files were copied here, the state was not: the infra agent that applied them has it.
            guard force else {
                throw ShoalError(
                    .notFound,
                    "no Terraform state in \(directory): the infra agent that provisioned \(recorded.id) keeps it in "
                        + "its work directory (terraform/\(recorded.id)), so destroy through that agent's coordinator "
                        + "(`shoal destroy \(recorded.id) --coordinator ...`) or run `terraform destroy` there; if "
                        + "provisioning never reached apply, pass --force to mark the workflow destroyed")
            }
            print("no Terraform state in \(directory): nothing applied here (--force)")
            return
        }
        guard TerraformRunner.isInstalled() else {
            throw ShoalError(
                .executableNotFound,
                "terraform is needed to destroy \(recorded.id): install "
                    + Preflight.installHint("terraform"))
        }
        // The token is a required variable; destroy-time provisioners do not use it, so a run whose token was
        // never stored is destroyed with a fresh one of the right shape.
        let token = try recorded.artifact("k3s-token")?.text.trimmingCharacters(in: .whitespacesAndNewlines)
        print("terraform destroy in \(directory) ...")
        do {
            _ = try await TerraformDestroy(runner: TerraformRunner()).run(directory: directory, token: token)
        } catch let error as ShoalError where error.code == .commandFailed || error.code == .timeout {
            throw ShoalError(
                error.code, error.message + "; fix the cause and run `shoal destroy \(recorded.id)` again",
                cause: error.cause)
        }
    }
}
