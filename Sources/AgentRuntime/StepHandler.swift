import Logging
import Protocol

/// Everything a step handler gets: the step, its inputs, a logger, and the lease it runs under.
public struct StepContext: Sendable {
    public var key: StepKey
    public var assignment: StepAssignment
    /// The bytes of the artifacts the assignment names, fetched (or found in the agent's cache) and checked
    /// against their digests before the step runs.
    public var artifacts: [Artifact]
    public var agentID: String
    public var logger: Logger
    /// This attempt's lease; see `checkLease()`.
    public var lease: StepLease

    public init(
        key: StepKey, assignment: StepAssignment, artifacts: [Artifact] = [], agentID: String, logger: Logger,
        lease: StepLease = .unbounded()
    ) {
        self.key = key
        self.assignment = assignment
        self.artifacts = artifacts
        self.agentID = agentID
        self.logger = logger
        self.lease = lease
    }

    /// The attempt number, which only grows for a step: anything the step writes outside shoal (a lock, a
    /// commit message, a state file) can carry it so that an older attempt's late write is recognised as stale.
    public var fencingToken: Int { key.attempt }

    /// Checks that this agent still holds the step; call before each side effect (a commit, an apply).
    /// - Throws: `LeaseLost` when the coordinator may have given the step to another agent.
    public func checkLease() throws {
        guard lease.isHeld else { throw LeaseLost(key: key) }
    }

    public var request: WorkflowRequest { assignment.request }
    public var workflow: String { key.workflow }

    /// The latest artifact of that name among the steps this one depends on.
    public func artifact(_ name: String) -> Artifact? {
        artifacts.first { $0.name == name }
    }

    /// The kind of step this is.
    public var step: StepName { key.kind }

    /// The step's params as its kind's type (`CheckParams`, `DestroyParams`, ...).
    /// - Throws: `StepContractError` naming the step and the field.
    public func params<T: Decodable>(_ type: T.Type) throws(StepContractError) -> T {
        try assignment.params(type, step: key.step)
    }

    /// The output of the dependency that returns `type` (`ProvisionOutput`, `MonitoringOutput`, ...), nil when
    /// that step is not among this one's dependencies.
    /// - Throws: `StepContractError` when its values have another shape.
    public func input<T: StepOutputContract>(_ type: T.Type) throws(StepContractError) -> T? {
        guard let step = T.step else { return nil }
        return try assignment.output(of: step, as: type)
    }
}

/// Runs the steps of one role. A thrown error fails the step with its message.
public protocol StepHandler: Sendable {
    func run(_ context: StepContext) async throws -> StepOutput
}

extension Logger {
    /// This logger with the step's key (and the agent's id, where the logger does not carry it) in its metadata,
    /// set at once: a handler may work on its whole metadata at every change (StreamLogHandler renders it).
    func forStep(_ key: StepKey, agent: String? = nil) -> Logger {
        var logger = self
        var metadata = logger.handler.metadata
        if let agent { metadata["agent.id"] = "\(agent)" }
        metadata["workflow.id"] = "\(key.workflow)"
        metadata["step"] = "\(key.step)"
        metadata["attempt"] = "\(key.attempt)"
        logger.handler.metadata = metadata
        return logger
    }
}
