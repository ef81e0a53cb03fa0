import FoundationEssentials
import ShoalCore

/// Every message type of protocol v4. Unknown types are rejected when decoded.
public enum MessageType: String, Codable, Sendable, CaseIterable {
    // agent -> coordinator (DEALER -> ROUTER)
    case hello, heartbeat, ack, result, bye, fetch
    // coordinator -> agent (ROUTER -> DEALER)
    case welcome, confirm, rehello, fetchReply = "fetch-reply"
    // coordinator -> agent (PUB, topic agent/<id>/)
    case step
    // client -> coordinator (DEALER -> ROUTER) and the replies
    case submit, accepted, status, statusReply = "status-reply", list, listReply = "list-reply"
    case agents, agentsReply = "agents-reply"
    case cancel, resume, stats, statsReply = "stats-reply"
    case logs, logsReply = "logs-reply", artifacts, artifactsReply = "artifacts-reply"
    // coordinator -> clients (PUB, topic workflow/<id>/)
    case event
    // either way, in reply to a frame that could not be accepted
    case error
}

/// The header frame of every message.
public struct Header: Codable, Sendable, Equatable {
    /// Protocol version; a peer rejects versions it does not speak.
    public var v: Int
    public var type: MessageType
    /// Unique message id; replies carry the id of the request in `re`.
    public var id: String
    public var workflow: String?
    public var step: String?
    public var attempt: Int?
    /// Sender's clock, milliseconds since 1970; informational only.
    public var sentAt: Int64
    /// The sending agent's id, for messages from agents.
    public var sender: String?
    /// For replies: the id of the message answered.
    public var re: String?

    public init(
        type: MessageType, workflow: String? = nil, step: String? = nil, attempt: Int? = nil,
        sender: String? = nil, re: String? = nil, id: String = MessageID.next()
    ) {
        self.v = WireFormat.version
        self.type = type
        self.id = id
        self.workflow = workflow
        self.step = step
        self.attempt = attempt
        self.sentAt = Int64(Date().timeIntervalSince1970 * 1000)
        self.sender = sender
        self.re = re
    }

    /// The idempotency key of the step this message concerns, when it has one.
    public var stepKey: StepKey? {
        guard let workflow, let step, let attempt else { return nil }
        return StepKey(workflow: workflow, step: step, attempt: attempt)
    }
}

/// `(workflow, step, attempt)`: what makes running a step idempotent.
public struct StepKey: Hashable, Codable, Sendable, CustomStringConvertible {
    public var workflow: String
    public var step: String
    public var attempt: Int
    public init(workflow: String, step: String, attempt: Int) {
        self.workflow = workflow
        self.step = step
        self.attempt = attempt
    }
    public var description: String { "\(workflow)/\(step)#\(attempt)" }
}

// MARK: Bodies

/// An agent introduces itself.
public struct Hello: Codable, Sendable, Equatable {
    public var agent: String
    public var role: Role
    public var host: String
    public var pid: Int32
    /// Steps it runs at the same time.
    public var capacity: Int
    public var version: String
    /// The heartbeat interval the agent asks for while it holds no step (absent: the bus's interval always).
    public var idleHeartbeatIntervalMilliseconds: Int?
    public init(
        agent: String, role: Role, host: String, pid: Int32, capacity: Int, version: String,
        idleHeartbeatIntervalMilliseconds: Int? = nil
    ) {
        self.agent = agent
        self.role = role
        self.host = host
        self.pid = pid
        self.capacity = capacity
        self.version = version
        self.idleHeartbeatIntervalMilliseconds = idleHeartbeatIntervalMilliseconds
    }
}

/// The coordinator's answer to hello: the bus's timing and where to subscribe.
public struct Welcome: Codable, Sendable, Equatable {
    public var heartbeatIntervalMilliseconds: Int
    public var liveness: Int
    /// TCP port of the PUB socket, on the host the agent reached the ROUTER at.
    public var eventsPort: Int?
    /// A full events endpoint, when the coordinator knows a better one.
    public var eventsEndpoint: String?
    /// The heartbeat interval granted to the agent while it holds no step, by which the coordinator judges it
    /// then (absent: `heartbeatIntervalMilliseconds` always).
    public var idleHeartbeatIntervalMilliseconds: Int?
    public init(
        heartbeatIntervalMilliseconds: Int, liveness: Int, eventsPort: Int?, eventsEndpoint: String?,
        idleHeartbeatIntervalMilliseconds: Int? = nil
    ) {
        self.heartbeatIntervalMilliseconds = heartbeatIntervalMilliseconds
        self.liveness = liveness
        self.eventsPort = eventsPort
        self.eventsEndpoint = eventsEndpoint
        self.idleHeartbeatIntervalMilliseconds = idleHeartbeatIntervalMilliseconds
    }
}

