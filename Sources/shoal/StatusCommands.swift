import ArgumentParser
import Coordinator
import Foundation
import Protocol
import ShoalSupport

/// Where to read workflows from: a running coordinator, or the journal of an
/// embedded run in the output directory.
struct SourceOptions: ParsableArguments {
    @Option(help: "Ask a running coordinator, e.g. tcp://10.0.0.5:7401.") var coordinator: String?
    @Option(name: [.short, .long], help: "Output directory of an embedded run.") var output = "output"
    @OptionGroup var security: ClientSecurityOptions

    func validate() throws {
        if let coordinator {
            guard coordinator.hasPrefix("tcp://") || coordinator.hasPrefix("ipc://") else {
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
        if let coordinator {
            return try await withClient(coordinator) { try $0.list() }
        }
        return try journal().summaries()
    }

    func workflow(_ id: String) async throws -> WorkflowSnapshot {
        try Names.validateWorkflowID(id)
        if let coordinator {
            return try await withClient(coordinator) { try $0.status(id) }
        }
        return try local(id).workflow
    }

    /// The journal of the embedded run in the output directory, and one workflow of it.
    /// - Throws: `ShoalError(.notFound)` when there is no journal or no such workflow.
    func local(_ id: String) throws -> (journal: Journal, workflow: WorkflowSnapshot) {
        let journal = try journal()
        guard let workflow = try journal.workflow(id) else {
            throw ShoalError(.notFound, "no workflow '\(id)' in \(output); `shoal list -o \(output)` shows them")
        }
        return (journal, workflow)
    }

    private func journal() throws -> Journal {
        let path = output + "/.shoal/journal.sqlite"
        guard FileManager.default.fileExists(atPath: path) else {
            throw ShoalError(.notFound, "no shoal journal in '\(output)'; pass -o with the output directory of a run")
        }
        return try Journal(path: path)
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show a workflow and its steps.",
        discussion: HelpExamples.status)

    @Argument(help: "The workflow id.", completion: .workflowIDs) var workflow: String
    @OptionGroup var source: SourceOptions
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
        print("workflow \(snapshot.id): \(snapshot.state.rawValue)")
        let request = snapshot.request
        print(
            "  platform \(request.platform), \(request.environment.rawValue), \(request.nodes) node(s), "
                + "monitoring \(request.monitoring ? "on" : "off"), headlamp \(request.headlamp ? "on" : "off"), "
                + (request.realDeployment ? "real" : "demo"))
        if let operation = snapshot.operation { print("  \(operation.kind.rawValue) of \(operation.target)") }
        if let error = snapshot.error { print("  reason: \(error)") }
        print("  \(pad("STEP", 22)) \(pad("STATE", 10)) \(pad("ATTEMPT", 7)) \(pad("AGENT", 16)) SUMMARY")
        for step in snapshot.steps {
            print(
                "  \(pad(step.name, 22)) \(pad(step.state.rawValue, 10)) \(pad(String(step.attempt), 7)) "
                    + "\(pad(step.agent ?? "-", 16)) \(step.summary ?? step.error ?? "")")
        }
        if snapshot.state == .failed { throw ExitCode.failure }
    }
}

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List workflows.", discussion: HelpExamples.list)

    @OptionGroup var source: SourceOptions

    func run() async throws {
        let workflows: [WorkflowSnapshot]
        do {
            workflows = try await source.workflows()
        } catch let error as ShoalError {
            fail(error.description)
        }
        print("\(pad("WORKFLOW", 20)) \(pad("STATE", 10)) \(pad("NODES", 5)) \(pad("ENVIRONMENT", 12)) CREATED")
        for workflow in workflows {
            let created = Date(timeIntervalSince1970: Double(workflow.createdAt) / 1000)
            print(
                "\(pad(workflow.id, 20)) \(pad(workflow.state.rawValue, 10)) \(pad(String(workflow.request.nodes), 5)) "
                    + "\(pad(workflow.request.environment.rawValue, 12)) \(created.ISO8601Format())"
                    + (workflow.operation.map { "  \($0.kind.rawValue) of \($0.target)" } ?? ""))
        }
    }
}
