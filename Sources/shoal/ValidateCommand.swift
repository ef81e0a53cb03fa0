import Agents
import ArgumentParser
import Cluster
import Coordinator
import Foundation
import Protocol
import ShoalSupport

/// A workflow of an embedded run, read from its output directory: the journal and the files it wrote.
struct RecordedWorkflow {
    let output: String
    let journal: Journal
    let snapshot: WorkflowSnapshot

    /// - Throws: `ShoalError(.notFound)` when there is no journal or no such workflow.
    init(_ id: String, output: String) throws {
        try Names.validateWorkflowID(id)
        self.output = absolutePath(output)
        let path = self.output + "/.shoal/journal.sqlite"
        guard FileManager.default.fileExists(atPath: path) else {
            throw ShoalError(.notFound, "no shoal journal in '\(output)'; pass -d with the output directory of a run")
        }
        journal = try Journal(path: path)
        guard let snapshot = try journal.workflow(id) else {
            throw ShoalError(.notFound, "no workflow '\(id)' in \(output); `shoal list -d \(output)` shows them")
        }
        self.snapshot = snapshot
    }

    var id: String { snapshot.id }
    var kubeconfigDirectory: String { "\(output)/kubeconfigs/\(id)" }

    /// The latest artifact of that name among all the workflow's steps.
    func artifact(_ name: String) throws -> Artifact? {
        try journal.artifacts(workflow: id, steps: snapshot.steps.map(\.name)).last { $0.artifact.name == name }?
            .artifact
    }
}

struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Run the health checks again on a workflow's cluster and print the report and score.",
        discussion: HelpExamples.discussion(
            """
            Real deployments are checked with kubectl and the workflow's kubeconfig. Demo runs are checked against \
            the simulated cluster's saved state, whose Argo CD syncs from the modelled in-cluster git server in that \
            state whenever it holds a new commit: commit a change in OUTPUT/gitops/WORKFLOW, `shoal gitops push \
            WORKFLOW`, and validate again to see what Argo CD makes of it. Exits 0 when every check passes, 1 \
            otherwise.

            With --coordinator the checks run as a workflow of their own on that coordinator's validation agents \
            (`validate/<check>` steps and `health-report`, the checks and scoring of create), with the workflow's \
            kubeconfig or simulated cluster from the coordinator's journal; it works from any host.
            """, HelpExamples.validate))

    @Argument(help: "The workflow id.", completion: .workflowIDs) var workflow: String
    @OptionGroup var directory: OutputDirectoryOption
    @Option(help: "How long one kubectl call may take (real mode, without --coordinator), e.g. 30s.")
    var kubectlTimeout = ShoalDuration(.seconds(30))
    @OptionGroup var format: OutputFormatOption
    @Flag(help: "The same as -o json.") var json = false
    @Option(
        help: ArgumentHelp("Run the checks on a running coordinator's validation agents, e.g. tcp://10.0.0.5:7401 (or "
            + "$SHOAL_COORDINATOR, or the context's)."))
    var coordinator: String?
    @OptionGroup var security: ClientSecurityOptions
    @OptionGroup var logging: LoggingOptions

    var output: String { directory.path }
    var endpoint: String? { ShoalConfig.coordinator(flag: coordinator).value }
    /// --json is -o json.
    var outputFormat: OutputFormat { json ? .json : format.format }

    func validate() throws {
        try checkWorkflowID(workflow)
        if json, let output = format.output, output != "json" {
            throw ValidationError("--json is -o json; give one of them")
        }
        try checkCoordinatorEndpoint(endpoint, security: security)
        try kubectlTimeout.validate(in: .seconds(1) ... .seconds(3600), option: "--kubectl-timeout")
    }

    func run() async throws {
        _ = logging.bootstrap(label: "shoal.validate")
        if let coordinator = endpoint {
            try await runRemote(coordinator)
            return
        }
        let report: HealthReport
        let recorded: RecordedWorkflow
        do {
            recorded = try RecordedWorkflow(workflow, output: output)
            guard recorded.snapshot.state != .destroyed else {
                throw ShoalError(.notFound, "workflow \(workflow) was destroyed; there is no cluster to check")
            }
            report = try await Self.check(recorded, kubectlTimeout: kubectlTimeout.duration)
        } catch let error as ShoalError {
            fail(error.description)
        }
        if !show(report, workflow: recorded.snapshot.id) {
            Self.printReport(report, workflow: recorded.snapshot, wide: outputFormat == .wide)
        }
        if report.status != "healthy" { throw ExitCode.failure }
    }

    /// The checks as a workflow on the coordinator's validation agents.
    private func runRemote(_ coordinator: String) async throws {
        let final: WorkflowSnapshot
        let target: WorkflowSnapshot
        let report: HealthReport
        do {
            target = try await RemoteOperation.target(workflow, coordinator: coordinator, security: security)
            guard target.state != .destroyed else {
                throw ShoalError(.notFound, "workflow \(workflow) was destroyed; there is no cluster to check")
            }
            let quiet = outputFormat != .table && outputFormat != .wide
            let targetID = workflow
            let display = ProgressDisplay()
            final = try await RemoteOperation.run(
                WorkflowOperation(kind: .validate, target: workflow), coordinator: coordinator, security: security,
                submitted: { id in
                    if !quiet {
                        print("validation workflow \(id) of \(targetID) submitted")
                        fflush(nil)
                    }
                }, progress: { if !quiet { display.update($0) } })
            guard final.step(.healthReport)?.state == .succeeded else {
                throw ShoalError(
                    .commandFailed,
                    "validation workflow \(final.id) \(final.state.rawValue): \(final.error ?? "no health report"); "
                        + "`shoal status \(final.id) --coordinator ...` shows its steps")
            }
            report = try RemoteOperation.report(of: final)
        } catch let error as ShoalError {
            fail(error.description)
        }
        if !show(report, workflow: target.id) {
            Swift.print("")
            Self.printReport(report, workflow: target, wide: outputFormat == .wide)
            let agents = Set(final.steps.filter { $0.kind.check != nil }.compactMap(\.agent)).sorted()
            Swift.print("Checked by \(agents.joined(separator: ", ")) (workflow \(final.id))")
        }
        if report.status != "healthy" { throw ExitCode.failure }
    }

    /// Prints the report as a document (json, yaml) or its check names (name); false for the tables.
    private func show(_ report: HealthReport, workflow: String) -> Bool {
        let document = OutputDocuments.Health(report, workflow: workflow)
        switch outputFormat {
        case .json, .yaml:
            do {
                Swift.print(try OutputDocuments.render(document, as: outputFormat), terminator: "")
            } catch {
                fail("cannot encode the report: \(error)")
            }
            return true
        case .name:
            for check in report.checks { Swift.print(check.name) }
            return true
        case .table, .wide:
            return false
        }
    }

    /// Runs every applicable check against the workflow's cluster.
    static func check(_ recorded: RecordedWorkflow, kubectlTimeout: Duration) async throws -> HealthReport {
        let expectation = Planner.expectation(for: recorded.snapshot.request)
        if recorded.snapshot.request.realDeployment {
            return try await withKubeconfig(recorded) { path in
                let client = KubectlClient(kubeconfig: path, timeout: kubectlTimeout)
                let report = await HealthChecks.report(client: client, expectation: expectation)
                return await FleetJoin.withFleet(report, recorded: recorded, client: client, timeout: kubectlTimeout)
            }
        }
        let cluster = try simulatedCluster(recorded)
        let client = cluster.client(gitSource: gitSource(recorded))
        let report = await HealthChecks.report(client: client, expectation: expectation)
        return await FleetJoin.withFleet(report, workflow: recorded.snapshot, client: client)
    }

    /// The kubeconfig the run wrote, or the journal's copy in a private temporary file.
    static func withKubeconfig<T>(_ recorded: RecordedWorkflow, _ body: (String) async throws -> T) async throws -> T {
        let written = "\(recorded.kubeconfigDirectory)/kubeconfig"
        if FileManager.default.isReadableFile(atPath: written) { return try await body(written) }
        guard let artifact = try recorded.artifact("kubeconfig") else {
            throw ShoalError(.notFound, "workflow \(recorded.id) has no kubeconfig: did its provision step succeed?")
        }
        let scratch = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
            "shoal-validate-\(UUID().uuidString)"
        ).path
        try SecureFile.createDirectory(scratch, mode: 0o700)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try SecureFile.write(artifact.data, to: scratch + "/kubeconfig", mode: 0o600)
        return try await body(scratch + "/kubeconfig")
    }

    /// The saved model: the file in the output tree (which a user may edit to try a fault), else the journal's.
    static func simulatedCluster(_ recorded: RecordedWorkflow) throws -> SimulatedCluster {
        let path = "\(recorded.kubeconfigDirectory)/simulated-cluster.json"
        if let data = FileManager.default.contents(atPath: path) { return try SimulatedCluster.decode(data) }
        guard let artifact = try recorded.artifact("cluster-state") else {
            throw ShoalError(.notFound, "workflow \(recorded.id) has no simulated cluster state (\(path))")
        }
        return try SimulatedCluster.decode(artifact.data)
    }

    /// The served URL is gone after the run: the simulated Argo CD reads the repository from its directory, under
    /// the Applications' real repoURL. A pushed remote (`--gitops-remote`) is read where it is.
    static func gitSource(_ recorded: RecordedWorkflow) -> any GitSource {
        let directory = "\(recorded.output)/gitops/\(recorded.id)"
        guard recorded.snapshot.request.gitopsRemote == nil,
            let repoURL = (try? recorded.snapshot.output(MonitoringOutput.self))??.repoURL,
            FileManager.default.fileExists(atPath: directory + "/.git")
        else { return GitCLISource() }
        return RewritingGitSource(rewrites: [repoURL: directory])
    }

    /// The report as a table; `wide` adds each check's explanation and the details of passed checks too.
    static func printReport(_ report: HealthReport, workflow: WorkflowSnapshot, wide: Bool = false) {
        let mode = workflow.request.realDeployment ? "real cluster" : "simulated cluster"
        Swift.print("Validation of \(workflow.id) (\(mode))")
        Swift.print("  \(pad("CHECK", 14)) \(pad("RESULT", 6)) \(pad("WEIGHT", 6)) DETAIL")
        for check in report.checks {
            let result = pad(check.passed ? "pass" : "FAIL", 6)
            Swift.print("  \(pad(check.name, 14)) \(result) \(pad(String(check.weight), 6)) \(check.message)")
            if wide && !check.explanation.isEmpty { Swift.print("      checks: \(check.explanation)") }
            guard !check.passed || wide else { continue }
            for detail in check.details.prefix(12) { Swift.print("      \(detail)") }
            if let remedy = check.remedy { Swift.print("      remedy: \(remedy)") }
        }
        Swift.print("")
        if let fleet = report.fleet { FleetJoin.printFleet(fleet) }
        Swift.print("Health: score \(report.score)/100 (\(report.status))")
    }
}
