import ArgumentParser
import Coordinator
import Foundation
import Protocol
import ShoalSupport

/// Where to read workflows from: a running coordinator (--coordinator, $SHOAL_COORDINATOR or the context's), or
/// the journal of an embedded run in the output directory.
struct SourceOptions: ParsableArguments {
    @Option(help: "Ask a running coordinator, e.g. tcp://10.0.0.5:7401 (or $SHOAL_COORDINATOR, or the context's).")
    var coordinator: String?
    @OptionGroup var directory: OutputDirectoryOption
    @OptionGroup var security: ClientSecurityOptions

    /// The coordinator to ask, resolved; nil to read the output directory's journal.
    var endpoint: String? { ShoalConfig.coordinator(flag: coordinator).value }
    /// The output directory, resolved.
    var output: String { directory.path }

    func validate() throws {
        if let coordinator = endpoint {
            guard ShoalConfig.isEndpoint(coordinator) else {
                throw ValidationError("--coordinator must be an endpoint such as tcp://host:7401")
            }
            _ = try security.curveKeys()
        }
    }

    /// Runs `body` with a client of the coordinator given with --coordinator,
    /// connected with this peer's keys, on a thread of its own.
    func withClient<T: Sendable>(
        _ coordinator: String, _ body: @escaping @Sendable (CoordinatorClient) throws -> T
    ) async throws -> T {
        security.warnIfInsecure()
        let curve = try security.curveKeys()
        return try await runBlocking { try body(CoordinatorClient(endpoint: coordinator, curve: curve)) }
    }

    func workflows() async throws -> [WorkflowSnapshot] {
        if let coordinator = endpoint {
            return try await withClient(coordinator) { try $0.list() }
        }
        return try journal().summaries()
    }

    func workflow(_ id: String) async throws -> WorkflowSnapshot {
        try Names.validateWorkflowID(id)
        if let coordinator = endpoint {
            return try await withClient(coordinator) { try $0.status(id) }
        }
        return try local(id).workflow
    }

    /// The journal of the embedded run in the output directory, and one workflow of it.
    /// - Throws: `ShoalError(.notFound)` when there is no journal or no such workflow.
    func local(_ id: String) throws -> (journal: Journal, workflow: WorkflowSnapshot) {
        let journal = try journal()
        guard let workflow = try journal.workflow(id) else {
            throw ShoalError(.notFound, "no workflow '\(id)' in \(output); `shoal list -d \(output)` shows them")
        }
        return (journal, workflow)
    }

    private func journal() throws -> Journal {
        let path = output + "/.shoal/journal.sqlite"
        guard FileManager.default.fileExists(atPath: path) else {
            throw ShoalError(.notFound, "no shoal journal in '\(output)'; pass -d with the output directory of a run")
        }
        return try Journal(path: path)
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show a workflow and its steps.",
        discussion: HelpExamples.status)

    @Argument(help: "The workflow id.", completion: .workflowIDs) var workflow: String
    @OptionGroup var source: SourceOptions
    @OptionGroup var format: OutputFormatOption
    @Flag(name: [.short, .long], help: "Follow the workflow until it ends, as `shoal watch` does.") var watch = false
    @OptionGroup var view: ProgressOptions

    func validate() throws {
        try checkWorkflowID(workflow)
        if view.isSet && !watch { throw ValidationError("--progress, --no-color, -v and -q go with -w/--watch") }
    }

    func run() async throws {
        if watch {
            try await WorkflowWatch(workflow: workflow, source: source, view: view, timeout: nil).run()
            return
        }
        let snapshot: WorkflowSnapshot
        do {
            snapshot = try await source.workflow(workflow)
        } catch let error as ShoalError {
            fail(error.description)
        }
        show(snapshot)
        if snapshot.state == .failed { throw ExitCode.failure }
    }

    private func show(_ snapshot: WorkflowSnapshot) {
        if format.printDocument(OutputDocuments.Workflow(snapshot, document: true, steps: true)) { return }
        if format.format == .name {
            print(snapshot.id)
            return
        }
        let wide = format.format == .wide
        print("workflow \(snapshot.id): \(snapshot.state.rawValue)")
        let request = snapshot.request
        print(
            "  platform \(request.platform), \(request.environment.rawValue), \(request.nodes) node(s), "
                + "monitoring \(request.monitoring ? "on" : "off"), headlamp \(request.headlamp ? "on" : "off"), "
                + (request.realDeployment ? "real" : "demo"))
        if let operation = snapshot.operation { print("  \(operation.kind.rawValue) of \(operation.target)") }
        if let error = snapshot.error { print("  reason: \(error)") }
        let extra = wide ? " \(pad("HOST", 16)) \(pad("STARTED", 24)) \(pad("TIME", 8))" : ""
        print("  \(pad("STEP", 22)) \(pad("STATE", 10)) \(pad("ATTEMPT", 7)) \(pad("AGENT", 16))\(extra) SUMMARY")
        for step in snapshot.steps {
            let more =
                wide
                ? " \(pad(step.host ?? "-", 16)) \(pad(step.startedAt.map(OutputDocuments.timestamp) ?? "-", 24)) "
                    + pad(elapsed(step.startedAt, step.finishedAt), 8) : ""
            print(
                "  \(pad(step.name, 22)) \(pad(step.state.rawValue, 10)) \(pad(String(step.attempt), 7)) "
                    + "\(pad(step.agent ?? "-", 16))\(more) \(step.summary ?? step.error ?? "")")
        }
    }
}

/// A step's or workflow's time as `1m20s`, or `-`.
func elapsed(_ start: Int64?, _ end: Int64?) -> String {
    guard let start, let end, end >= start else { return "-" }
    return Duration.milliseconds(end - start).shortDescription
}

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List workflows.", discussion: HelpExamples.list)

    @OptionGroup var source: SourceOptions
    @OptionGroup var format: OutputFormatOption

    func run() async throws {
        let workflows: [WorkflowSnapshot]
        do {
            workflows = try await source.workflows()
        } catch let error as ShoalError {
            fail(error.description)
        }
        let items = workflows.map { OutputDocuments.Workflow($0, document: false, steps: false) }
        if format.printDocument(OutputDocuments.List(kind: "WorkflowList", items: items)) { return }
        if format.format == .name {
            for workflow in workflows { print(workflow.id) }
            return
        }
        let wide = format.format == .wide
        let extra = wide ? " \(pad("TARGET", 7)) \(pad("MODE", 5)) \(pad("TIME", 8))" : ""
        print("\(pad("WORKFLOW", 20)) \(pad("STATE", 10)) \(pad("NODES", 5)) \(pad("ENVIRONMENT", 12))\(extra) CREATED")
        for workflow in workflows {
            let created = Date(timeIntervalSince1970: Double(workflow.createdAt) / 1000)
            let request = workflow.request
            let more =
                wide
                ? " \(pad(request.target.rawValue, 7)) \(pad(request.realDeployment ? "real" : "demo", 5)) "
                    + pad(elapsed(workflow.createdAt, workflow.finishedAt), 8) : ""
            print(
                "\(pad(workflow.id, 20)) \(pad(workflow.state.rawValue, 10)) \(pad(String(request.nodes), 5)) "
                    + "\(pad(request.environment.rawValue, 12))\(more) \(created.ISO8601Format())"
                    + (workflow.operation.map { "  \($0.kind.rawValue) of \($0.target)" } ?? ""))
        }
    }
}
