import Foundation
import Logging
import Testing

@testable import AgentRuntime
@testable import Protocol
@testable import ZeroMQ

/// Rule 5 on the agent's side: an idle interval asked for in the hello and kept while no step is held, the short
/// interval while one is, and a silent or restarted coordinator found.
@Suite(.serialized) struct AgentHeartbeatTests {
    let context = Context()

    private func startAgent(
        _ coordinator: FakeCoordinator, id: String, idle: Duration? = .seconds(10)
    ) -> Task<Void, any Error> {
        var configuration = AgentConfiguration(role: .docs, coordinator: coordinator.control, id: id)
        configuration.curve = coordinator.curve
        configuration.liveness = 100
        configuration.heartbeatInterval = .milliseconds(100)
        configuration.resendInterval = .milliseconds(200)
        configuration.idleHeartbeatInterval = idle
        let service = AgentService(
            configuration: configuration, handler: CountingHandler(), logger: Logger(label: "test.agent"),
            context: context)
        return Task { try await service.run() }
    }

    /// A welcome of a 100 ms interval granting `idle` ms while idle; `liveness` 300 (30 s) unless told.
    private func welcome(_ coordinator: FakeCoordinator, idle: Int?, liveness: Int = 300) throws {
        try coordinator.reply(
            Header(type: .welcome),
            Welcome(
                heartbeatIntervalMilliseconds: 100, liveness: liveness, eventsPort: coordinator.eventsPort,
                eventsEndpoint: nil, idleHeartbeatIntervalMilliseconds: idle))
    }

    @Test func anIdleAgentAsksForItsIntervalAndHeartbeatsAtTheOneGranted() async throws {
        let coordinator = try FakeCoordinator()
        coordinator.heartbeats = false
        let agent = startAgent(coordinator, id: "docs-i1", idle: .seconds(5))
        defer { agent.cancel() }
        let hello = try #require(try await coordinator.expect(.hello)).decode(Hello.self)
        #expect(hello.idleHeartbeatIntervalMilliseconds == 5000)
        try welcome(coordinator, idle: 2000)
        // Before the welcome it heartbeats every 100 ms; once welcomed, at the 2 s granted (by the agent's clock):
        // two gaps of 2 s in a row.
        var previous = try #require(try await coordinator.expect(.heartbeat))
        var longGaps = 0
        while longGaps < 2, let beat = try await coordinator.expect(.heartbeat) {
            #expect(try beat.decode(Heartbeat.self).inFlight.isEmpty)
            try coordinator.reply(Header(type: .heartbeat), Heartbeat())
            let gap = beat.header.sentAt - previous.header.sentAt
            if gap >= 1900 {
                longGaps += 1
            } else {
                #expect(longGaps == 0, "once at the idle interval, it stays there (a gap of \(gap) ms)")
            }
            previous = beat
        }
        #expect(longGaps == 2)
    }

    @Test func anAgentGivenAStepHeartbeatsAtOnceAndListsIt() async throws {
        let coordinator = try FakeCoordinator()
        let agent = startAgent(coordinator, id: "docs-i2")
        defer { agent.cancel() }
        _ = try #require(try await coordinator.expect(.hello))
        // Idle, it would not heartbeat again for a minute.
        try welcome(coordinator, idle: 60_000)
        _ = try #require(try await coordinator.expect(.heartbeat))
        try await coordinator.waitSubscription(WireFormat.agentTopic("docs-i2"))
        let key = StepKey(workflow: "k3s-dev-0000a1", step: "docs", attempt: 1)
        try coordinator.publishStep(key, to: "docs-i2")
        var listed = false
        while !listed, let beat = try await coordinator.expect(.heartbeat) {
            listed = try beat.decode(Heartbeat.self).inFlight.contains(key)
        }
        #expect(listed, "holding the step (running, then unconfirmed), the agent heartbeats at the interval")
    }

    @Test func anAgentThatHeldAStepSaysItHoldsNoneBeforeItSlowsToTheIdleInterval() async throws {
        let coordinator = try FakeCoordinator()
        let agent = startAgent(coordinator, id: "docs-i5")
        defer { agent.cancel() }
        _ = try #require(try await coordinator.expect(.hello))
        try welcome(coordinator, idle: 60_000)
        _ = try #require(try await coordinator.expect(.heartbeat))
        try await coordinator.waitSubscription(WireFormat.agentTopic("docs-i5"))
        let key = StepKey(workflow: "k3s-dev-0000a5", step: "docs", attempt: 1)
        try coordinator.publishStep(key, to: "docs-i5")
        _ = try #require(try await coordinator.expect(.result))
        try coordinator.reply(Header(type: .confirm, workflow: key.workflow, step: key.step, attempt: key.attempt), Empty())
        // The coordinator's last word from it listed the step, so it judges the agent on the short window: the
        // agent's next heartbeats come at the short interval until one lists nothing, not a minute later.
        var saidIdle = false
        let deadline = ContinuousClock.now + .seconds(10)
        while !saidIdle, ContinuousClock.now < deadline, let beat = try await coordinator.expect(.heartbeat) {
            saidIdle = try beat.decode(Heartbeat.self).inFlight.isEmpty
        }
        #expect(saidIdle)
    }

    @Test func anIdleAgentWhoseHeartbeatGoesUnansweredConnectsAgain() async throws {
        let coordinator = try FakeCoordinator()
        coordinator.heartbeats = false
        let agent = startAgent(coordinator, id: "docs-i3")
        defer { agent.cancel() }
        _ = try #require(try await coordinator.expect(.hello))
        // A 500 ms window, an idle interval of 2 s; nothing answers the agent's heartbeats.
        try welcome(coordinator, idle: 2000, liveness: 5)
        _ = try #require(try await coordinator.expect(.heartbeat))
        let connection = coordinator.agentIdentity
        // A heartbeat unanswered for the window: fresh sockets (a new routing identity) and a hello.
        var reconnected = false
        while !reconnected, try await coordinator.expect(.hello) != nil {
            reconnected = coordinator.agentIdentity != connection
        }
        #expect(reconnected)
    }

    @Test func anIdleAgentFindsARestartedCoordinatorAtOnce() async throws {
        let coordinator = try FakeCoordinator()
        coordinator.heartbeats = false
        let agent = startAgent(coordinator, id: "docs-i4", idle: .seconds(120))
        defer { agent.cancel() }
        _ = try #require(try await coordinator.expect(.hello))
        // Neither its idle interval (2 min) nor its window (30 s) would make it speak within the test's deadline.
        try welcome(coordinator, idle: 120_000)
        _ = try #require(try await coordinator.expect(.heartbeat))
        try coordinator.reply(Header(type: .heartbeat), Heartbeat())
        try await coordinator.restart()
        // The new connection's handshake makes the agent heartbeat; the new coordinator does not know it.
        #expect(try await coordinator.expect(.heartbeat, timeout: .seconds(20)) != nil)
        try coordinator.reply(Header(type: .rehello), Empty())
        #expect(try await coordinator.expect(.hello) != nil)
    }
}
