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
        if context.key.step == "health-report" { return try report(context) }
        guard let name = context.assignment.params["check"]?.stringValue, let kind = HealthCheckKind(rawValue: name) else {
            throw ShoalError(.invalidInput, "validation step '\(context.key.step)' names no known check")
        }
        let result = try await ClusterSession.with(context, options: options) { session in
            await HealthChecks.run(kind, client: session.client, expectation: Planner.expectation(for: context.request))
        }
        return StepOutput(
            summary: "\(result.passed ? "pass" : "FAIL"): \(result.message)",
            values: ["result": try JSONValue(encoding: result), "agent": .string(context.agentID)])
    }

    private func report(_ context: StepContext) throws -> StepOutput {
        var results: [CheckResult] = []
        var agents: [String: String] = [:]
        for (step, values) in context.assignment.inputs.sorted(by: { $0.key < $1.key }) where step.hasPrefix("validate/") {
            guard let value = values["result"] else { continue }
            let result = try value.decode(CheckResult.self)
            results.append(result)
            agents[result.name] = values["agent"]?.stringValue
        }
        let report = HealthReport.make(results)
        let checks: [JSONValue] = report.checks.map { check in
            [
                "name": .string(check.name), "passed": .bool(check.passed), "weight": .number(Double(check.weight)),
                "message": .string(check.message), "remedy": check.remedy.map { .string($0) } ?? .null,
                "agent": .string(agents[check.name] ?? "?"),
            ]
        }
        let document: JSONValue = [
            "workflow": .string(context.workflow), "score": .number(Double(report.score)), "status": .string(report.status),
            "checks": .array(checks),
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(document)
        let failed = report.checks.filter { !$0.passed }.count
        return StepOutput(
            summary: "score \(report.score)/100 (\(report.status)), \(report.checks.count - failed)/\(report.checks.count) checks passed",
            values: ["score": .number(Double(report.score)), "status": .string(report.status), "checks": .array(checks)],
            artifacts: [Artifact(name: "health-report", path: "docs/\(context.workflow)/health-report.json", data: data)])
    }
}
