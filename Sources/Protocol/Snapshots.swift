/// The state of a workflow as clients see it (status replies and events).
public struct WorkflowSnapshot: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        /// `interrupted`: the process that drove it stopped before it ended (an embedded `shoal create` stopped by
        /// a signal or killed); nothing runs it until `resume`, which keeps the steps that succeeded.
        case running, succeeded, failed, cancelled, destroyed, interrupted
        /// Not running any more: followers stop here (an interrupted workflow is not running either).
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
    /// Set on a workflow that acts on an earlier one (`validate`, `destroy`); absent on a `create`.
    public var operation: WorkflowOperation?

    public init(
        id: String, state: State, request: WorkflowRequest, createdAt: Int64, finishedAt: Int64?,
        steps: [StepSnapshot], error: String?, revision: Int, operation: WorkflowOperation? = nil
    ) {
        self.operation = operation
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
    /// What the plan gave the step to run with (a validation check's name,
    /// say); kept apart from `values`, so a resumed step runs with them again.
    /// Absent when the plan gave none.
    public var params: [String: JSONValue]?
    /// Attempts charged against `--max-attempts`: a failure or a timeout of
    /// this step. An attempt lost because its agent died is not counted
    /// (absent means 0).
    public var failures: Int?

    public init(
        name: String, role: Role, needs: [String], critical: Bool, params: [String: JSONValue]? = nil
    ) {
        self.name = name
        self.role = role
        self.needs = needs
        self.critical = critical
        self.state = .pending
        self.attempt = 0
        self.values = [:]
        self.params = params
    }
}

/// What changed in a workflow, published on `workflow/<id>/` after every
/// loop turn that changed it. It applies to the snapshot at
/// `previousRevision`; a client that holds another revision missed an event
/// and asks for the whole snapshot (`status`).
public struct WorkflowEvent: Codable, Sendable, Equatable {
    public var workflow: String
    /// The revision of the last event published for this workflow (0 for the first).
    public var previousRevision: Int
    public var revision: Int
    public var state: WorkflowSnapshot.State
    public var error: String?
    public var finishedAt: Int64?
    /// The steps that changed or were added, whole, in workflow order.
    public var steps: [StepSnapshot]

    public init(
        workflow: String, previousRevision: Int, revision: Int, state: WorkflowSnapshot.State, error: String?,
        finishedAt: Int64?, steps: [StepSnapshot]
    ) {
        self.workflow = workflow
        self.previousRevision = previousRevision
        self.revision = revision
        self.state = state
        self.error = error
        self.finishedAt = finishedAt
        self.steps = steps
    }

    /// Applies the change to `snapshot` when it is at `previousRevision`.
    /// - Returns: false when the snapshot is at another revision (an event
    ///   was missed): the caller asks for a whole snapshot.
    public func apply(to snapshot: inout WorkflowSnapshot) -> Bool {
        guard snapshot.id == workflow, snapshot.revision == previousRevision else { return false }
        snapshot.state = state
        snapshot.error = error
        snapshot.finishedAt = finishedAt
        snapshot.revision = revision
        guard !steps.isEmpty else { return true }
        var positions: [String: Int] = [:]
        for (index, step) in snapshot.steps.enumerated() { positions[step.name] = index }
        for step in steps {
            if let index = positions[step.name] {
                snapshot.steps[index] = step
            } else {
                positions[step.name] = snapshot.steps.count
                snapshot.steps.append(step)
            }
        }
        return true
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
    /// The coordinator's PUB port, so that a client that did not submit the workflow (`watch`, `wait`) can
    /// follow its events; absent from older coordinators.
    public var eventsPort: Int?
    public init(workflow: WorkflowSnapshot, eventsPort: Int? = nil) {
        self.workflow = workflow
        self.eventsPort = eventsPort
    }
}

/// Every workflow the coordinator's journal holds, oldest first, without
/// their steps (`status` gives those).
public struct ListReply: Codable, Sendable, Equatable {
    public var workflows: [WorkflowSnapshot]
    public init(workflows: [WorkflowSnapshot]) { self.workflows = workflows }
}

public struct AgentsReply: Codable, Sendable, Equatable {
    public var agents: [AgentInfo]
    public init(agents: [AgentInfo]) { self.agents = agents }
}
