import Foundation
import ShoalSupport
import Testing

@testable import Coordinator
@testable import Protocol
@testable import ZeroMQ

@Suite(.serialized) struct OperationsTests {
    let context = Context()

    private func plan(_ steps: [PlannedStep]) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(Plan(steps: steps)))
    }

    /// A result with values, artifacts and log lines.
    private func finish(
        _ agent: RawAgent, _ key: StepKey, values: [String: JSONValue] = [:], artifacts: [Artifact] = [],
        log: [String] = []
    ) throws {
        try agent.ack(key)
        let result = StepResult(
            outcome: .succeeded, output: StepOutput(summary: "done", values: values, artifacts: artifacts, log: log),
            error: nil, agent: agent.id, host: "host-\(agent.id)", pid: 1, startedAt: 0, finishedAt: 0)
        try agent.send(
            Header(type: .result, workflow: key.workflow, step: key.step, attempt: key.attempt, sender: agent.id),
            result)
        _ = try #require(try agent.waitControl(.confirm))
    }

    private func waitFinished(_ client: CoordinatorClient, _ workflow: String) throws -> WorkflowSnapshot {
        try client.follow(workflow, eventsPort: nil, timeout: .seconds(15)) { _ in }
    }

    @Test func validateAndDestroyGetTheTargetsArtifactsAndDestroyRunsOnTheAgentThatProvisioned() async throws {
        let coordinator = try await TestCoordinator.start {
            $0.ackTimeout = .seconds(10)
            $0.liveness = 50
        }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let planner = try RawAgent(id: "planner-o", role: .planner, coordinator: coordinator, context: context)
            let infraA = try RawAgent(id: "infra-a", role: .infra, coordinator: coordinator, context: context)
            let infraB = try RawAgent(id: "infra-b", role: .infra, coordinator: coordinator, context: context)
            let checker = try RawAgent(
                id: "validation-o", role: .validation, coordinator: coordinator, context: context)
            for agent in [planner, infraA, infraB, checker] { try agent.join() }
            let client = try coordinator.client(context)

            // The create workflow: provision, then one check.
            let target = try client.submit(WorkflowRequest()).workflow
            let first = try #require(try planner.waitStep())
            try finish(
                planner, first.key,
                values: [
                    "plan": try plan([
                        PlannedStep(name: "provision", role: .infra, critical: true),
                        PlannedStep(
                            name: "validate/nodes", role: .validation, needs: ["provision"],
                            params: ["check": "nodes"]),
                    ])
                ])
            // Whichever infra agent gets provision holds the state.
            var provision: (key: StepKey, assignment: StepAssignment)?
            var provisioner = infraA
            for agent in [infraA, infraB] {
                if let step = try agent.waitStep(timeout: .milliseconds(500)) {
                    provision = step
                    provisioner = agent
                }
            }
            let provisionStep = try #require(provision)
            let other = provisioner === infraA ? infraB : infraA
            let kubeconfig = Artifact(
                name: "kubeconfig", path: "kubeconfigs/\(target)/kubeconfig", sensitive: true, text: "server: x\n")
            let terraform = Artifact(name: "terraform/main.tf", path: "terraform/\(target)/main.tf", text: "# tf\n")
            try finish(
                provisioner, provisionStep.key, values: ["nodeAddress": "10.0.0.9"],
                artifacts: [kubeconfig, terraform],
                log: ["terraform apply: exit 0", "  Apply complete! Resources: 2 added, 0 changed, 0 destroyed."])
            let check = try #require(try checker.waitStep())
            try finish(checker, check.key, values: ["result": "old"])
            #expect(try waitFinished(client, target).state == .succeeded)

            // logs: the provision step's lines as the agent sent them, with who ran it.
            let logs = try client.logs(target, step: "provision")
            #expect(logs.steps.map(\.step) == ["provision"])
            #expect(logs.steps.first?.lines.last == "  Apply complete! Resources: 2 added, 0 changed, 0 destroyed.")
            #expect(logs.steps.first?.agent == provisioner.id && logs.steps.first?.host == "host-\(provisioner.id)")
            #expect(try client.logs(target).steps.map(\.step) == ["plan", "provision", "validate/nodes"])

            // artifacts: the sensitive kubeconfig only when asked for.
            let plain = try client.artifacts(target, sensitive: false)
            #expect(plain.artifacts.map(\.path) == ["terraform/\(target)/main.tf"])
            #expect(plain.withheld == ["kubeconfigs/\(target)/kubeconfig"])
            let all = try client.artifacts(target, sensitive: true)
            #expect(all.artifacts.first { $0.name == "kubeconfig" }?.text == "server: x\n")

            // validate: a workflow of its own whose check gets the target's values and kubeconfig, not its old checks.
            let validation = try client.submit(WorkflowOperation(kind: .validate, target: target)).workflow
            #expect(validation != target)
            let validationPlan = try #require(try planner.waitStep())
            #expect(validationPlan.key.workflow == validation)
            #expect(validationPlan.assignment.params["operation"] == "validate")
            #expect(validationPlan.assignment.params["target"] == .string(target))
            try finish(
                planner, validationPlan.key,
                values: [
                    "plan": try plan([
                        PlannedStep(
                            name: "validate/nodes", role: .validation, needs: ["plan"],
                            params: ["check": "nodes", "target": .string(target)])
                    ])
                ])
            let recheck = try #require(try checker.waitStep())
            #expect(recheck.key.workflow == validation)
            #expect(recheck.assignment.inputs["provision"]?["nodeAddress"] == "10.0.0.9")
            #expect(recheck.assignment.inputs["validate/nodes"] == nil, "the target's own check is not handed on")
            #expect(
                recheck.assignment.artifacts.first { $0.name == "kubeconfig" }?.digest
                    == Journal.digest(Data("server: x\n".utf8)))
            try finish(checker, recheck.key, values: ["result": "new"])
            let validated = try waitFinished(client, validation)
            #expect(validated.state == .succeeded)
            #expect(validated.operation == WorkflowOperation(kind: .validate, target: target))
            #expect(try client.status(target).state == .succeeded, "validate leaves the target as it was")

            // destroy: pinned to the agent that provisioned, although the other one is idle and waited longer.
            let destroy = try client.submit(WorkflowOperation(kind: .destroy, target: target)).workflow
            let destroyPlan = try #require(try planner.waitStep())
            #expect(destroyPlan.assignment.params["infraAgent"] == .string(provisioner.id))
            try finish(
                planner, destroyPlan.key,
                values: [
                    "plan": try plan([
                        PlannedStep(
                            name: "destroy", role: .infra, needs: ["plan"], critical: true,
                            params: ["target": .string(target), "agent": .string(provisioner.id)])
                    ])
                ])
            let destroyStep = try #require(try provisioner.waitStep())
            #expect(destroyStep.key == StepKey(workflow: destroy, step: "destroy", attempt: 1))
            #expect(destroyStep.assignment.artifacts.contains { $0.name == "kubeconfig" })
            #expect(try other.waitStep(timeout: .milliseconds(300)) == nil)
            try finish(provisioner, destroyStep.key, values: ["destroyedResources": 2])
            #expect(try waitFinished(client, destroy).state == .succeeded)
            #expect(try client.status(target).state == .destroyed)
            #expect(try client.list().first { $0.id == target }?.state == .destroyed)
            #expect(try coordinator.journal.workflow(target)?.state == .destroyed)

            // A destroyed cluster is neither destroyed nor validated again.
            for kind in WorkflowOperation.Kind.allCases {
                #expect(throws: ShoalError.self) { try client.submit(WorkflowOperation(kind: kind, target: target)) }
            }
        }
    }

    @Test func operationsThatCannotRunNowAreRefusedWithTheReason() async throws {
        let coordinator = try await TestCoordinator.start()
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let client = try coordinator.client(context)
            func refusal(_ operation: WorkflowOperation) -> String {
                do {
                    _ = try client.submit(operation)
                    return "accepted"
                } catch let error as ShoalError {
                    return error.message
                } catch {
                    return "\(error)"
                }
            }
            #expect(refusal(WorkflowOperation(kind: .destroy, target: "k3s-dev-000000")).contains("no workflow"))
            #expect(refusal(WorkflowOperation(kind: .destroy, target: "Bad/Id")).contains("invalid workflow id"))
            // No planner: the workflow stays running.
            let running = try client.submit(WorkflowRequest()).workflow
            #expect(refusal(WorkflowOperation(kind: .validate, target: running)).contains("still running"))
            _ = try client.cancel(running)
            #expect(refusal(WorkflowOperation(kind: .validate, target: running)).contains("did not succeed"))
            #expect(refusal(WorkflowOperation(kind: .destroy, target: running)).contains("never ran on an agent"))
        }
    }

    @Test func aPinnedStepWhoseAgentNeverComesFailsNamingItAndBlocksNoOtherStep() async throws {
        let coordinator = try await TestCoordinator.start {
            $0.ackTimeout = .seconds(10)
            $0.liveness = 50
            $0.pinnedAgentWait = .milliseconds(600)
        }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let planner = try RawAgent(id: "planner-q", role: .planner, coordinator: coordinator, context: context)
            let infra = try RawAgent(id: "infra-q", role: .infra, coordinator: coordinator, context: context)
            try planner.join()
            try infra.join()
            let client = try coordinator.client(context)
            let workflow = try client.submit(WorkflowRequest()).workflow
            let first = try #require(try planner.waitStep())
            try finish(
                planner, first.key,
                values: [
                    "plan": try plan([
                        PlannedStep(name: "destroy", role: .infra, params: ["agent": "infra-gone"]),
                        PlannedStep(name: "other", role: .infra),
                    ])
                ])
            // The unpinned step of the same role is not held behind the pinned one.
            let other = try #require(try infra.waitStep())
            #expect(other.key.step == "other")
            try finish(infra, other.key)
            let final = try waitFinished(client, workflow)
            #expect(final.state == .failed)
            let error = final.step("destroy")?.error ?? ""
            #expect(error.contains("infra agent 'infra-gone' is not connected"), "\(error)")
            #expect(final.step("destroy")?.attempt == 0, "never given to another agent")
        }
    }

    @Test func aStepsLogIsBoundedOldestLinesFirst() {
        let lines = (0..<20_000).map { "line \($0) " + String(repeating: "x", count: 40) }
        let result = StepResult(
            outcome: .succeeded, output: StepOutput(summary: "s", log: lines), error: nil, agent: "a", host: "h",
            pid: 1, startedAt: 0, finishedAt: 0)
        let bounded = StepLogBound.bound(result)
        #expect(bounded.output.log.reduce(0) { $0 + $1.utf8.count + 1 } <= StepLog.maxBytes)
        #expect(bounded.output.log.last == lines.last)
        let (kept, dropped) = StepLogBound.split(bounded.output.log)
        #expect(dropped > 0 && dropped + kept.count == lines.count)
        #expect(kept.first == lines[dropped])
        let small = StepLogBound.bound(
            StepResult(
                outcome: .succeeded, output: StepOutput(summary: "s", log: ["a", "b"]), error: nil, agent: "a",
                host: "h",
                pid: 1, startedAt: 0, finishedAt: 0))
        #expect(small.output.log == ["a", "b"])
        #expect(StepLogBound.split(["a"]).dropped == 0)
    }
}
