import Protocol
import ShoalCore

/// The `bench` role of `make bench`: a planner of no-op workloads and the
/// no-op steps themselves, so the figures measure the bus and the
/// coordinator, not the work.
///
/// The `plan` step (a workflow submitted with planner `bench`) reads its
/// params: `shape` is `chain` (each step needs the one before) or
/// `independent` (no step needs another), and `steps` how many (1-100,000).
/// Every other step returns at once with an empty output.
public struct BenchHandler: StepHandler {
    public static let maximumSteps = 100_000

    public init() {}

    public func run(_ context: StepContext) async throws -> StepOutput {
        guard context.step == .plan else { return StepOutput(summary: "") }
        let params = try context.params(BenchPlanParams.self)
        let count = params.steps
        guard (1...BenchHandler.maximumSteps).contains(count) else {
            throw ShoalError(.invalidInput, "bench: 'steps' must be 1-\(BenchHandler.maximumSteps)")
        }
        let chain = params.shape == .chain
        var steps: [PlannedStep] = []
        steps.reserveCapacity(count)
        for index in 0..<count {
            let needs: [StepName] = chain && index > 0 ? [.bench(index - 1)] : []
            steps.append(PlannedStep(.bench(index), role: .bench, needs: needs))
        }
        return try StepOutput(
            summary: "\(count) \(chain ? "chained" : "independent") no-op steps",
            typed: PlanOutput(plan: Plan(steps: steps)))
    }
}
