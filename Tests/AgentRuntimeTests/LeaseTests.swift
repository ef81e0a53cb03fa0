import Foundation
import Logging
import ServiceLifecycle
import Testing

@testable import AgentRuntime
@testable import Protocol
@testable import ZeroMQ

@Suite struct StepLeaseTests {
    @Test func aRenewedLeaseHoldsAndAnExpiredOneNeverComesBack() async throws {
        let lease = StepLease(window: .milliseconds(200))
        #expect(lease.isHeld)
        lease.renew(window: .milliseconds(200))
        #expect(lease.isHeld)
        let deadline = ContinuousClock.now + .seconds(5)
        while lease.isHeld && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!lease.isHeld)
        // News from the coordinator after the window (a process waking from SIGSTOP) does not revive it.
        lease.renew(window: .seconds(60))
        #expect(!lease.isHeld)
        let context = StepContext(
            key: StepKey(workflow: "w", step: "s", attempt: 3), assignment: StepAssignment(
                role: .docs, request: WorkflowRequest(), params: [:], inputs: [:], artifacts: []),
            agentID: "a", logger: Logger(label: "t"), lease: lease)
        #expect(context.fencingToken == 3)
        #expect(throws: LeaseLost.self) { try context.checkLease() }
    }

    @Test func aRevokedLeaseIsLost() {
        let lease = StepLease(window: .seconds(60))
        lease.revoke()
        #expect(!lease.isHeld)
        #expect(StepLease.unbounded().isHeld)
    }
}

/// Starts, then waits for `release` before its side effect, checking its lease first as handlers do.
final class GatedHandler: StepHandler, @unchecked Sendable {  // all state is guarded by `lock`
    private let lock = NSLock()
    private var started: StepLease?
    private var released = false
    private var effects = 0
    let artifact: Artifact?

    init(artifact: Artifact? = nil) { self.artifact = artifact }

    func run(_ context: StepContext) async throws -> StepOutput {
        lock.withLock { started = context.lease }
        while !lock.withLock({ released }) { try await Task.sleep(for: .milliseconds(10)) }
        try context.checkLease()
        lock.withLock { effects += 1 }
        return StepOutput(summary: "done", artifacts: artifact.map { [$0] } ?? [])
    }

    var lease: StepLease? { lock.withLock { started } }
    var sideEffects: Int { lock.withLock { effects } }
    func release() { lock.withLock { released = true } }
}

@Suite(.serialized) struct AgentLeaseTests {
    let context = Context()

    private func service(
        _ coordinator: FakeCoordinator, handler: any StepHandler, id: String, stateDirectory: String? = nil
    ) -> AgentService {
        var configuration = AgentConfiguration(role: .docs, coordinator: coordinator.control, id: id)
        configuration.curve = coordinator.curve
        configuration.liveness = 100
        configuration.heartbeatInterval = .milliseconds(100)
        configuration.resendInterval = .milliseconds(200)
        configuration.drainTimeout = .milliseconds(300)
        configuration.stateDirectory = stateDirectory
        return AgentService(
            configuration: configuration, handler: handler, logger: Logger(label: "test.agent"), context: context)
    }

