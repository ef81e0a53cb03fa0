import AgentRuntime
import Foundation
import Protocol
import ShoalSupport

/// The `bench` role of `make bench`: a planner of no-op workloads and the
/// no-op steps themselves, so the figures measure the bus and the
/// coordinator, not the work.
///
/// The `plan` step (a workflow submitted with planner `bench`) reads its
/// params: `shape` is `chain` (each step needs the one before) or
/// `independent` (no step needs another), and `steps` how many (1-100,000).
/// Every other step returns at once with an empty output.
struct BenchHandler: StepHandler {
    static let maximumSteps = 100_000

    func run(_ context: StepContext) async throws -> StepOutput {
        guard context.key.step == "plan" else { return StepOutput(summary: "") }
        let params = context.assignment.params
        let count = params["steps"]?.intValue ?? 0
        guard (1...BenchHandler.maximumSteps).contains(count) else {
            throw ShoalError(.invalidInput, "bench: 'steps' must be 1-\(BenchHandler.maximumSteps)")
        }
        let chain: Bool
        switch params["shape"]?.stringValue {
        case "chain": chain = true
        case "independent": chain = false
        default: throw ShoalError(.invalidInput, "bench: 'shape' must be chain or independent")
        }
        var steps: [PlannedStep] = []
        steps.reserveCapacity(count)
        for index in 0..<count {
            let needs = chain && index > 0 ? ["s\(index - 1)"] : []
            steps.append(PlannedStep(name: "s\(index)", role: .bench, needs: needs))
        }
        return StepOutput(
            summary: "\(count) \(chain ? "chained" : "independent") no-op steps",
            values: ["plan": try JSONValue(encoding: Plan(steps: steps))])
    }
}
