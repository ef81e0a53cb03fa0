import Foundation
import Testing

@testable import Coordinator
@testable import Protocol
@testable import ZeroMQ

@Suite(.serialized) struct DeliveryTests {
    let context = Context()

    private func submit(_ coordinator: TestCoordinator) throws -> String {
        try coordinator.client(context).submit(WorkflowRequest()).workflow
    }

    @Test func aStepGoesToExactlyOneAgentOfItsRoleOnThatAgentsTopic() async throws {
        // Long timeouts: neither a re-publication nor a missed heartbeat may blur who got the step.
        let coordinator = try await TestCoordinator.start { $0.ackTimeout = .seconds(30); $0.heartbeatInterval = .seconds(5) }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let first = try RawAgent(id: "planner-a", role: .planner, coordinator: coordinator, context: context)
            let second = try RawAgent(id: "planner-b", role: .planner, coordinator: coordinator, context: context)
            let bystander = try RawAgent(id: "docs-a", role: .docs, coordinator: coordinator, context: context)
            try first.join()
            try second.join()
            try bystander.join()
            let workflow = try submit(coordinator)
            let gotFirst = try first.waitStep(timeout: .seconds(2))
            let gotSecond = try second.waitStep(timeout: gotFirst == nil ? .seconds(2) : .milliseconds(400))
            #expect((gotFirst == nil) != (gotSecond == nil), "exactly one planner receives the step")
            let step = try #require(gotFirst ?? gotSecond)
            #expect(step.key == StepKey(workflow: workflow, step: "plan", attempt: 1))
            #expect(step.assignment.role == .planner)
            #expect(try bystander.waitStep(timeout: .milliseconds(300)) == nil)
        }
    }

    @Test func oneAckListsSeveralStepsAndConfirmsNameEveryResult() async throws {
        let coordinator = try await TestCoordinator.start { $0.ackTimeout = .seconds(30) }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let planner = try RawAgent(id: "planner-l", role: .planner, coordinator: coordinator, context: context)
            let checker = try RawAgent(id: "validation-l", role: .validation, coordinator: coordinator, context: context)
            checker.capacity = 4
            try planner.join()
            try checker.join()
            let client = try coordinator.client(context)
            let workflow = try submit(coordinator)
            let plan = try #require(try planner.waitStep())
            let checks = (1...3).map { PlannedStep(name: "validate/c\($0)", role: .validation) }
            try planner.result(plan.key, values: ["plan": try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(Plan(steps: checks)))])
            var keys: [StepKey] = []
            while keys.count < 3, let step = try checker.waitStep() { keys.append(step.key) }
            #expect(keys.count == 3)
            // A result stands for its ack: the plan step never acknowledged still succeeded.
            #expect(try client.status(workflow).step("plan")?.state == .succeeded)
            try checker.ack(keys)
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline,
                try client.status(workflow).steps.filter({ $0.state == .running }).count < 3
            {
                Thread.sleep(forTimeInterval: 0.02)
            }
            #expect(try client.status(workflow).steps.filter { $0.state == .running }.count == 3)
            for key in keys { try checker.result(key) }
            var confirmed: Set<StepKey> = []
            while confirmed.count < 3, let confirm = try checker.waitControl(.confirm) {
                confirmed.formUnion(try checker.confirmed(confirm))
            }
            #expect(confirmed == Set(keys))
            #expect(try client.status(workflow).state == .succeeded)
            #expect(try coordinator.journal.highestAttempt(workflow: workflow) == 1)
        }
    }

    @Test func aResultStandingForItsAckStartsTheStepAsLongAgoAsTheAgentRanIt() {
        func result(_ started: Int64, _ finished: Int64) -> StepResult {
            StepResult(
                outcome: .succeeded, output: StepOutput(summary: ""), error: nil, agent: "a", host: "h", pid: 1,
                startedAt: started, finishedAt: finished)
        }
        #expect(CoordinatorCore.started(before: 10_000, ran: result(500, 750)) == 9_750)
        // Untrusted numbers: backwards, overflowing or longer than the epoch clamp, never trap.
        #expect(CoordinatorCore.started(before: 10_000, ran: result(750, 500)) == 10_000)
        #expect(CoordinatorCore.started(before: 10_000, ran: result(.min, .max)) == 10_000)
        #expect(CoordinatorCore.started(before: 10_000, ran: result(-.max, .max)) == 10_000)
        #expect(CoordinatorCore.started(before: 10_000, ran: result(0, 1_000_000)) == 0)
    }

    @Test func aMissingAckMeansPublishAgainThenAnotherAgent() async throws {
        let coordinator = try await TestCoordinator.start { $0.ackTimeout = .milliseconds(200) }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let silent = try RawAgent(id: "planner-silent", role: .planner, coordinator: coordinator, context: context)
            try silent.join()
            let workflow = try submit(coordinator)
            let first = try #require(try silent.waitStep())
            let again = try #require(try silent.waitStep())
            #expect(again.key == first.key, "the same attempt is published again")
            // Now a second agent exists; the step moves there as attempt 2.
            let helper = try RawAgent(id: "planner-helper", role: .planner, coordinator: coordinator, context: context)
            try helper.join()
            let moved = try #require(try helper.waitStep())
            #expect(moved.key == StepKey(workflow: workflow, step: "plan", attempt: 2))
            try helper.ack(moved.key)
            try helper.result(moved.key, values: ["plan": emptyPlan])
            let confirm = try #require(try helper.waitControl(.confirm))
            #expect(confirm.header.stepKey == moved.key)
            let status = try coordinator.client(context).status(workflow)
            #expect(status.state == .succeeded)
            #expect(try coordinator.journal.attemptCount(workflow: workflow, step: "plan") == 2)
        }
    }

    @Test func aStepTheAgentStopsListingWithoutAResultGoesToAnotherAgentUncharged() async throws {
        let coordinator = try await TestCoordinator.start {
            $0.ackTimeout = .seconds(30)
            $0.liveness = 50
            $0.maxAttempts = 1
        }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let dropper = try RawAgent(id: "planner-drop", role: .planner, coordinator: coordinator, context: context)
            try dropper.join()
            let workflow = try submit(coordinator)
            let first = try #require(try dropper.waitStep())
            try dropper.ack(first.key)
            // Acknowledged and listed: it stays with this agent while its heartbeats list it.
            #expect(try dropper.waitStep(timeout: .milliseconds(500)) == nil)
            #expect(try coordinator.client(context).status(workflow).steps[0].state == .running)
            let helper = try RawAgent(id: "planner-help", role: .planner, coordinator: coordinator, context: context)
            try helper.join()
            // The agent lost its lease: its heartbeats no longer list the step, and no result came.
            dropper.running.removeAll()
            _ = try dropper.pump(timeout: .milliseconds(300)) { _, _ in nil as Bool? }
            let moved = try #require(try helper.waitStep())
            #expect(moved.key == StepKey(workflow: workflow, step: "plan", attempt: 2))
            try helper.ack(moved.key)
            try helper.result(moved.key, values: ["plan": emptyPlan])
            _ = try #require(try helper.waitControl(.confirm))
            let status = try coordinator.client(context).status(workflow)
            #expect(status.state == .succeeded, "the dropped attempt was not charged (max attempts 1)")
        }
    }

    @Test func anAgentThatStopsHeartbeatingLosesItsStepToALiveOne() async throws {
        let coordinator = try await TestCoordinator.start { $0.heartbeatInterval = .milliseconds(200); $0.liveness = 3 }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let dying = try RawAgent(id: "planner-dying", role: .planner, coordinator: coordinator, context: context)
            try dying.join()
            let workflow = try submit(coordinator)
            let step = try #require(try dying.waitStep())
            try dying.ack(step.key)
            dying.heartbeats = false
            let survivor = try RawAgent(id: "planner-survivor", role: .planner, coordinator: coordinator, context: context)
            try survivor.join()
            let moved = try #require(try survivor.waitStep())
            #expect(moved.key == StepKey(workflow: workflow, step: "plan", attempt: 2))
            let agents = try coordinator.client(context).agents()
            #expect(agents.map(\.id) == ["planner-survivor"])
        }
    }

    /// An agent killed after it recorded a step's result but before the result left comes back as a new
    /// incarnation (another pid under the same id) that holds the result. Its steps wait for it: another agent of
    /// the role must not run them meanwhile.
    @Test func aRestartedAgentClaimsItsStepAndResendsTheResultWhileNoOtherAgentRunsIt() async throws {
        let coordinator = try await TestCoordinator.start {
            $0.ackTimeout = .seconds(30)
            $0.heartbeatInterval = .milliseconds(100)
            $0.liveness = 20  // two seconds of grace for the new incarnation
        }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            var first: RawAgent? = try RawAgent(
                id: "planner-restart", role: .planner, coordinator: coordinator, context: context)
            try first?.join()
            let workflow = try submit(coordinator)
            let step = try #require(try first?.waitStep())
            try first?.ack(step.key)
            let other = try RawAgent(id: "planner-other", role: .planner, coordinator: coordinator, context: context)
            try other.join()
            first = nil  // killed: its connection closes
            let restarted = try RawAgent(
                id: "planner-restart", role: .planner, coordinator: coordinator, context: context)
            restarted.pid = 2
            // It holds the result from its record: its heartbeats list the step until the confirm.
            restarted.running = [step.key]
            try restarted.join()
            try restarted.result(step.key, values: ["plan": emptyPlan])
            let confirm = try #require(try restarted.waitControl(.confirm))
            #expect(try restarted.confirmed(confirm) == [step.key])
            #expect(try other.waitStep(timeout: .milliseconds(500)) == nil, "the step was given to another agent")
            let status = try coordinator.client(context).status(workflow)
            #expect(status.state == .succeeded)
            #expect(status.steps[0].agent == "planner-restart")
            #expect(try coordinator.journal.attemptCount(workflow: workflow, step: "plan") == 1)
        }
    }

    /// A new incarnation that does not claim a step of the old one gets it published again, same attempt, once
    /// the grace has passed; another agent of the role does not.
    @Test func aRestartedAgentsUnclaimedStepIsPublishedToItAgainAfterTheGrace() async throws {
        let coordinator = try await TestCoordinator.start {
            $0.ackTimeout = .seconds(30)
            $0.heartbeatInterval = .milliseconds(100)
            $0.liveness = 10
        }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            var first: RawAgent? = try RawAgent(
                id: "planner-again", role: .planner, coordinator: coordinator, context: context)
            try first?.join()
            let workflow = try submit(coordinator)
            let step = try #require(try first?.waitStep())
            try first?.ack(step.key)
            let other = try RawAgent(id: "planner-idle", role: .planner, coordinator: coordinator, context: context)
            try other.join()
            first = nil
            let restarted = try RawAgent(id: "planner-again", role: .planner, coordinator: coordinator, context: context)
            restarted.pid = 2
            try restarted.join()
            let again = try #require(try restarted.waitStep(timeout: .seconds(10)))
            #expect(again.key == step.key, "the same attempt, to the same agent")
            #expect(try other.waitStep(timeout: .milliseconds(300)) == nil)
            try restarted.ack(again.key)
            try restarted.result(again.key, values: ["plan": emptyPlan])
            _ = try #require(try restarted.waitControl(.confirm))
            #expect(try coordinator.client(context).status(workflow).state == .succeeded)
            #expect(try coordinator.journal.attemptCount(workflow: workflow, step: "plan") == 1)
        }
    }

    @Test func coordinatorHeartbeatsReachAgents() async throws {
        let coordinator = try await TestCoordinator.start()
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let agent = try RawAgent(id: "docs-hb", role: .docs, coordinator: coordinator, context: context)
            try agent.join()
            #expect(try agent.waitControl(.heartbeat, timeout: .seconds(2)) != nil)
        }
    }

    @Test func aResultIsConfirmedAndADuplicateIsConfirmedButIgnored() async throws {
        let coordinator = try await TestCoordinator.start()
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let agent = try RawAgent(id: "planner-dup", role: .planner, coordinator: coordinator, context: context)
            try agent.join()
            let workflow = try submit(coordinator)
            let step = try #require(try agent.waitStep())
            try agent.ack(step.key)
            try agent.result(step.key, values: ["plan": emptyPlan])
            #expect(try agent.waitControl(.confirm)?.header.stepKey == step.key)
            // The same result again (the confirmation was "lost"): confirmed again, nothing changes.
            try agent.result(step.key, values: ["plan": ["steps": [["name": "ghost", "role": "docs", "needs": [], "critical": false, "params": [:]]]]])
            #expect(try agent.waitControl(.confirm)?.header.stepKey == step.key)
            let status = try coordinator.client(context).status(workflow)
            #expect(status.state == .succeeded)
            #expect(status.steps.map(\.name) == ["plan"])
        }
    }

    @Test func resultsForStepsNeverAssignedAreRejected() async throws {
        let coordinator = try await TestCoordinator.start()
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let agent = try RawAgent(id: "planner-liar", role: .planner, coordinator: coordinator, context: context)
            try agent.join()
            try agent.result(StepKey(workflow: "no-such-workflow", step: "plan", attempt: 1))
            let unknown = try #require(try agent.waitControl(.error))
            #expect(try unknown.decode(ErrorReply.self).reason == RejectReason.unknownWorkflow.rawValue)
            let workflow = try submit(coordinator)
            _ = try #require(try agent.waitStep())
            try agent.result(StepKey(workflow: workflow, step: "plan", attempt: 7))
            let unassigned = try #require(try agent.waitControl(.error))
            #expect(try unassigned.decode(ErrorReply.self).reason == RejectReason.notAssigned.rawValue)
            try agent.result(StepKey(workflow: workflow, step: "nonexistent", attempt: 1))
            #expect(try agent.waitControl(.error).map { try $0.decode(ErrorReply.self).reason } == RejectReason.unknownStep.rawValue)
        }
    }

    @Test func malformedFramesGetAReasonAndTheCoordinatorKeepsServing() async throws {
        let coordinator = try await TestCoordinator.start()
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let dealer = try coordinator.dealer(context)
            try dealer.set(.receiveTimeout, 3000)
            let cases: [([[UInt8]], RejectReason)] = [
                ([Array("garbage".utf8)], .frameCount),
                ([Array("garbage".utf8), []], .malformedHeader),
                ([Array(#"{"v":9,"type":"hello","id":"x","sentAt":1}"#.utf8), Array("{}".utf8)], .unsupportedVersion),
                ([Array(#"{"v":4,"type":"nope","id":"x","sentAt":1}"#.utf8), Array("{}".utf8)], .unknownType),
                ([Array(#"{"v":4,"type":"step","id":"x","sentAt":1}"#.utf8), Array("{}".utf8)], .unexpectedType),
                ([Array(#"{"v":4,"type":"submit","id":"x","sentAt":1}"#.utf8), Array(#"{"request":{"nodes":0}}"#.utf8)], .invalidRequest),
                ([Array(#"{"v":4,"type":"hello","id":"x","sentAt":1,"sender":"a"}"#.utf8), Array("[]".utf8)], .malformedBody),
            ]
            for (frames, reason) in cases {
                try dealer.send(frames)
                let reply = try #require(try dealer.receive())
                let envelope = try Codec.decode(reply[...])
                #expect(envelope.header.type == .error)
                #expect(try envelope.decode(ErrorReply.self).reason == reason.rawValue)
            }
            // Still serving.
            let client = try coordinator.client(context)
            #expect(try client.list().isEmpty)
        }
    }

    @Test func aResentSubmitCreatesOneWorkflow() async throws {
        let coordinator = try await TestCoordinator.start()
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let dealer = try coordinator.dealer(context)
            try dealer.set(.receiveTimeout, 3000)
            let frames = Codec.encode(Header(type: .submit), Submit(request: WorkflowRequest()))
            try dealer.send(frames)
            try dealer.send(frames)
            let first = try Codec.decode(try #require(try dealer.receive())[...]).decode(Accepted.self)
            let second = try Codec.decode(try #require(try dealer.receive())[...]).decode(Accepted.self)
            #expect(first.workflow == second.workflow)
            #expect(try coordinator.client(context).list().count == 1)
        }
    }

    @Test func aStepThatOutlivesItsTimeoutIsRetriedThenFailsTheWorkflowWithTheReason() async throws {
        let coordinator = try await TestCoordinator.start {
            $0.stepTimeout = .milliseconds(300)
            $0.maxAttempts = 2
        }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let agent = try RawAgent(id: "planner-slow", role: .planner, coordinator: coordinator, context: context)
            try agent.join()
            let workflow = try submit(coordinator)
            let first = try #require(try agent.waitStep())
            try agent.ack(first.key)
            // No result: after the timeout (and a backoff) the step comes back as attempt 2.
            let second = try #require(try agent.waitStep())
            #expect(second.key.attempt == 2)
            try agent.ack(second.key)
            let client = try coordinator.client(context)
            var status = try client.status(workflow)
            let deadline = ContinuousClock.now + .seconds(10)
            while !status.state.isFinished && ContinuousClock.now < deadline {
                _ = try agent.pump(timeout: .milliseconds(100)) { _, _ in Optional<Int>.none }
                status = try client.status(workflow)
            }
            #expect(status.state == .failed)
            #expect(status.error?.contains("gave up after 2 attempts") == true, "\(status.error ?? "")")
            #expect(status.error?.contains("timed out") == true)
        }
    }
}
