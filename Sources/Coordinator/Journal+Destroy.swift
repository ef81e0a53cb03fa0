import Foundation
import Protocol
import ShoalSupport

extension Journal {
    /// Records that a workflow's cluster was destroyed (`shoal destroy`). Marking a destroyed workflow again changes
    /// nothing.
    /// - Parameter id: the workflow.
    /// - Returns: the workflow as it is now, or nil when the journal does not know it.
    /// - Throws: `ShoalError(.io)` when the journal cannot be read or written.
    @discardableResult
    public func markDestroyed(_ id: String) throws -> WorkflowSnapshot? {
        guard var workflow = try workflow(id) else { return nil }
        guard workflow.state != .destroyed else { return workflow }
        workflow.state = .destroyed
        workflow.revision += 1
        try save(workflow)
        return workflow
    }
}
