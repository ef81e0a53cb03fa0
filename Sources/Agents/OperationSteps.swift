import AgentRuntime
import Protocol
import ShoalSupport

extension StepContext {
    /// The workflow whose cluster this step works on: the target of a `validate` or `destroy` workflow (its
    /// step params say), else the step's own workflow.
    var targetWorkflow: String {
        guard let target = assignment.params["target"]?.stringValue, Names.isDNSLabel(target) else { return workflow }
        return target
    }
}
