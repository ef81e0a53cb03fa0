import Foundation
import Testing

@testable import Coordinator
@testable import Protocol
@testable import ZeroMQ

/// Rule 5 with idle intervals: the coordinator answers heartbeats, judges an agent that holds no step on the idle
/// interval it granted, and one that holds or was given a step on the short window.
@Suite(.serialized) struct LivenessTests {
    let context = Context()

    @Test func anIdleIntervalIsGrantedWithinTheLimitAndEveryHeartbeatIsAnswered() async throws {
        let coordinator = try await TestCoordinator.start { $0.maxIdleHeartbeatInterval = .seconds(2) }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let asking = try RawAgent(id: "docs-idle", role: .docs, coordinator: coordinator, context: context)
            asking.idleHeartbeat = 5000
            try asking.sendHello()
            let welcome = try #require(try asking.waitControl(.welcome)).decode(Welcome.self)
            #expect(welcome.idleHeartbeatIntervalMilliseconds == 2000, "at most --max-idle-heartbeat")
            #expect(try asking.waitControl(.heartbeat, timeout: .seconds(5)) != nil, "its heartbeats are answered")
            let plain = try RawAgent(id: "docs-plain", role: .docs, coordinator: coordinator, context: context)
            try plain.sendHello()
            let plainWelcome = try #require(try plain.waitControl(.welcome)).decode(Welcome.self)
            #expect(plainWelcome.idleHeartbeatIntervalMilliseconds == nil, "none asked, none granted")
        }
    }

    @Test func noIdleIntervalIsGrantedWhenTheLimitIsNotLongerThanTheInterval() async throws {
        let coordinator = try await TestCoordinator.start { $0.maxIdleHeartbeatInterval = .milliseconds(100) }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let agent = try RawAgent(id: "docs-off", role: .docs, coordinator: coordinator, context: context)
            agent.idleHeartbeat = 5000
            try agent.sendHello()
            let welcome = try #require(try agent.waitControl(.welcome)).decode(Welcome.self)
            #expect(welcome.idleHeartbeatIntervalMilliseconds == nil)
        }
    }

    @Test func anIdleIntervalOutOfRangeIsRefused() async throws {
        let coordinator = try await TestCoordinator.start()
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let agent = try RawAgent(id: "docs-bad", role: .docs, coordinator: coordinator, context: context)
            agent.idleHeartbeat = 10
            try agent.sendHello()
            let error = try #require(try agent.waitControl(.error)).decode(ErrorReply.self)
            #expect(error.reason == RejectReason.invalidField.rawValue)
            #expect(try coordinator.client(context).agents().isEmpty)
        }
    }

    @Test func anIdleAgentOutlivesTheShortWindowAndIsDeclaredDeadAfterItsOwn() async throws {
        let coordinator = try await TestCoordinator.start {
            $0.heartbeatInterval = .milliseconds(100)
            $0.liveness = 3
            $0.maxIdleHeartbeatInterval = .seconds(2)
        }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let idle = try RawAgent(id: "docs-quiet", role: .docs, coordinator: coordinator, context: context)
            idle.idleHeartbeat = 2000
            try idle.join()
            // A heartbeat listing no step: from its answer on, the agent is judged on 3 x 2 s.
            _ = try #require(try idle.waitControl(.heartbeat))
            let plain = try RawAgent(id: "docs-short", role: .docs, coordinator: coordinator, context: context)
            try plain.join()
            _ = try #require(try plain.waitControl(.heartbeat))
            idle.heartbeats = false
            plain.heartbeats = false
            let client = try coordinator.client(context)
            let deadline = ContinuousClock.now + .seconds(20)
            var listed = try client.agents().map(\.id)
            while listed.contains("docs-short") && ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.02)
                listed = try client.agents().map(\.id)
            }
            #expect(listed == ["docs-quiet"], "the short window ends first; the idle agent is still there")
            while listed.contains("docs-quiet") && ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.05)
                listed = try client.agents().map(\.id)
            }
            #expect(listed.isEmpty, "an idle agent gone silent is declared dead after its own window")
        }
    }

    @Test func aStepGivenToAnAgentThatDiedIdleGoesToAnotherUncharged() async throws {
        // The ack timeout is far away: only the liveness rule can move the step.
        let coordinator = try await TestCoordinator.start {
            $0.heartbeatInterval = .milliseconds(200)
            $0.liveness = 3
            $0.maxIdleHeartbeatInterval = .seconds(60)
            $0.ackTimeout = .seconds(60)
            $0.maxAttempts = 1
        }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            // Both idle, so neither needs to be pumped to stay registered meanwhile.
            let survivor = try RawAgent(id: "planner-b", role: .planner, coordinator: coordinator, context: context)
            survivor.idleHeartbeat = 60_000
            try survivor.join()
            _ = try #require(try survivor.waitControl(.heartbeat))
            let dead = try RawAgent(id: "planner-a", role: .planner, coordinator: coordinator, context: context)
            dead.idleHeartbeat = 60_000
            try dead.join()
            _ = try #require(try dead.waitControl(.heartbeat))
            dead.heartbeats = false
            // Both wait alike; the tie goes to the lower id: the dead one.
            let workflow = try coordinator.client(context).submit(WorkflowRequest()).workflow
            let first = try #require(try dead.waitStep())
            #expect(first.key == StepKey(workflow: workflow, step: "plan", attempt: 1))
            let moved = try #require(try survivor.waitStep(timeout: .seconds(20)))
            #expect(moved.key == StepKey(workflow: workflow, step: "plan", attempt: 2))
            try survivor.ack(moved.key)
            try survivor.result(moved.key, values: ["plan": emptyPlan])
            _ = try #require(try survivor.waitControl(.confirm))
            #expect(try coordinator.client(context).status(workflow).state == .succeeded, "not charged (max 1)")
        }
    }

    @Test func anAgentHoldingAStepIsJudgedOnTheShortWindowWhateverItsIdleInterval() async throws {
        let coordinator = try await TestCoordinator.start {
            $0.heartbeatInterval = .milliseconds(200)
            $0.liveness = 3
            $0.maxIdleHeartbeatInterval = .seconds(60)
            $0.ackTimeout = .seconds(60)
        }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let dying = try RawAgent(id: "planner-dying", role: .planner, coordinator: coordinator, context: context)
            dying.idleHeartbeat = 60_000
            try dying.join()
            _ = try #require(try dying.waitControl(.heartbeat))
            let workflow = try coordinator.client(context).submit(WorkflowRequest()).workflow
            let step = try #require(try dying.waitStep())
            // Acknowledged, then silence.
            try dying.ack(step.key)
            dying.heartbeats = false
            let survivor = try RawAgent(
                id: "planner-survivor", role: .planner, coordinator: coordinator, context: context)
            try survivor.join()
            let moved = try #require(try survivor.waitStep(timeout: .seconds(20)))
            #expect(moved.key == StepKey(workflow: workflow, step: "plan", attempt: 2))
        }
    }
}
