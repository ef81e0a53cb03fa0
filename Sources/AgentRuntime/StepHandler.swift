import Logging
import Protocol

/// Everything a step handler gets: the step, its inputs, and a logger.
public struct StepContext: Sendable {
    public var key: StepKey
    public var assignment: StepAssignment
    public var agentID: String
    public var logger: Logger

    public init(key: StepKey, assignment: StepAssignment, agentID: String, logger: Logger) {
        self.key = key
        self.assignment = assignment
        self.agentID = agentID
        self.logger = logger
    }

    public var request: WorkflowRequest { assignment.request }
    public var workflow: String { key.workflow }

    /// The latest artifact of that name among the steps this one depends on.
    public func artifact(_ name: String) -> Artifact? {
        assignment.artifacts.first { $0.name == name }
    }

    /// A value a dependency returned.
    public func value(_ name: String, from step: String) -> JSONValue? {
        assignment.inputs[step]?[name]
    }
}

/// Runs the steps of one role. A thrown error fails the step with its message.
public protocol StepHandler: Sendable {
    func run(_ context: StepContext) async throws -> StepOutput
}
