import Foundation
import Protocol
import ShoalSupport

extension CoordinatorClient {
    private func reply<Body: Decodable>(_ type: Body.Type, _ envelope: Envelope) throws -> Body {
        do {
            return try envelope.decode(type)
        } catch {
            throw ShoalError(.protocolViolation, "unexpected answer from the coordinator", cause: "\(error)")
        }
    }

    /// Starts a workflow that acts on an earlier one: its health checks again, or the destroy of its cluster.
    /// - Returns: the new workflow's id and the events port.
    /// - Throws: `ShoalError(.invalidInput)` with the coordinator's reason when it cannot run now.
    public func submit(_ operation: WorkflowOperation) throws -> Accepted {
        try reply(Accepted.self, call(Header(type: .submit), Submit(request: WorkflowRequest(), operation: operation)))
    }

    /// The log lines of a workflow's steps (one step's with `step`).
    public func logs(_ workflow: String, step: String? = nil) throws -> LogsReply {
        try reply(LogsReply.self, call(Header(type: .logs, workflow: workflow), LogsRequest(step: step)))
    }

    /// A workflow's artifacts that have a place in the output tree; the sensitive ones only when asked for.
    public func artifacts(_ workflow: String, sensitive: Bool) throws -> ArtifactsReply {
        try reply(
            ArtifactsReply.self,
            call(Header(type: .artifacts, workflow: workflow), ArtifactsRequest(sensitive: sensitive)))
    }
}
