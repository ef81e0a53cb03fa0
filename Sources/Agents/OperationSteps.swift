import AgentRuntime
import Protocol
import ShoalSupport

extension StepContext {
    /// The workflow whose cluster a `destroy` step tears down: the target its params name.
    /// - Throws: `StepContractError` for params of another shape, `ShoalError(.invalidInput)` for a target that is
    ///   not a workflow id.
    func destroyTarget() throws -> DestroyParams {
        let params = try params(DestroyParams.self)
        guard Names.isDNSLabel(params.target) else {
            throw ShoalError(.invalidInput, "destroy: '\(Names.printable(params.target))' is not a workflow id")
        }
        return params
    }
}
