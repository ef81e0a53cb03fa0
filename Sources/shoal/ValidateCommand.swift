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
            throw ShoalError(.notFound, "no shoal journal in '\(output)'; pass -o with the output directory of a run")
        }
        journal = try Journal(path: path)
        guard let snapshot = try journal.workflow(id) else {
            throw ShoalError(.notFound, "no workflow '\(id)' in \(output); `shoal list -o \(output)` shows them")
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
            the simulated cluster's saved state, whose Argo CD reads the GitOps repository in OUTPUT/gitops/WORKFLOW \
            at HEAD: commit a change there and validate again to see what Argo CD would make of it. Exits 0 when \
            every check passes, 1 otherwise.
            """, HelpExamples.validate))

    @Argument(help: "The workflow id.", completion: .workflowIDs) var workflow: String
    @Option(name: [.short, .long], help: "Output directory of the run.") var output = "output"
    @Option(help: "How long one kubectl call may take (real mode), e.g. 30s.") var kubectlTimeout = "30s"
    @Flag(help: "Print the report as JSON.") var json = false
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard let timeout = parseDuration(kubectlTimeout), timeout >= .seconds(1) else {
            throw ValidationError("--kubectl-timeout must be a duration of at least 1s, e.g. 30s")
        }
    }

    func run() async throws {
        _ = logging.bootstrap(label: "shoal.validate")
        let report: HealthReport
        let recorded: RecordedWorkflow
        do {
            recorded = try RecordedWorkflow(workflow, output: output)
            guard recorded.snapshot.state != .destroyed else {
                throw ShoalError(.notFound, "workflow \(workflow) was destroyed; there is no cluster to check")
            }
            report = try await Self.check(recorded, kubectlTimeout: parseDuration(kubectlTimeout) ?? .seconds(30))
        } catch let error as ShoalError {
            fail(error.description)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            Swift.print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            Self.printReport(report, workflow: recorded.snapshot)
        }
        if report.status != "healthy" { throw ExitCode.failure }
    }

    /// Runs every applicable check against the workflow's cluster.
    static func check(_ recorded: RecordedWorkflow, kubectlTimeout: Duration) async throws -> HealthReport {
        let expectation = Planner.expectation(for: recorded.snapshot.request)
        if recorded.snapshot.request.realDeployment {
            return try await withKubeconfig(recorded) { path in
                let client = KubectlClient(kubeconfig: path, timeout: kubectlTimeout)
                return await HealthChecks.report(client: client, expectation: expectation)
            }
        }
        let cluster = try simulatedCluster(recorded)
        let client = cluster.client(gitSource: gitSource(recorded))
        return await HealthChecks.report(client: client, expectation: expectation)
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
            let repoURL = recorded.snapshot.step("monitoring")?.values["repoURL"]?.stringValue,
            FileManager.default.fileExists(atPath: directory + "/.git")
        else { return GitCLISource() }
        return RewritingGitSource(rewrites: [repoURL: directory])
    }

    static func printReport(_ report: HealthReport, workflow: WorkflowSnapshot) {
        let mode = workflow.request.realDeployment ? "real cluster" : "simulated cluster"
        Swift.print("Validation of \(workflow.id) (\(mode))")
        Swift.print("  \(pad("CHECK", 14)) \(pad("RESULT", 6)) \(pad("WEIGHT", 6)) DETAIL")
        for check in report.checks {
            let result = pad(check.passed ? "pass" : "FAIL", 6)
            Swift.print("  \(pad(check.name, 14)) \(result) \(pad(String(check.weight), 6)) \(check.message)")
            guard !check.passed else { continue }
            for detail in check.details.prefix(12) { Swift.print("      \(detail)") }
            if let remedy = check.remedy { Swift.print("      remedy: \(remedy)") }
        }
        Swift.print("")
        Swift.print("Health: score \(report.score)/100 (\(report.status))")
    }
}