public struct Heartbeat: Codable, Sendable, Equatable {
    /// Steps the agent holds: running now, or finished with a result not confirmed yet (agent -> coordinator only).
    public var inFlight: [StepKey]
    /// Frames the agent rejected so far, by reason (agent -> coordinator only).
    public var rejected: [String: Int]?
    public init(inFlight: [StepKey] = [], rejected: [String: Int]? = nil) {
        self.inFlight = inFlight
        self.rejected = rejected
    }
}

/// The coordinator's counters, for operators and the fault-injection suite.
public struct Stats: Codable, Sendable, Equatable {
    /// Frames rejected on the control socket, by reason.
    public var rejected: [String: Int]
    /// Workflows in the journal.
    public var workflows: Int
    /// Workflows held in memory: the running ones (finished ones are read
    /// from the journal when asked for).
    public var running: Int
    public var agents: Int
    /// Resident memory of the coordinator process, in bytes (0 when unknown).
    public var residentBytes: Int
    /// Artifact chunks served to agents (`fetch`) since the coordinator started.
    public var fetchedChunks: Int?
    public init(
        rejected: [String: Int], workflows: Int, running: Int = 0, agents: Int, residentBytes: Int,
        fetchedChunks: Int? = nil
    ) {
        self.fetchedChunks = fetchedChunks
        self.rejected = rejected
        self.workflows = workflows
        self.running = running
        self.agents = agents
        self.residentBytes = residentBytes
    }
}

/// A file produced by a step. Agents share no file system, so files travel
/// in results and the coordinator writes the user's output tree.
public struct Artifact: Codable, Sendable, Equatable {
    /// Logical name that later steps look up, e.g. `kubeconfig`.
    public var name: String
    /// Where it goes in the output tree, relative to it; nil keeps it in the journal only.
    public var path: String?
    /// Permission bits; sensitive artifacts are always written 0600.
    public var mode: Int
    public var sensitive: Bool
    public var data: Data

    public init(name: String, path: String?, mode: Int = 0o644, sensitive: Bool = false, data: Data) {
        self.name = name
        self.path = path
        self.mode = sensitive ? 0o600 : mode
        self.sensitive = sensitive
        self.data = data
    }

    public init(name: String, path: String?, mode: Int = 0o644, sensitive: Bool = false, text: String) {
        self.init(name: name, path: path, mode: mode, sensitive: sensitive, data: Data(text.utf8))
    }

    public var text: String { String(decoding: data, as: UTF8.self) }

    /// The roots of the output tree an artifact's `path` may name.
    public static let outputRoots: Set<String> = [
        "terraform", "kubeconfigs", "manifests", "gitops", "argocd-apps", "docs", "reports",
    ]

    /// Whether `path` (which came from the network) is `<root>/<workflow>/...` in the output tree: a known root,
    /// this workflow, at most 1024 bytes, and no absolute, empty, `.` or `..` part.
    public static func isOutputPath(_ path: String, workflow: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count >= 3 && outputRoots.contains(String(parts[0])) && parts[1] == workflow
            && !path.hasPrefix("/") && path.utf8.count <= 1024
            && parts.allSatisfy { !$0.isEmpty && $0 != ".." && $0 != "." }
    }
}

/// An artifact as a step assignment names it: everything but the bytes, which the agent fetches by digest
/// (`fetch`) unless it holds them already.
public struct ArtifactRef: Codable, Sendable, Equatable, Hashable {
    public var name: String
    public var path: String?
    public var mode: Int
    public var sensitive: Bool
    /// Length of the bytes.
    public var size: Int
    /// SHA-256 of the bytes, 64 lowercase hex digits.
    public var digest: String

    public init(name: String, path: String?, mode: Int, sensitive: Bool, size: Int, digest: String) {
        self.name = name
        self.path = path
        self.mode = mode
        self.sensitive = sensitive
        self.size = size
        self.digest = digest
    }

