import AgentRuntime
import Cluster
import Foundation
import Protocol
import ShoalSupport

/// Runs one health check per step (`validate/<check>`), or assembles the
/// health report from all of them (`health-report`).
struct ValidationHandler: StepHandler {
    let options: AgentOptions

    func run(_ context: StepContext) async throws -> StepOutput {
        if context.step == .healthReport { return try report(context) }
        guard context.step.check != nil else {
            throw ShoalError(
                .invalidInput, "validation agents run validate/<check> and health-report, not '\(context.key.step)'")
        }
        let kind = try context.params(CheckParams.self).check
        let result = try await ClusterSession.with(context, options: options) { session in
            await HealthChecks.run(kind, client: session.client, expectation: Planner.expectation(for: context.request))
        }
        return try StepOutput(
            summary: "\(result.passed ? "pass" : "FAIL"): \(result.message)",
            typed: CheckOutput(result: result, agent: context.agentID))
    }

    /// The health report as its JSON file in the output tree.
    private struct ReportFile: Encodable {
        var workflow: String
        var score: Int
        var status: String
        var checks: [HealthReportCheck]
    }

    private func report(_ context: StepContext) throws -> StepOutput {
        let outputs = try context.assignment.checkOutputs()
        var agents: [String: String] = [:]
        for output in outputs { agents[output.result.name] = output.agent }
        let report = HealthReport.make(outputs.map(\.result))
        let checks = report.checks.map { check in
            HealthReportCheck(
                name: check.name, passed: check.passed, weight: check.weight, message: check.message,
                remedy: check.remedy, agent: agents[check.name] ?? "?")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(
            ReportFile(workflow: context.workflow, score: report.score, status: report.status, checks: checks))
        let failed = report.checks.filter { !$0.passed }.count
        return try StepOutput(
            summary: "score \(report.score)/100 (\(report.status)), \(report.checks.count - failed)/\(report.checks.count) checks passed",
            typed: HealthReportOutput(score: report.score, status: report.status, checks: checks),
            artifacts: [
                Artifact(
                    name: ArtifactName.healthReport, path: "docs/\(context.workflow)/health-report.json", data: data)
            ])
    }
}
