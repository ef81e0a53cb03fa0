import AgentRuntime
import Foundation
import Protocol
import ShoalSupport
import Testing

@testable import Agents

/// The handlers speak the typed step contract: what they return decodes as their kind's output, and what they read
/// of params and earlier outputs is checked, with one line naming the step and field when it is of another shape.
@Suite struct StepContractHandlerTests {
    @Test func thePlannerReturnsAPlanOutputWithTypedStepsAndParams() async throws {
        var request = WorkflowRequest()
        request.nodes = 3
        request.environment = .production
        let output = try await PlannerHandler().run(stepContext("plan", role: .planner, request: request))
        let plan = try output.decode(PlanOutput.self, step: "plan")
        #expect(plan.servers == 3 && plan.highAvailability == true && plan.datastore == "embedded etcd")
        let kinds = plan.plan.steps.map(\.kind)
        #expect(kinds.first == .provision && kinds.last == .docs)
        #expect(kinds.contains(.gitopsEngine) && kinds.contains(.healthReport))
        #expect(!kinds.contains { if case .other = $0 { true } else { false } }, "\(kinds)")
        for step in plan.plan.steps {
            guard let check = step.kind.check else { continue }
            let assignment = StepAssignment(
                role: step.role, request: request, params: step.params, inputs: [:], artifacts: [])
            #expect(try assignment.params(CheckParams.self, step: step.name) == CheckParams(check: check))
        }
    }

    @Test func anOperationPlanCarriesTypedParamsAndRefusesIncompleteOnes() async throws {
        let params = try StepContract.object(
            OperationPlanParams(operation: .destroy, target: "k3s-dev-1", infraAgent: "infra-1"), step: .plan,
            part: "params")
        let output = try await PlannerHandler().run(
            stepContext("plan", role: .planner, request: WorkflowRequest(), params: params))
        let steps = try output.decode(PlanOutput.self, step: "plan").plan.steps
        #expect(steps.map(\.kind) == [.destroy])
        let assignment = StepAssignment(
            role: .infra, request: WorkflowRequest(), params: steps[0].params, inputs: [:], artifacts: [])
        #expect(
            try assignment.params(DestroyParams.self, step: "destroy")
                == DestroyParams(target: "k3s-dev-1", agent: "infra-1"))

        let error = await #expect(throws: StepContractError.self) {
            try await PlannerHandler().run(
                stepContext("plan", role: .planner, request: WorkflowRequest(), params: ["operation": "explode"]))
        }
        #expect(
            error?.description.hasPrefix("step 'plan' params field 'operation'") == true, "\(String(describing: error))"
        )
    }

    @Test func aCheckWithParamsOfAnotherShapeFailsInOneLine() async throws {
        let handler = ValidationHandler(options: AgentOptions(workDirectory: temporaryDirectory()))
        for params: [String: JSONValue] in [["check": "bogus"], [:], ["check": 3]] {
            let error = await #expect(throws: StepContractError.self) {
                try await handler.run(
                    stepContext("validate/nodes", role: .validation, request: WorkflowRequest(), params: params))
            }
            let line = error?.description ?? ""
            #expect(line.hasPrefix("step 'validate/nodes' params field 'check'"), "\(line)")
            #expect(!line.contains("\n"))
        }
    }

    @Test func theHealthReportScoresTypedCheckOutputs() async throws {
        let handler = ValidationHandler(options: AgentOptions(workDirectory: temporaryDirectory()))
        let nodes = CheckOutput(
            result: CheckResult(name: "nodes", passed: true, weight: 20, message: "3 of 3 Ready"), agent: "v-1")
        let dns = CheckOutput(
            result: CheckResult(name: "dns", passed: false, weight: 5, message: "no endpoints", remedy: "restart"),
            agent: "v-2")
        let inputs = [
            "validate/nodes": try object(nodes, step: .validate(.nodes)),
            "validate/dns": try object(dns, step: .validate(.dns)), "provision": ["nodeAddress": "10.0.0.1"],
        ]
        let output = try await handler.run(
            stepContext("health-report", role: .validation, request: WorkflowRequest(), inputs: inputs))
        let report = try output.decode(HealthReportOutput.self, step: "health-report")
        #expect(report.score == 80 && report.status == "degraded")
        #expect(report.checks.map(\.agent).sorted() == ["v-1", "v-2"])
        #expect(report.checks.first { $0.name == "dns" }?.remedy == "restart")
        let file = try #require(output.artifacts.first { $0.name == ArtifactName.healthReport })
        let document = try JSONDecoder().decode([String: JSONValue].self, from: file.data)
        #expect(document["score"] == 80 && document["workflow"] == "shoal")

        var broken = inputs
        broken["validate/dns"] = ["result": ["name": "dns"]]
        let error = await #expect(throws: StepContractError.self) {
            try await handler.run(
                stepContext("health-report", role: .validation, request: WorkflowRequest(), inputs: broken))
        }
        #expect(error?.description == "step 'validate/dns' output field 'result.passed': missing")
    }

    @Test func theRunbookReadsTypedOutputsAndNamesAMalformedOne() async throws {
        let provision = ProvisionOutput(
            target: .ssh, nodes: ["lab-server-0"], k3sVersion: "v1.36.3+k3s1", terraform: "ok", nodeAddress: "10.1.2.3",
            apiEndpoint: "https://10.1.2.3:6443")
        let monitoring = MonitoringOutput(
            repoURL: "http://git.example/shoal.git", commit: "c", applications: ["root"], manifests: [],
            gitopsSource: .remote)
        let health = HealthReportOutput(
            score: 75, status: "degraded",
            checks: [
                HealthReportCheck(
                    name: "dns", passed: false, weight: 5, message: "no endpoints", remedy: "restart", agent: "v")
            ])
        let inputs = [
            "provision": try object(provision, step: .provision),
            "monitoring": try object(monitoring, step: .monitoring),
            "health-report": try object(health, step: .healthReport),
        ]
        let output = try await DocsHandler().run(
            stepContext("docs", role: .docs, request: WorkflowRequest(), inputs: inputs))
        #expect(try output.decode(DocsOutput.self, step: "docs").path == "docs/shoal/runbook.md")
        let runbook = try #require(output.artifacts.first { $0.name == ArtifactName.runbook }).text
        #expect(runbook.contains("http://10.1.2.3:30080"))
        #expect(runbook.contains("on target `ssh`"))
        #expect(runbook.contains("| GitOps repository | http://git.example/shoal.git"))
        #expect(runbook.contains("| Health at creation | 75/100 (degraded) |"))
        #expect(runbook.contains("- **dns**: no endpoints Remedy: restart"))

        var broken = inputs
        broken["provision"]?["nodeAddress"] = .array([])
        let error = await #expect(throws: StepContractError.self) {
            try await DocsHandler().run(stepContext("docs", role: .docs, request: WorkflowRequest(), inputs: broken))
        }
        #expect(error?.description == "step 'provision' output field 'nodeAddress': not a string")
    }
}