    /// Whether `digest` is 64 lowercase hex digits, as a SHA-256 digest is written on the wire.
    public static func isDigest(_ digest: String) -> Bool {
        digest.utf8.count == 64 && digest.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The artifact these bytes make, under this reference's name, path and mode.
    public func artifact(data: Data) -> Artifact {
        Artifact(name: name, path: path, mode: mode, sensitive: sensitive, data: data)
    }
}

/// Asks the coordinator for a chunk of an artifact's bytes (agent -> coordinator).
public struct FetchRequest: Codable, Sendable, Equatable {
    /// The artifact's SHA-256, as its `ArtifactRef` gives it.
    public var digest: String
    /// Where the chunk starts; less than the artifact's size (0 for an empty artifact).
    public var offset: Int
    public init(digest: String, offset: Int) {
        self.digest = digest
        self.offset = offset
    }
}

/// A chunk of an artifact (coordinator -> agent), in reply to `fetch`.
public struct FetchReply: Codable, Sendable, Equatable {
    public var digest: String
    public var offset: Int
    /// The artifact's whole size.
    public var total: Int
    /// At most `WireFormat.fetchChunkBytes` bytes from `offset`.
    public var data: Data
    public init(digest: String, offset: Int, total: Int, data: Data) {
        self.digest = digest
        self.offset = offset
        self.total = total
        self.data = data
    }
}

/// What a step hands to the steps after it.
public struct StepOutput: Codable, Sendable, Equatable {
    /// One line for the progress display.
    public var summary: String
    public var values: [String: JSONValue]
    public var artifacts: [Artifact]
    /// Log lines (subprocess output included); never secrets.
    public var log: [String]

    public init(summary: String, values: [String: JSONValue] = [:], artifacts: [Artifact] = [], log: [String] = []) {
        self.summary = summary
        self.values = values
        self.artifacts = artifacts
        self.log = log
    }
}

/// A step, published to the one agent chosen to run it.
public struct StepAssignment: Codable, Sendable, Equatable {
    public var role: Role
    public var request: WorkflowRequest
    public var params: [String: JSONValue]
    /// Values of the steps it depends on (transitively), by step name.
    public var inputs: [String: [String: JSONValue]]
    /// Artifacts of those steps, the latest of each name, by reference: the agent fetches the bytes it does
    /// not hold before the step runs.
    public var artifacts: [ArtifactRef]

    public init(
        role: Role, request: WorkflowRequest, params: [String: JSONValue], inputs: [String: [String: JSONValue]],
        artifacts: [ArtifactRef]
    ) {
        self.role = role
        self.request = request
        self.params = params
        self.inputs = inputs
        self.artifacts = artifacts
    }
}

/// Several steps of one workflow for one agent in one `step` message (v4): its header names the workflow but
/// no step, and the workflow's request comes once for them all.
public struct StepBatch: Codable, Sendable, Equatable {
    /// One step of the batch: a `StepAssignment` without the request, with its step name and attempt.
    public struct Entry: Codable, Sendable, Equatable {
        public var step: String
        public var attempt: Int
        public var role: Role
        public var params: [String: JSONValue]
        public var inputs: [String: [String: JSONValue]]
        public var artifacts: [ArtifactRef]
        public init(
            step: String, attempt: Int, role: Role, params: [String: JSONValue],
            inputs: [String: [String: JSONValue]], artifacts: [ArtifactRef]
        ) {
            self.step = step
            self.attempt = attempt
            self.role = role
            self.params = params
            self.inputs = inputs
            self.artifacts = artifacts
        }
    }

    public var request: WorkflowRequest
    public var steps: [Entry]
    /// The most steps one batch carries.
    public static let maxSteps = 1024

    public init(request: WorkflowRequest, steps: [Entry]) {
        self.request = request
        self.steps = steps
    }

    /// Decodes a batch strictly and names its steps: 1 to `maxSteps` of them, each with a 1-100 byte step
    /// name and an attempt of 1-10000.
    /// - Throws: `DecodeError(.malformedBody)` or `DecodeError(.invalidField)`.
    public static func decode(_ body: [UInt8], workflow: String) throws(DecodeError) -> [(StepKey, StepAssignment)] {
        var requests = RequestCache()
        return try decode(body, workflow: workflow, requests: &requests)
    }

