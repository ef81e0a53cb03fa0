import ArgumentParser
import Cluster
import Coordinator
import Foundation
import Protocol
import ShoalSupport
import Yams

/// What `-o/--output` prints: the table of today, a wider one, a versioned
/// JSON or YAML document (docs/cli.md), or the ids only.
enum OutputFormat: String, CaseIterable, Sendable {
    case table, wide, json, yaml, name

    static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// JSON and YAML: documents for scripts.
    var isDocument: Bool { self == .json || self == .yaml }

    /// The one-line answer to a `-o` value that is no format.
    static func problem(with value: String) -> String {
        if looksLikeDirectory(value) {
            return "-o is the output format now (\(names)); the output directory is -d/--dir "
                + "(e.g. -d \(Names.printable(String(value.prefix(80)))))"
        }
        return "unknown output format '\(Names.printable(String(value.prefix(40))))'; use one of \(names)"
    }

    /// A value that was an output directory before `-o` meant the format.
    static func looksLikeDirectory(_ value: String) -> Bool {
        if value.contains("/") || value.hasPrefix(".") || value.hasPrefix("~") || value == "output" { return true }
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: value, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// Answers, before parsing, a `-o DIR` (or `--output DIR`) of the days when `-o` was the directory, on any
    /// command: a one-line hint to use `-d`, exit 64. Values after `--` are left alone.
    static func refuseDirectoryValue(in arguments: [String]) {
        var index = 0
        while index < arguments.count {
            let word = arguments[index]
            if word == "--" { return }
            var value: String?
            if word == "-o" || word == "--output" {
                value = index + 1 < arguments.count ? arguments[index + 1] : nil
                index += 1
            } else if word.hasPrefix("--output=") {
                value = String(word.dropFirst("--output=".count))
            } else if word.hasPrefix("-o"), word.count > 2, !word.hasPrefix("--") {
                value = String(word.dropFirst(2))
            }
            if let value, OutputFormat(rawValue: value) == nil, looksLikeDirectory(value) {
                fail(problem(with: value), code: ExitCode.validationFailure.rawValue)
            }
            index += 1
        }
    }
}

/// `-o/--output FORMAT` of every command that shows something.
struct OutputFormatOption: ParsableArguments {
    @Option(
        name: [.short, .long],
        help: ArgumentHelp("Output format: table (default), wide, json, yaml or name.", valueName: "format"),
        completion: .list(OutputFormat.allCases.map(\.rawValue)))
    var output: String?

    /// The format asked for; a value that is none is refused in `validate()`.
    var format: OutputFormat { output.flatMap(OutputFormat.init(rawValue:)) ?? .table }

    func validate() throws {
        if let output, OutputFormat(rawValue: output) == nil {
            fail(OutputFormat.problem(with: output), code: ExitCode.validationFailure.rawValue)
        }
    }

    /// Refuses `-o name` where there are no names to print (a command whose output has no ids).
    func refuseName(_ what: String) {
        if format == .name {
            fail("-o name: \(what) has no names to print; use table, wide, json or yaml",
                code: ExitCode.validationFailure.rawValue)
        }
    }

    /// Prints `document` as JSON or YAML; returns false for the other formats, which the caller prints.
    func printDocument<Document: Encodable>(_ document: Document) -> Bool {
        guard format.isDocument else { return false }
        do {
            Swift.print(try OutputDocuments.render(document, as: format), terminator: "")
        } catch {
            fail("cannot encode the output as \(format.rawValue): \(error)")
        }
        return true
    }
}

/// The documents of `-o json` and `-o yaml`. Their shape is versioned by `apiVersion`; a field is only ever added
/// within one version. docs/cli.md lists every field.
enum OutputDocuments {
    static let apiVersion = "shoal/v1"

    /// JSON (keys sorted, indented, one trailing newline) or YAML (the same data, in encoding order).
    static func render<Document: Encodable>(_ document: Document, as format: OutputFormat) throws -> String {
        switch format {
        case .yaml:
            return try YAMLEncoder().encode(document)
        default:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            return String(decoding: try encoder.encode(document), as: UTF8.self) + "\n"
        }
    }

