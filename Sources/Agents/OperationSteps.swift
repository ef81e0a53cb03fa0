import AgentRuntime
import Foundation
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

/// The `destroy` step of a demo run: no cluster was built and Terraform only planned, so there is no state to
/// destroy; the simulated cluster's credentials in this agent's work directory are removed.
struct DemoDestroy {
    let options: AgentOptions
    let context: StepContext

    func run() -> StepOutput {
        let host = Preflight.hostName()
        let directory = "\(options.workDirectory)/kubeconfigs/\(context.targetWorkflow)"
        for name in ["kubeconfig", "simulated-cluster.json"] {
            try? FileManager.default.removeItem(atPath: "\(directory)/\(name)")
        }
        return StepOutput(
            summary: "simulated cluster of \(context.targetWorkflow) removed on \(host) (demo: nothing was applied)",
            values: ["host": .string(host), "destroyedResources": 0],
            log: ["demo mode: no Terraform state to destroy for \(context.targetWorkflow)"])
    }
}