    private func waitFor(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TestFailure("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test func aStepWhoseLeaseRanOutDoesNoWorkAndSendsNoResult() async throws {
        let coordinator = try FakeCoordinator()
        let handler = GatedHandler()
        let agentService = service(coordinator, handler: handler, id: "docs-lease")
        let agent = Task { try await agentService.run() }
        defer { agent.cancel() }
        _ = try #require(try await coordinator.expect(.hello))
        // A short liveness window: 3 x 1 s without news from the coordinator ends every lease.
        try coordinator.reply(
            Header(type: .welcome),
            Welcome(heartbeatIntervalMilliseconds: 1000, liveness: 3, eventsPort: coordinator.eventsPort, eventsEndpoint: nil))
        try await coordinator.waitSubscription(WireFormat.agentTopic("docs-lease"))
        let key = StepKey(workflow: "k3s-dev-00000a", step: "docs", attempt: 1)
        try coordinator.publishStep(key, to: "docs-lease")
        #expect(try await coordinator.expect(.ack)?.header.stepKey == key)
        // The coordinator now says nothing, as to an agent it declared dead. After the window the agent gives up
        // on it and connects again with a hello: by then every lease it held has run out. (On a loaded machine
        // the step may not have started yet; then it never will.)
        let deadline = ContinuousClock.now + .seconds(20)
        var reconnected = false
        while !reconnected && ContinuousClock.now < deadline {
            guard let message = try coordinator.router.receiveMessage(wait: false) else {
                try await Task.sleep(for: FakeCoordinator.pollInterval)
                continue
            }
            reconnected = try Codec.decode(message.frames.dropFirst()).header.type == .hello
        }
        #expect(reconnected)
        #expect(handler.lease?.isHeld != true)
        handler.release()
        #expect(try await coordinator.expect(.result, timeout: .seconds(1)) == nil)
        #expect(handler.sideEffects == 0)
    }

    @Test func shutdownHandsRunningStepsBackWithoutAFailedResult() async throws {
        let coordinator = try FakeCoordinator()
        let handler = GatedHandler()
        let state = NSTemporaryDirectory() + "shoal-agent-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let group = ServiceGroup(
            configuration: .init(
                services: [service(coordinator, handler: handler, id: "docs-bye", stateDirectory: state)],
                logger: Logger(label: "test.group")))
        let running = Task { try await group.run() }
        defer { running.cancel() }
        _ = try #require(try await coordinator.expect(.hello))
        try coordinator.welcome()
        try await coordinator.waitSubscription(WireFormat.agentTopic("docs-bye"))
        let key = StepKey(workflow: "k3s-dev-00000b", step: "docs", attempt: 1)
        try coordinator.publishStep(key, to: "docs-bye")
        #expect(try await coordinator.expect(.ack)?.header.stepKey == key)
        try await waitFor("the step to start") { handler.lease != nil }
        await group.triggerGracefulShutdown()
        #expect(try await coordinator.expect(.bye, timeout: .seconds(5)) != nil)
        try await running.value
        #expect(handler.sideEffects == 0)
        // Nothing was recorded for the step, so no later run of this agent reports it as failed.
        let record = (try? String(contentsOfFile: "\(state)/docs-bye.results.jsonl", encoding: .utf8)) ?? ""
        #expect(!record.contains("k3s-dev-00000b"), "\(record)")
    }

    @Test func sensitiveArtifactsAreSealedInTheRecordAndStillResent() async throws {
        let secret = "k3s-join-token-\(UInt64.random(in: 0...UInt64.max))"
        let handler = GatedHandler(artifact: Artifact(name: "k3s-token", path: nil, sensitive: true, text: secret))
        handler.release()
        let state = NSTemporaryDirectory() + "shoal-agent-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let coordinator = try FakeCoordinator()
        let key = StepKey(workflow: "k3s-dev-00000c", step: "docs", attempt: 1)
        do {
            let first = service(coordinator, handler: handler, id: "docs-seal", stateDirectory: state)
            let agent = Task { try await first.run() }
            _ = try #require(try await coordinator.expect(.hello))
            try coordinator.welcome()
            try await coordinator.waitSubscription(WireFormat.agentTopic("docs-seal"))
            try coordinator.publishStep(key, to: "docs-seal")
            let result = try #require(try await coordinator.expect(.result))
            #expect(try result.decode(StepResult.self).output.artifacts.first?.text == secret)
            agent.cancel()
            _ = try? await agent.value
        }
        let record = try String(contentsOfFile: "\(state)/docs-seal.results.jsonl", encoding: .utf8)
        #expect(record.contains("k3s-dev-00000c"))
        #expect(!record.contains(secret))
        #expect(!record.contains(Data(secret.utf8).base64EncodedString()))
        #expect(!record.contains(String(Data(secret.utf8).base64EncodedString().prefix(16))))
        // A restarted agent with the same id opens it again and resends the unconfirmed result, artifact and all.
        let second = service(coordinator, handler: handler, id: "docs-seal", stateDirectory: state)
        let restarted = Task { try await second.run() }
        defer { restarted.cancel() }
        _ = try #require(try await coordinator.expect(.hello))
        try coordinator.welcome()
        let again = try #require(try await coordinator.expect(.result))
        #expect(again.header.stepKey == key)
        #expect(try again.decode(StepResult.self).output.artifacts.first?.text == secret)
        #expect(handler.sideEffects == 1)
    }
}
