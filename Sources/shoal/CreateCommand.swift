import ArgumentParser
import Coordinator
import Foundation
import Protocol
import ShoalSupport
import Terraform
import Agents
import ZeroMQ

struct CreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a K3s cluster with Argo CD and monitoring, and validate it.",
        discussion: HelpExamples.discussion(
            """
            Without --coordinator, shoal starts a coordinator and one process per agent on loopback, runs the \
            workflow, and stops them. With --coordinator it submits to a running coordinator. With --dry-run \
            nothing starts and nothing is applied: the plan, the Terraform files (with `terraform plan` when \
            terraform is installed) and the monitoring manifests are written into OUTPUT/dry-run/WORKFLOW.
            """, HelpExamples.create))

    @Option(name: [.short, .long], help: "Platform (only k3s is supported).") var platform = "k3s"
    @Option(name: [.short, .long], help: "Number of nodes, 1 to 99 (default: the context's, else 1).") var nodes: Int?
    @Option(
        name: [.short, .long],
        help: ArgumentHelp(
            "Environment: development, staging or production (production needs 3+ nodes; default: the context's, "
                + "else development)."))
    var environment: String?
    @Flag(inversion: .prefixedNo, help: "Deploy the monitoring stack (Prometheus, Grafana).") var monitoring = true
    @Flag(inversion: .prefixedNo, help: "Deploy Headlamp, the Kubernetes web UI.") var headlamp = true
    @Flag(name: [.customLong("real-deployment"), .customLong("real")], help: "Deploy for real instead of the demo.")
    var realDeployment = false
    @OptionGroup var directory: OutputDirectoryOption
    @Option(help: "Validation agents to start (embedded mode).") var validationWorkers = 2
    @Option(
        help: "Submit to a running coordinator, e.g. tcp://10.0.0.5:7401 (or $SHOAL_COORDINATOR, or the context's).")
    var coordinator: String?
    @Option(help: "How long each simulated step lasts, up to 10m, e.g. 2s (demo mode).")
    var simDelay = ShoalDuration(.zero)
    @Option(
        help: ArgumentHelp(
            "Where K3s runs: local (this machine), ssh (--hosts), docker (containers). Default: the context's, else "
                + "local for one node, docker for more."))
    var target: String?
    @Option(help: "SSH hosts for --target ssh, comma separated: USER@HOST[:PORT],... (the first is the server).")
    var hosts: String?
    @Option(help: "SSH private key for --target ssh.") var sshKey: String?
    @Flag(help: "Three servers with embedded etcd (implied by production).") var ha = false
    @Option(help: "K3s release to install.") var k3sVersion = "v1.36.3+k3s1"
    @Option(help: "Argo CD release to install.") var argocdVersion = "v3.5.1"
    @Option(help: "Install K3s from this directory (k3s binary, install.sh, image tarball) instead of downloading.")
    var airgapDir: String?
    @Flag(help: "With --coordinator: print the workflow id and return without waiting.") var detach = false
    @OptionGroup var format: OutputFormatOption
    @Flag(
        help: ArgumentHelp(
            "Write the plan, the Terraform files with `terraform plan`, and the manifests into OUTPUT/dry-run/WF; "
                + "apply nothing, start nothing."))
    var dryRun = false
    @Option(
        help: ArgumentHelp(
            "Register the new cluster in the Argo CD of the cluster of workflow FLEET (same output directory), "
                + "whose ApplicationSets then deploy the monitoring stack and its applications here.",
            valueName: "fleet"))
    var joinFleet: String?
    @OptionGroup var deployment: DeploymentOptions
    @OptionGroup var security: ClientSecurityOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var view: ProgressOptions

    /// The coordinator to submit to, resolved: --coordinator, $SHOAL_COORDINATOR, the context's; nil to run embedded.
    var endpoint: String? { ShoalConfig.coordinator(flag: coordinator).value }
    var output: String { directory.path }

    func validate() throws {
        let coordinator = endpoint
        if detach && coordinator == nil { throw ValidationError("--detach needs --coordinator") }
        if !detach && format.output != nil {
            throw ValidationError("-o/--output goes with --detach (what it prints is the submitted workflow)")
        }
        if dryRun && self.coordinator != nil {
            throw ValidationError("--dry-run renders on this host and submits nothing: drop --coordinator")
        }
        if dryRun && joinFleet != nil {
            throw ValidationError("--dry-run makes no cluster, so none can join a fleet")
        }
        if dryRun && deployment.mergeKubeconfig {
            throw ValidationError("--dry-run makes no cluster, so there is no kubeconfig to merge")
        }
        if deployment.coordinatorMetrics != nil && !monitoring {
            throw ValidationError("--coordinator-metrics is scraped by the monitoring stack: drop --no-monitoring")
        }
        if coordinator != nil {
            _ = try security.curveKeys()
        } else if security.key != nil || security.coordinatorKey != nil {
            throw ValidationError(
                "--key and --coordinator-key go with --coordinator; the embedded mode makes its own keys")
        }
        try checkJoinFleet()
        var request = try makeRequest()
        request.realDeployment = false
        if let problem = request.problems().first { throw ValidationError(problem) }
        try checkTerraformInputs(request)
        try deployment.validate(embedded: coordinator == nil)
        guard (1...32).contains(validationWorkers) else {
            throw ValidationError("--validation-workers must be between 1 and 32")
        }
        if let coordinator, !ShoalConfig.isEndpoint(coordinator) {
            throw ValidationError("--coordinator must be an endpoint such as tcp://host:7401")
        }
    }

    func makeRequest() throws -> WorkflowRequest {
        var request = WorkflowRequest()
        request.platform = platform.lowercased()
        let context = ShoalConfig.active.context
        let environment = environment ?? context?.environment ?? "development"
        let nodes = nodes ?? context?.nodes ?? 1
        guard let parsed = Environment(rawValue: environment.lowercased()) else {
            throw ValidationError("--environment must be development, staging or production, got '\(environment.prefix(40))'")
        }
        request.environment = parsed
        request.nodes = nodes
        request.monitoring = monitoring
        request.headlamp = headlamp && monitoring
        request.realDeployment = realDeployment
        request.highAvailability = ha
        request.k3sVersion = k3sVersion
        request.argocdVersion = argocdVersion
        request.sshKeyPath = sshKey.map(absolutePath)
        request.airgapDirectory = airgapDir.map(absolutePath)
        request.hosts = (hosts ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if let target = target ?? context?.target {
            guard let parsed = Target(rawValue: target.lowercased()) else {
                throw ValidationError("--target must be local, ssh or docker, got '\(target.prefix(40))'")
            }
            request.target = parsed
        } else {
            request.target = !request.hosts.isEmpty ? .ssh : (nodes > 1 ? .docker : .local)
        }
        try simDelay.validate(in: .zero ... .seconds(600), option: "--sim-delay")
        request.simDelayMilliseconds = Int(simDelay.duration.milliseconds)
        deployment.apply(to: &request)
        if joinFleet != nil {
            // A member's monitoring stack comes from the fleet's ApplicationSet.
            request.monitoring = false
            request.headlamp = false
        }
        return request
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "shoal.create")
        let request = try makeRequest()
        let display = ProgressDisplay(style: view.style())
        let outcome: WorkflowSnapshot
        if dryRun {
            do {
                try await DryRun(request: request, output: absolutePath(output)).run()
            } catch let error as ShoalError {
                fail(error.description)
            }
            return
        }
        // A context's `insecure` is about its coordinator: the embedded mode is insecure only with --insecure.
        if endpoint != nil { security.warnIfInsecure() } else if security.insecure { warnInsecure() }
        let coordinator = endpoint
        if let coordinator, detach {
            let curve = try security.curveKeys()
            do {
                let accepted = try await runBlocking {
                    try CoordinatorClient(endpoint: coordinator, curve: curve).submit(request)
                }
                let document = OutputDocuments.Submission(workflow: accepted.workflow, coordinator: coordinator)
                if !format.printDocument(document) {
                    print(accepted.workflow)
                }
            } catch let error as ShoalError {
                fail(error.description)
            }
            return
        }
        if let coordinator {
            let curve = try security.curveKeys()
            do {
                outcome = try await runRemote(request, coordinator: coordinator, curve: curve, display: display)
            } catch let error as ShoalError {
                display.finish()
                fail(error.description)
            }
        } else {
            let outputPath = absolutePath(output)
            if let joinFleet {
                do {
                    _ = try FleetJoin.checkFleet(joinFleet, output: output, realDeployment: request.realDeployment)
                } catch let error as ShoalError {
                    fail(error.message)
                }
            }
            if !request.realDeployment && !view.quiet && ProcessRunner.locate("terraform") == nil {
                print("note: terraform is not installed; Terraform files are written, init/validate/plan are skipped")
            }
            // One `create` per output directory: a second would replace this run's keys and compete for its journal.
            let owner = EmbeddedRun.takeOutputDirectory(output)
            defer { withExtendedLifetime(owner) {} }
            // Workflows an interrupted run left here are marked interrupted and named, never run on silently.
            EmbeddedRun.reportLeftovers(output: output, quiet: view.quiet)
            let cluster = EmbeddedCluster(
                executable: selfExecutable(), output: outputPath, validationWorkers: validationWorkers,
                logLevel: logging.logLevel, insecure: security.insecure, logger: logger)
            cluster.agentArguments[.monitoring] = deployment.monitoringAgentArguments(
                realDeployment: request.realDeployment)
            cluster.onInterrupt = EmbeddedRun.interruptedHook(output: output)
            cluster.onSignal = { display.finish() }
            // The plan and the provisioning come first; the other agents start while they run.
            cluster.firstRoles = [.planner, .infra]
            do {
                outcome = try await cluster.run { endpoints, curve in
                    try await runRemote(
                        request, coordinator: endpoints.control, curve: curve, display: display,
                        onSnapshot: cluster.workflowProgressed)
                }
            } catch let error as ShoalError {
                display.finish()
                fail(error.description)
            }
        }
        display.summary(outcome, output: coordinator == nil ? output : nil)
        RunReport.writeAfterCreate(outcome, output: output)
        if let joinFleet {
            guard outcome.state == .succeeded else {
                fail("\(outcome.id) did not join fleet \(joinFleet): its workflow \(outcome.state.rawValue)")
            }
            do {
                for line in try await FleetJoin.join(member: outcome.id, fleet: joinFleet, output: output) { print(line) }
            } catch let error as ShoalError {
                fail("\(outcome.id) did not join fleet \(joinFleet): \(error.description)")
            }
        }
        if deployment.mergeKubeconfig && outcome.step(.provision)?.state == .succeeded {
            do {
                let context = KubeconfigMerges.defaultContext(outcome.id)
                let (file, backup) = try KubeconfigMerges.merge(
                    workflow: outcome.id, output: output, context: context, force: false)
                print("kubeconfig: context \(context) merged into \(file)")
                if let backup { print("backup: \(backup)") }
            } catch let error as ShoalError {
                fail("cannot merge the kubeconfig: \(error.description)")
            }
        }
        if outcome.state != .succeeded { throw ExitCode.failure }
    }

    private func runRemote(
        _ request: WorkflowRequest, coordinator: String, curve: CurveClientKeys?, display: ProgressDisplay,
        onSnapshot: @escaping @Sendable (WorkflowSnapshot) -> Void = { _ in }
    ) async throws -> WorkflowSnapshot {
        try await runBlocking {
            let client = try CoordinatorClient(endpoint: coordinator, curve: curve)
            let accepted = try client.submit(request)
            display.submitted(accepted.workflow)
            return try display.follow(
                client, workflow: accepted.workflow, eventsPort: accepted.eventsPort, onSnapshot: onSnapshot)
        }
    }
}

/// Runs blocking socket code on its own thread.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            do {
                continuation.resume(returning: try body())
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}

func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    return FileManager.default.currentDirectoryPath + "/" + path
}

/// The path of the running shoal binary, to start children from.
func selfExecutable() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}

/// Refuses what Terraform would refuse, before anything starts: the same
/// rules as the infra agent's (hosts, node counts per target, names).
func checkTerraformInputs(_ request: WorkflowRequest) throws {
    do {
        guard let target = K3sTarget(rawValue: request.target.rawValue) else { return }
        let hosts = try request.hosts.map(SSHHost.parse)
        let spec = TerraformSpec(
            clusterName: "shoal-check", target: target, nodes: request.nodes,
            highAvailability: Planner.topology(for: request).highAvailability,
            k3sVersion: request.k3sVersion.isEmpty ? TerraformSpec.defaultK3sVersion : request.k3sVersion, hosts: hosts,
            sshKeyPath: request.sshKeyPath, airgapDirectory: request.airgapDirectory, kubeconfigPath: "/tmp/kubeconfig")
        try spec.validate()
    } catch let error as ShoalError {
        throw ValidationError(error.message)
    }
}
