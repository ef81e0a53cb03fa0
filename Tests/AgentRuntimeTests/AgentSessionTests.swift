import Foundation
import Logging
import Testing

@testable import AgentRuntime
@testable import Protocol
@testable import ZeroMQ

/// Counts how often each step really ran.
final class CountingHandler: StepHandler, @unchecked Sendable {  // `runs` is guarded by `lock`
    private let lock = NSLock()
    private var runs: [String: Int] = [:]
    /// How long each step takes.
    let duration: Duration

    init(duration: Duration = .zero) { self.duration = duration }

    func run(_ context: StepContext) async throws -> StepOutput {
        lock.withLock { runs[context.key.description, default: 0] += 1 }
        if duration > .zero { try await Task.sleep(for: duration) }
        return StepOutput(summary: "ran \(context.key.step)", values: ["echo": .string(context.key.step)])
    }

    func count(_ key: StepKey) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return runs[key.description] ?? 0
    }
}

/// A coordinator made of raw sockets, driving a real AgentService. Both
/// sockets are CURVE servers of their own context, whose ZAP handler allows
/// `agentKeys` only.
final class FakeCoordinator {
    let context = Context()
    private(set) var router: Socket
    let publisher: Socket
    let zap: ZAPHandler
    let serverKeys: CurveKeyPair
    let agentKeys: CurveKeyPair
    var agentIdentity: [UInt8] = []
    /// The ZAP user id of the last message received.
    var lastUserID: String?
    /// Speaks up unasked every 50 ms (as a v3 coordinator did); off, the agent hears only what a test sends.
    var heartbeats = true
    private var lastHeartbeat = ContinuousClock.now

    init() throws {
        serverKeys = try CurveKeyPair.generate()
        agentKeys = try CurveKeyPair.generate()
        zap = try ZAPHandler(context: context, domain: "shoal", allowList: CurveAllowList([agentKeys.publicKey]))
        router = try Socket(context: context, type: .router)
        try router.makeCurveServer(secretKey: serverKeys.secretKey, zapDomain: "shoal")
        try router.bind("tcp://127.0.0.1:*")
        publisher = try Socket(context: context, type: .xpub)
        try publisher.set(.xpubVerbose, 1)
        try publisher.makeCurveServer(secretKey: serverKeys.secretKey, zapDomain: "shoal")
        try publisher.bind("tcp://127.0.0.1:*")
    }

    deinit { zap.stop() }

    /// What an agent allowed here connects with.
    var curve: CurveClientKeys { CurveClientKeys(serverPublicKey: serverKeys.publicKey, keyPair: agentKeys) }

    var control: String { (try? router.lastEndpoint) ?? "" }
    var eventsPort: Int { Int((try? publisher.lastEndpoint)?.split(separator: ":").last ?? "") ?? 0 }

    /// How long a wait sleeps when nothing has arrived. Waits never block in
    /// a poll: a blocked thread is one of the cooperative pool's (two on a
    /// 2-core machine), which the agent under test and every other test's
    /// tasks need to run at all.
    static let pollInterval = Duration.milliseconds(2)

    /// The next control message of `type`, skipping others (heartbeats).
    /// The deadline is checked only after a poll found nothing, so a test
    /// task that waited long for a thread still sees what arrived meanwhile.
    func expect(_ type: MessageType, timeout: Duration = .seconds(20)) async throws -> Envelope? {
        try await expect(of: [type], timeout: timeout)
    }

    func expect(of types: Set<MessageType>, timeout: Duration = .seconds(20)) async throws -> Envelope? {
        let deadline = ContinuousClock.now + timeout
        while true {
            heartbeat()
            guard let message = try router.receiveMessage(wait: false) else {
                if ContinuousClock.now >= deadline { return nil }
                try await Task.sleep(for: Self.pollInterval)
                continue
            }
            agentIdentity = message.frames[0]
            lastUserID = message.userID
            let envelope = try Codec.decode(message.frames.dropFirst())
            if types.contains(envelope.header.type) { return envelope }
        }
    }

    /// Messages of `type` sent (by the sender's clock, the same machine's)
    /// after `time` that arrive within `window`.
    func sentAfter(_ time: Int64, _ type: MessageType, window: Duration) async throws -> [Envelope] {
        var found: [Envelope] = []
        let deadline = ContinuousClock.now + window
        while let envelope = try await expect(type, timeout: deadline - ContinuousClock.now) {
            if envelope.header.sentAt > time { found.append(envelope) }
        }
        return found
    }

    func reply<Body: Encodable>(_ header: Header, _ body: Body) throws {
        try router.send([agentIdentity] + Codec.encode(header, body))
    }

    func welcome() throws {
        try reply(Header(type: .welcome), Welcome(heartbeatIntervalMilliseconds: 100, liveness: 300, eventsPort: eventsPort, eventsEndpoint: nil))
    }