    /// A time in milliseconds since 1970 as RFC 3339, UTC, e.g. 2026-12-01T12:34:56.789Z.
    static func timestamp(_ milliseconds: Int64) -> String {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000).formatted(
            Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    static func milliseconds(from start: Int64?, to end: Int64?) -> Int64? {
        guard let start, let end, end >= start else { return nil }
        return end - start
    }

    /// `kind: Workflow` (status) and the items of `kind: WorkflowList` (list, without `steps`).
    struct Workflow: Encodable {
        var apiVersion: String?
        var kind: String?
        var id: String
        var state: String
        var createdAt: String
        var finishedAt: String?
        var durationMilliseconds: Int64?
        var error: String?
        var revision: Int
        var operation: Operation?
        var request: Request
        var steps: [Step]?

        /// - Parameters:
        ///   - document: a document of its own (apiVersion and kind), not an item of a list.
        ///   - steps: with the steps (status), or without (an item of list).
        init(_ snapshot: WorkflowSnapshot, document: Bool, steps: Bool) {
            apiVersion = document ? OutputDocuments.apiVersion : nil
            kind = document ? "Workflow" : nil
            id = snapshot.id
            state = snapshot.state.rawValue
            createdAt = timestamp(snapshot.createdAt)
            finishedAt = snapshot.finishedAt.map(timestamp)
            durationMilliseconds = milliseconds(from: snapshot.createdAt, to: snapshot.finishedAt)
            error = snapshot.error
            revision = snapshot.revision
            operation = snapshot.operation.map { Operation(kind: $0.kind.rawValue, target: $0.target) }
            request = Request(snapshot.request)
            self.steps = steps ? snapshot.steps.map(Step.init) : nil
        }
    }

    struct Operation: Encodable {
        var kind: String
        var target: String
    }

    struct Request: Encodable {
        var platform: String
        var environment: String
        var nodes: Int
        var target: String
        var highAvailability: Bool
        var monitoring: Bool
        var headlamp: Bool
        var realDeployment: Bool

        init(_ request: WorkflowRequest) {
            platform = request.platform
            environment = request.environment.rawValue
            nodes = request.nodes
            target = request.target.rawValue
            highAvailability = request.highAvailability
            monitoring = request.monitoring
            headlamp = request.headlamp
            realDeployment = request.realDeployment
        }
    }

    struct Step: Encodable {
        var name: String
        var role: String
        var state: String
        var attempt: Int
        var needs: [String]
        var critical: Bool
        var agent: String?
        var host: String?
        var pid: Int32?
        var startedAt: String?
        var finishedAt: String?
        var durationMilliseconds: Int64?
        var summary: String?
        var error: String?

        init(_ step: StepSnapshot) {
            name = step.name
            role = step.role.rawValue
            state = step.state.rawValue
            attempt = step.attempt
            needs = step.needs
            critical = step.critical
            agent = step.agent
            host = step.host
            pid = step.pid
            startedAt = step.startedAt.map(timestamp)
            finishedAt = step.finishedAt.map(timestamp)
            durationMilliseconds = OutputDocuments.milliseconds(from: step.startedAt, to: step.finishedAt)
            summary = step.summary
            error = step.error
        }
    }

    /// `kind: WorkflowList`, `AgentList`, `KeyList`, `ContextList`.
    struct List<Item: Encodable>: Encodable {
        var apiVersion = OutputDocuments.apiVersion
        var kind: String
        var items: [Item]
    }

    /// The items of `kind: AgentList`.
    struct Agent: Encodable {
        var id: String
        var role: String
        var host: String
        var pid: Int32
        var subscribed: Bool
        var inFlight: [InFlight]
        var lastHeartbeat: String
        var lastHeartbeatAgeMilliseconds: Int64
        var rejected: [String: Int]

        init(_ agent: AgentInfo, now: Int64) {
            id = agent.id
            role = agent.role.rawValue
            host = agent.host
            pid = agent.pid
            subscribed = agent.subscribed
            inFlight = agent.inFlight.map { InFlight(workflow: $0.workflow, step: $0.step, attempt: $0.attempt) }
            lastHeartbeat = timestamp(agent.lastHeartbeat)
            lastHeartbeatAgeMilliseconds = max(0, now - agent.lastHeartbeat)
            rejected = agent.rejected ?? [:]
        }
    }

    struct InFlight: Encodable {
        var workflow: String
        var step: String
        var attempt: Int
    }

    /// `kind: Stats`.
    struct Stats: Encodable {
        var apiVersion = OutputDocuments.apiVersion
        var kind = "Stats"
        var workflows: Int
        var running: Int
        var agents: Int
        var residentBytes: Int
        var rejected: [String: Int]

        init(_ stats: Protocol.Stats) {
            workflows = stats.workflows
            running = stats.running
            agents = stats.agents
            residentBytes = stats.residentBytes
            rejected = stats.rejected
        }
    }

    /// `kind: HealthReport` (validate): the report's own fields, as `validate --json` always printed them, and the
    /// workflow checked.
    struct Health: Encodable {
        var apiVersion = OutputDocuments.apiVersion
        var kind = "HealthReport"
        var workflow: String
        var score: Int
        var status: String
        var checks: [CheckResult]
        /// Every cluster of the fleet and the fleet's score; absent for a cluster without a fleet.
        var fleet: FleetReport?

        init(_ report: HealthReport, workflow: String) {
            self.workflow = workflow
            score = report.score
            status = report.status
            checks = report.checks
            fleet = report.fleet
        }
    }

    /// The items of `kind: KeyList` (keys list).
    struct Key: Encodable {
        var name: String
        var publicKey: String
        var file: String
    }

    /// `kind: StepLogList` (logs).
    struct StepLogs: Encodable {
        var apiVersion = OutputDocuments.apiVersion
        var kind = "StepLogList"
        var workflow: String
        var state: String
        var items: [Item]

        struct Item: Encodable {
            var step: String
            var attempt: Int
            var agent: String
            var host: String
            var outcome: String
            var lines: [String]
            var dropped: Int
            var error: String?
        }

        init(_ reply: LogsReply) {
            workflow = reply.workflow
            state = reply.state.rawValue
            items = reply.steps.map {
                Item(
                    step: $0.step, attempt: $0.attempt, agent: $0.agent, host: $0.host, outcome: $0.outcome.rawValue,
                    lines: $0.lines, dropped: $0.dropped, error: $0.error)
            }
        }
    }

    /// `kind: Submission` (create --detach).
    struct Submission: Encodable {
        var apiVersion = OutputDocuments.apiVersion
        var kind = "Submission"
        var workflow: String
        var coordinator: String
    }
}