    /// As `decode(_:workflow:)`, with the request from `requests` when it is the last one decoded there.
    public static func decode(
        _ body: [UInt8], workflow: String, requests: inout RequestCache
    ) throws(DecodeError) -> [(StepKey, StepAssignment)] {
        let batch: StepBatch
        if let quick = quick(body, requests: &requests) {
            batch = quick
        } else {
            batch = try Codec.decodeBody(StepBatch.self, body)
        }
        guard (1...maxSteps).contains(batch.steps.count) else {
            throw DecodeError(.invalidField, "a step batch has 1-\(maxSteps) steps, not \(batch.steps.count)")
        }
        return try batch.steps.map { entry throws(DecodeError) in
            guard (1...100).contains(entry.step.utf8.count), (1...10_000).contains(entry.attempt) else {
                throw DecodeError(.invalidField, "a step of a batch has an invalid name or attempt")
            }
            return (
                StepKey(workflow: workflow, step: entry.step, attempt: entry.attempt),
                StepAssignment(
                    role: entry.role, request: batch.request, params: entry.params, inputs: entry.inputs,
                    artifacts: entry.artifacts)
            )
        }
    }
}

public enum StepOutcome: String, Codable, Sendable {
    case succeeded, failed
}

/// A step's result, agent -> coordinator; resent until confirmed.
public struct StepResult: Codable, Sendable, Equatable {
    public var outcome: StepOutcome
    public var output: StepOutput
    /// Why it failed, for the user.
    public var error: String?
    public var agent: String
    public var host: String
    public var pid: Int32
    /// Milliseconds since 1970 on the agent's clock.
    public var startedAt: Int64
    public var finishedAt: Int64

    public init(
        outcome: StepOutcome, output: StepOutput, error: String?, agent: String, host: String, pid: Int32,
        startedAt: Int64, finishedAt: Int64
    ) {
        self.outcome = outcome
        self.output = output
        self.error = error
        self.agent = agent
        self.host = host
        self.pid = pid
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }
}

/// Several steps' keys in one `ack` or `confirm` (v4): the body of one whose header names no step. One whose
/// header names its step has an empty body, as before.
public struct KeyList: Codable, Sendable, Equatable {
    public var keys: [StepKey]
    /// The most keys one message carries.
    public static let maxKeys = 4096
    public init(keys: [StepKey]) { self.keys = keys }

    /// Decodes a key list strictly: 1 to `maxKeys` keys, each with a 1-100 byte step, a DNS-label workflow and
    /// an attempt of 1-10000.
    /// - Throws: `DecodeError(.malformedBody)` or `DecodeError(.invalidField)`.
    public static func decode(_ body: [UInt8]) throws(DecodeError) -> KeyList {
        let list: KeyList
        if let quick = quick(body) { list = quick } else { list = try Codec.decodeBody(KeyList.self, body) }
        guard (1...maxKeys).contains(list.keys.count) else {
            throw DecodeError(.invalidField, "a key list has 1-\(maxKeys) keys, not \(list.keys.count)")
        }
        for key in list.keys {
            guard Names.isDNSLabel(key.workflow), (1...100).contains(key.step.utf8.count),
                (1...10_000).contains(key.attempt)
            else { throw DecodeError(.invalidField, "a key list names an invalid key") }
        }
        return list
    }

