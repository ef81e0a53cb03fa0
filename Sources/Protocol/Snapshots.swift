/// The state of a workflow as clients see it (status replies and events).
public struct WorkflowSnapshot: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case running, succeeded, failed, cancelled, destroyed
        public var isFinished: Bool { self != .running }
    }

    public var id: String
    public var state: State
    public var request: WorkflowRequest
    public var createdAt: Int64
    public var finishedAt: Int64?
    public var steps: [StepSnapshot]
    /// Why the workflow failed, when it did.
    public var error: String?
    /// Bumped on every change, so a client can order what it receives.
    public var revision: Int

    public init(
        id: String, state: State, request: WorkflowRequest, createdAt: Int64, finishedAt: Int64?,
        steps: [StepSnapshot], error: String?, revision: Int
    ) {
        self.id = id
        self.state = state
        self.request = request
        self.createdAt = createdAt
        self.finishedAt = finishedAt
        self.steps = steps
        self.error = error
        self.revision = revision
    }

    public func step(_ name: String) -> StepSnapshot? { steps.first { $0.name == name } }
}

public struct StepSnapshot: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case pending, assigned, running, succeeded, failed, skipped, cancelled
        public var isFinished: Bool { [.succeeded, .failed, .skipped, .cancelled].contains(self) }
    }

    public var name: String
    public var role: Role
    public var needs: [String]
    public var critical: Bool
    public var state: State
    public var attempt: Int
    public var agent: String?
    public var host: String?
    public var pid: Int32?
    public var startedAt: Int64?
    public var finishedAt: Int64?
    public var summary: String?
    public var error: String?
    /// The step's values once it succeeded (never secrets).
    public var values: [String: JSONValue]

    public init(name: String, role: Role, needs: [String], critical: Bool) {
        self.name = name
        self.role = role
        self.needs = needs
        self.critical = critical
        self.state = .pending
        self.attempt = 0
        self.values = [:]
    }
}

/// A live agent, as `shoal agents` lists it.
public struct AgentInfo: Codable, Sendable, Equatable {
    public var id: String
    public var role: Role
    public var host: String
    public var pid: Int32
    public var inFlight: [StepKey]
    public var lastHeartbeat: Int64
    public var subscribed: Bool
    /// Frames the agent reported rejecting, by reason.
    public var rejected: [String: Int]?
    public init(
        id: String, role: Role, host: String, pid: Int32, inFlight: [StepKey], lastHeartbeat: Int64, subscribed: Bool,
        rejected: [String: Int]? = nil
    ) {
        self.id = id
        self.role = role
        self.host = host
        self.pid = pid
        self.inFlight = inFlight
        self.lastHeartbeat = lastHeartbeat
        self.subscribed = subscribed
        self.rejected = rejected
    }
}

public struct StatusReply: Codable, Sendable, Equatable {
    public var workflow: WorkflowSnapshot
    public init(workflow: WorkflowSnapshot) { self.workflow = workflow }
}

public struct ListReply: Codable, Sendable, Equatable {
    public var workflows: [WorkflowSnapshot]
    public init(workflows: [WorkflowSnapshot]) { self.workflows = workflows }
}

public struct AgentsReply: Codable, Sendable, Equatable {
    public var agents: [AgentInfo]
    public init(agents: [AgentInfo]) { self.agents = agents }
}