    /// Like a real coordinator, speaks up now and then, so the agent does
    /// not take a slow test for a coordinator gone silent.
    private func heartbeat() {
        guard heartbeats, !agentIdentity.isEmpty, ContinuousClock.now - lastHeartbeat > .milliseconds(50) else {
            return
        }
        lastHeartbeat = ContinuousClock.now
        _ = try? router.send([agentIdentity] + Codec.encode(Header(type: .heartbeat), Heartbeat()), wait: false)
    }

    /// A coordinator restarted on the same port: the control socket closed (the agent's connection drops)
    /// and bound again; the new one knows no agent.
    func restart() async throws {
        let endpoint = control
        router.close()
        let fresh = try Socket(context: context, type: .router)
        try fresh.makeCurveServer(secretKey: serverKeys.secretKey, zapDomain: "shoal")
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            do {
                try fresh.bind(endpoint)
                break
            } catch {
                // The old socket's listener closes on libzmq's I/O thread.
                guard ContinuousClock.now < deadline else { throw error }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        router = fresh
        agentIdentity = []
    }

    func waitSubscription(_ topic: String) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            heartbeat()
            while let frames = try publisher.receive(wait: false) {
                if frames[0] == [1] + Array(topic.utf8) { return }
            }
            try await Task.sleep(for: Self.pollInterval)
        }
        throw TestFailure("no subscription to \(topic)")
    }

    /// Several steps of one workflow in one message (v4).
    func publishSteps(_ keys: [StepKey], to agent: String) throws {
        let batch = StepBatch(
            request: WorkflowRequest(),
            steps: keys.map {
                StepBatch.Entry(step: $0.step, attempt: $0.attempt, role: .docs, params: [:], inputs: [:], artifacts: [])
            })
        let header = Header(type: .step, workflow: keys[0].workflow)
        try publisher.send(Codec.encode(header, batch, topic: WireFormat.agentTopic(agent)))
    }

    func publishStep(_ key: StepKey, to agent: String, role: Role = .docs, artifacts: [ArtifactRef] = []) throws {
        let assignment = StepAssignment(
            role: role, request: WorkflowRequest(), params: [:], inputs: [:], artifacts: artifacts)
        let header = Header(type: .step, workflow: key.workflow, step: key.step, attempt: key.attempt)
        try publisher.send(Codec.encode(header, assignment, topic: WireFormat.agentTopic(agent)))
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@Suite(.serialized) struct AgentSessionTests {
    let context = Context()

    private func startAgent(_ coordinator: FakeCoordinator, handler: CountingHandler, id: String = "docs-t") -> Task<Void, any Error> {
        var configuration = AgentConfiguration(role: .docs, coordinator: coordinator.control, id: id)
        configuration.curve = coordinator.curve
        // Until the welcome, silence longer than interval x liveness means
        // reconnect, and a welcome sent to the old connection is lost: on a
        // loaded machine the test may take seconds to answer the hello.
        configuration.liveness = 100
        configuration.resendInterval = .milliseconds(200)
        configuration.heartbeatInterval = .milliseconds(100)
        let service = AgentService(configuration: configuration, handler: handler, logger: Logger(label: "test.agent"), context: context)
        return Task { try await service.run() }
    }

    @Test func agentAcksRunsOnceAndResendsUntilConfirmed() async throws {
        let coordinator = try FakeCoordinator()
        let handler = CountingHandler()
        let agent = startAgent(coordinator, handler: handler)
        defer { agent.cancel() }
        let hello = try #require(try await coordinator.expect(.hello))
        #expect(try hello.decode(Hello.self).role == .docs)
        #expect(coordinator.lastUserID == coordinator.agentKeys.publicKey, "the agent speaks CURVE with its own key")
        try coordinator.welcome()
        try await coordinator.waitSubscription(WireFormat.agentTopic("docs-t"))
        let key = StepKey(workflow: "k3s-dev-000001", step: "docs", attempt: 1)
        try coordinator.publishStep(key, to: "docs-t")
        // The ack comes first, unless the step ended before the ack left: its result then stands for it (v4).
        var result = try #require(try await coordinator.expect(of: [.ack, .result]))
        #expect(result.header.stepKey == key)
        if result.header.type == .ack { result = try #require(try await coordinator.expect(.result)) }
        #expect(result.header.stepKey == key)
        #expect(try result.decode(StepResult.self).output.values["echo"] == "docs")
        // Not confirmed: it comes again, and the heartbeats still list the step as the agent's.
        #expect(try await coordinator.expect(.result)?.header.stepKey == key)
        var listed = false
        while !listed, let beat = try await coordinator.expect(.heartbeat, timeout: .seconds(10)) {
            if beat.header.sentAt > result.header.sentAt { listed = try beat.decode(Heartbeat.self).inFlight.contains(key) ; break }
        }
        #expect(listed, "a heartbeat after the result lists the unconfirmed step")
        let confirmedAt = Int64(Date().timeIntervalSince1970 * 1000)
        try coordinator.reply(Header(type: .confirm, workflow: key.workflow, step: key.step, attempt: key.attempt), Empty())
        // Confirmed: no more resends. One already on its way may still come;
        // none is sent once the agent has read the confirmation (allow it 150 ms).
        #expect(try await coordinator.sentAfter(confirmedAt + 150, .result, window: .milliseconds(700)).isEmpty)
        // The same step published again is answered from the stored result, which stands for its ack (v4).
        let republishedAt = Int64(Date().timeIntervalSince1970 * 1000)
        try coordinator.publishStep(key, to: "docs-t")
        #expect(try await coordinator.expect(.result)?.header.stepKey == key)
        #expect(try await coordinator.sentAfter(republishedAt - 1, .ack, window: .milliseconds(300)).isEmpty)
        #expect(handler.count(key) == 1, "a step seen twice runs once")
    }

    @Test func agentAcksASlowStepBeforeItsResult() async throws {
        let coordinator = try FakeCoordinator()
        let handler = CountingHandler(duration: .milliseconds(500))
        let agent = startAgent(coordinator, handler: handler, id: "docs-s")
        defer { agent.cancel() }
        _ = try #require(try await coordinator.expect(.hello))
        try coordinator.welcome()
        try await coordinator.waitSubscription(WireFormat.agentTopic("docs-s"))
        let key = StepKey(workflow: "k3s-dev-000004", step: "docs", attempt: 1)
        try coordinator.publishStep(key, to: "docs-s")
        // The ack does not wait for a result that takes longer than the ack delay.
        let ack = try #require(try await coordinator.expect(.ack))
        #expect(ack.header.stepKey == key)
        let result = try #require(try await coordinator.expect(.result))
        #expect(result.header.stepKey == key)
        #expect(result.header.sentAt >= ack.header.sentAt + 400, "the ack went out long before the step ended")
    }

    @Test func agentRunsEveryStepOfABatchOnceAndAcknowledgesEach() async throws {
        let coordinator = try FakeCoordinator()
        let handler = CountingHandler()
        let agent = startAgent(coordinator, handler: handler, id: "docs-b")
        defer { agent.cancel() }
        _ = try #require(try await coordinator.expect(.hello))
        try coordinator.welcome()
        try await coordinator.waitSubscription(WireFormat.agentTopic("docs-b"))
        let keys = (1...3).map { StepKey(workflow: "k3s-dev-000003", step: "docs/\($0)", attempt: 1) }
        try coordinator.publishSteps(keys, to: "docs-b")
        var acknowledged: Set<StepKey> = []
        var results: Set<StepKey> = []
        while results.count < keys.count, let message = try await coordinator.expect(of: [.ack, .result]) {
            if message.header.type == .result {
                results.insert(try #require(message.header.stepKey))
            } else if let key = message.header.stepKey {
                acknowledged.insert(key)
            } else {
                acknowledged.formUnion(try KeyList.decode(message.body).keys)
            }
        }
        #expect(results == Set(keys))
        // Each step is acknowledged, or answered by its result before its ack would have left.
        #expect(acknowledged.union(results) == Set(keys))
        #expect(keys.allSatisfy { handler.count($0) == 1 })
    }

    @Test func agentIntroducesItselfAgainWhenAskedAndResendsItsResult() async throws {
        let coordinator = try FakeCoordinator()
        let handler = CountingHandler()
        let agent = startAgent(coordinator, handler: handler, id: "docs-r")
        defer { agent.cancel() }
        _ = try #require(try await coordinator.expect(.hello))
        try coordinator.welcome()
        try await coordinator.waitSubscription(WireFormat.agentTopic("docs-r"))
        let key = StepKey(workflow: "k3s-dev-000002", step: "docs", attempt: 1)
        try coordinator.publishStep(key, to: "docs-r")
        _ = try #require(try await coordinator.expect(.result))
        // A restarted coordinator does not know the agent: it asks for a hello.
        try coordinator.reply(Header(type: .rehello), Empty())
        _ = try #require(try await coordinator.expect(.hello))
        try coordinator.welcome()
        // After the welcome, the unconfirmed result arrives again at once.
        #expect(try await coordinator.expect(.result, timeout: .seconds(1))?.header.stepKey == key)
        #expect(handler.count(key) == 1)
    }

    @Test func agentRejectsGarbageOnItsTopicAndKeepsWorking() async throws {
        let coordinator = try FakeCoordinator()
        let handler = CountingHandler()
        let agent = startAgent(coordinator, handler: handler, id: "docs-g")
        defer { agent.cancel() }
        _ = try #require(try await coordinator.expect(.hello))
        try coordinator.welcome()
        let topic = WireFormat.agentTopic("docs-g")
        try await coordinator.waitSubscription(topic)
        var generator = SystemRandomNumberGenerator()
        for index in 0..<2000 {
            var frames: [[UInt8]] = [Array(topic.utf8)]
            for _ in 0..<(index % 4) {
                frames.append((0..<Int.random(in: 0..<64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
            }
            try coordinator.publisher.send(frames)
        }
        let key = StepKey(workflow: "k3s-dev-000003", step: "docs", attempt: 1)
        try coordinator.publishStep(key, to: "docs-g")
        #expect(try await coordinator.expect(.result)?.header.stepKey == key)
    }
}