    /// The body as JSON, written directly.
    public var compactJSON: [UInt8] {
        var json = CompactJSON(capacity: 16 + 80 * keys.count)
        json.beginObject()
        json.key("keys")
        json.beginArray()
        for key in keys { json.stepKey(key) }
        json.endArray()
        json.endObject()
        return json.bytes
    }
}

/// A reply to a frame that could not be accepted.
public struct ErrorReply: Codable, Sendable, Equatable {
    public var reason: String
    public var message: String
    public init(reason: String, message: String) {
        self.reason = reason
        self.message = message
    }
}

public struct Submit: Codable, Sendable, Equatable {
    public var request: WorkflowRequest
    /// The role whose agent runs the `plan` step: `planner` (absent) or
    /// `bench` (the no-op workloads of `make bench`).
    public var planner: Role?
    /// Params of the `plan` step (the bench planner reads its workload there).
    public var params: [String: JSONValue]?
    /// Set for a workflow that acts on an earlier one (`shoal validate` and
    /// `shoal destroy` through a coordinator); `request` is then ignored: the
    /// target's request is used.
    public var operation: WorkflowOperation?
    public init(
        request: WorkflowRequest, planner: Role? = nil, params: [String: JSONValue]? = nil,
        operation: WorkflowOperation? = nil
    ) {
        self.request = request
        self.planner = planner
        self.params = params
        self.operation = operation
    }
}

public struct Accepted: Codable, Sendable, Equatable {
    public var workflow: String
    public var eventsPort: Int?
    public init(workflow: String, eventsPort: Int?) {
        self.workflow = workflow
        self.eventsPort = eventsPort
    }
}

/// An empty body, for messages whose header says it all.
public struct Empty: Codable, Sendable, Equatable {
    public init() {}
    /// `{}`, as every encoder writes it.
    static let encoded: [UInt8] = [UInt8(ascii: "{"), UInt8(ascii: "}")]
}

/// A workflow that acts on an earlier one (its target): run the health checks
/// again, or destroy its cluster where its Terraform state is.
public struct WorkflowOperation: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// `validate/<check>` steps and `health-report` on the validation agents.
        case validate
        /// A `destroy` step on the infra agent that ran the target's `provision` step.
        case destroy
    }

    public var kind: Kind
    /// The id of the workflow acted on.
    public var target: String

    public init(kind: Kind, target: String) {
        self.kind = kind
        self.target = target
    }
}

/// Asks for the log lines of a workflow's steps (`logs`).
public struct LogsRequest: Codable, Sendable, Equatable {
    /// One step's log; every step's when nil.
    public var step: String?
    public init(step: String? = nil) { self.step = step }
}

/// The log of one step: its latest attempt that returned a result.
public struct StepLog: Codable, Sendable, Equatable {
    public var step: String
    public var attempt: Int
    public var agent: String
    public var host: String
    public var outcome: StepOutcome
    /// The lines, oldest first; at most `StepLog.maxBytes` in all, the oldest
    /// dropped first.
    public var lines: [String]
    /// Lines dropped to keep the log within its bound.
    public var dropped: Int
    /// The step's error, when it failed.
    public var error: String?

    /// The bound of one step's log in the journal, in bytes (256 KiB).
    public static let maxBytes = 256 << 10

    public init(
        step: String, attempt: Int, agent: String, host: String, outcome: StepOutcome, lines: [String],
        dropped: Int, error: String?
    ) {
        self.step = step
        self.attempt = attempt
        self.agent = agent
        self.host = host
        self.outcome = outcome
        self.lines = lines
        self.dropped = dropped
        self.error = error
    }
}

public struct LogsReply: Codable, Sendable, Equatable {
    public var workflow: String
    /// The workflow's state when the reply was made (a follower stops once it is finished).
    public var state: WorkflowSnapshot.State
    /// In workflow order; steps without a result yet are left out.
    public var steps: [StepLog]
    public init(workflow: String, state: WorkflowSnapshot.State, steps: [StepLog]) {
        self.workflow = workflow
        self.state = state
        self.steps = steps
    }
}

/// Asks for a workflow's artifacts that have a place in the output tree (`artifacts`).
public struct ArtifactsRequest: Codable, Sendable, Equatable {
    /// Include the sensitive ones (kubeconfig, passwords); left out when false.
    public var sensitive: Bool
    public init(sensitive: Bool = false) { self.sensitive = sensitive }
}

public struct ArtifactsReply: Codable, Sendable, Equatable {
    public var workflow: String
    /// The latest artifact of each output path, paths relative to the output tree.
    public var artifacts: [Artifact]
    /// Paths of the sensitive artifacts left out (no `sensitive` asked for).
    public var withheld: [String]
    /// Paths left out because the reply would exceed `ArtifactsReply.maxBytes`.
    public var tooLarge: [String]

    /// How many artifact bytes one reply carries at most: 32 MiB, about 43 MiB once base64-encoded in the
    /// body, under the 64 MiB message limit.
    public static let maxBytes = 32 << 20

    public init(workflow: String, artifacts: [Artifact], withheld: [String], tooLarge: [String]) {
        self.workflow = workflow
        self.artifacts = artifacts
        self.withheld = withheld
        self.tooLarge = tooLarge
    }
}
