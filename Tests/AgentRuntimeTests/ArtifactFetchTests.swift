import Foundation
import Logging
import Testing

@testable import AgentRuntime
@testable import Protocol
@testable import ZeroMQ

/// Records what each step saw of its artifacts.
final class ArtifactRecordingHandler: StepHandler, @unchecked Sendable {  // `seen` is guarded by `lock`
    private let lock = NSLock()
    private var seen: [String: [String: String]] = [:]

    func run(_ context: StepContext) async throws -> StepOutput {
        let digests = Dictionary(
            uniqueKeysWithValues: context.artifacts.map { ($0.name, ArtifactCache.digest($0.data)) })
        lock.withLock { seen[context.key.description] = digests }
        return StepOutput(summary: "saw \(digests.count) artifacts")
    }

    /// The digest of each artifact the step saw (by name), nil when it did not run.
    func digests(_ key: StepKey) -> [String: String]? { lock.withLock { seen[key.description] } }
}

@Suite(.serialized) struct ArtifactFetchTests {
    let context = Context()

    private func startAgent(
        _ coordinator: FakeCoordinator, handler: any StepHandler, id: String,
        _ tweak: (inout AgentConfiguration) -> Void = { _ in }
    ) -> Task<Void, any Error> {
        var configuration = AgentConfiguration(role: .docs, coordinator: coordinator.control, id: id)
        configuration.curve = coordinator.curve
        configuration.liveness = 100
        configuration.resendInterval = .milliseconds(200)
        configuration.heartbeatInterval = .milliseconds(100)
        tweak(&configuration)
        let service = AgentService(
            configuration: configuration, handler: handler, logger: Logger(label: "test.agent"), context: context)
        return Task { try await service.run() }
    }

    private func join(_ coordinator: FakeCoordinator, _ id: String) async throws {
        _ = try #require(try await coordinator.expect(.hello))
        try coordinator.welcome()
        try await coordinator.waitSubscription(WireFormat.agentTopic(id))
    }

    private static func reference(_ name: String, _ data: Data, sensitive: Bool = false) -> ArtifactRef {
        ArtifactRef(
            name: name, path: nil, mode: 0o644, sensitive: sensitive, size: data.count,
            digest: ArtifactCache.digest(data))
    }

    /// Answers the agent's fetches of `data` until every chunk of it from `start` has been asked for, with `corrupt` applied
    /// to each chunk; returns how many different offsets were asked for. (An agent kept waiting on a loaded
    /// machine asks again for a chunk: a repeated request is answered, and counted once.)
    private func serve(
        _ coordinator: FakeCoordinator, _ data: Data, from start: Int = 0, corrupt: (Int, Data) -> Data = { $1 }
    ) async throws -> Int {
        let chunks = Set(stride(from: start, to: data.count, by: WireFormat.fetchChunkBytes))
        var asked: Set<Int> = []
        while !chunks.isSubset(of: asked) {
            let envelope = try #require(try await coordinator.expect(.fetch), "the agent fetches the artifact")
            let request = try envelope.decode(FetchRequest.self)
            asked.insert(request.offset)
            guard (0..<data.count).contains(request.offset) else { continue }
            let end = min(data.count, request.offset + WireFormat.fetchChunkBytes)
            let chunk = corrupt(request.offset, data.subdata(in: request.offset..<end))
            try coordinator.reply(
                Header(type: .fetchReply, re: envelope.header.id),
                FetchReply(digest: request.digest, offset: request.offset, total: data.count, data: chunk))
        }
        return asked.count
    }

    private static let big = Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 9) })

    @Test func aStepGetsA3MiBArtifactInChunksAndASecondStepFindsItInTheCache() async throws {
        let coordinator = try FakeCoordinator()
        let handler = ArtifactRecordingHandler()
        let agent = startAgent(coordinator, handler: handler, id: "docs-fetch")
        defer { agent.cancel() }
        try await join(coordinator, "docs-fetch")
        let ref = Self.reference("cluster-state", Self.big)
        let first = StepKey(workflow: "k3s-dev-000101", step: "docs", attempt: 1)
        try coordinator.publishStep(first, to: "docs-fetch", artifacts: [ref])
        #expect(try await coordinator.expect(.ack)?.header.stepKey == first)
        #expect(try await serve(coordinator, Self.big) == 12, "3 MiB in chunks of 256 KiB")
        let result = try #require(try await coordinator.expect(.result))
        #expect(try result.decode(StepResult.self).outcome == .succeeded)
        #expect(handler.digests(first) == ["cluster-state": ref.digest], "the step saw the bytes of its digest")
        try coordinator.reply(
            Header(type: .confirm, workflow: first.workflow, step: first.step, attempt: first.attempt), Empty())

        // Another step naming the same digest runs from the cache: a fetch would go unanswered here (this
        // coordinator answers none now), so the step would never run.
        let second = StepKey(workflow: "k3s-dev-000101", step: "docs-again", attempt: 1)
        try coordinator.publishStep(second, to: "docs-fetch", artifacts: [ref])
        var secondResult: Envelope?
        while secondResult == nil, let envelope = try await coordinator.expect(.result) {
            // A resend of the first result may still come before the agent reads its confirmation.
            if envelope.header.stepKey == second { secondResult = envelope }
        }
        #expect(secondResult != nil, "the second step ran without fetching")
        #expect(handler.digests(second) == ["cluster-state": ref.digest])
    }

    @Test func aCorruptedChunkIsRefusedAndTheStepFailsWithoutRunning() async throws {
        let coordinator = try FakeCoordinator()
        let handler = ArtifactRecordingHandler()
        let agent = startAgent(coordinator, handler: handler, id: "docs-corrupt")
        defer { agent.cancel() }
        try await join(coordinator, "docs-corrupt")
        let data = Data((0..<(600 << 10)).map { UInt8(truncatingIfNeeded: $0 % 251) })
        let ref = Self.reference("cluster-state", data)
        let key = StepKey(workflow: "k3s-dev-000102", step: "docs", attempt: 1)
        try coordinator.publishStep(key, to: "docs-corrupt", artifacts: [ref])
        #expect(try await coordinator.expect(.ack)?.header.stepKey == key)
        // One flipped byte in the second chunk, in both copies the agent fetches.
        let flip: (Int, Data) -> Data = { offset, chunk in
            guard offset == WireFormat.fetchChunkBytes else { return chunk }
            var bad = chunk
            bad[bad.startIndex + 7] ^= 0xFF
            return bad
        }
        #expect(try await serve(coordinator, data, corrupt: flip) == 3)
        // A late answer of the first round, once the fetch has started over, is dropped, not taken for a bad copy.
        var restarted: (Envelope, FetchRequest)?
        while restarted == nil, let envelope = try await coordinator.expect(.fetch) {
            // Skips a resend of the first round that was on its way.
            let request = try envelope.decode(FetchRequest.self)
            if request.offset == 0 { restarted = (envelope, request) }
        }
        let (stale, restart) = try #require(restarted, "the fetch starts over")
        try coordinator.reply(
            Header(type: .fetchReply, re: stale.header.id),
            FetchReply(
                digest: restart.digest, offset: 2 * WireFormat.fetchChunkBytes, total: data.count,
                data: data.subdata(in: (2 * WireFormat.fetchChunkBytes)..<data.count)))
        try coordinator.reply(
            Header(type: .fetchReply, re: stale.header.id),
            FetchReply(
                digest: restart.digest, offset: 0, total: data.count,
                data: data.subdata(in: 0..<WireFormat.fetchChunkBytes)))
        #expect(
            try await serve(coordinator, data, from: WireFormat.fetchChunkBytes, corrupt: flip) == 2,
            "a bad copy is fetched again once")
        let envelope = try #require(try await coordinator.expect(.result))
        #expect(envelope.header.stepKey == key)
        let result = try envelope.decode(StepResult.self)
        #expect(result.outcome == .failed)
        #expect(result.error?.contains("do not match its digest") == true)
        #expect(handler.digests(key) == nil, "the step never ran with wrong bytes")
        let heartbeat = try #require(
            try await coordinator.expect(.heartbeat).flatMap { try $0.decode(Heartbeat.self) })
        #expect(heartbeat.rejected?[RejectReason.digestMismatch.rawValue] == 2)
    }

    @Test func anArtifactTheCoordinatorNoLongerHoldsFailsTheStep() async throws {
        let coordinator = try FakeCoordinator()
        let handler = ArtifactRecordingHandler()
        let agent = startAgent(coordinator, handler: handler, id: "docs-gone")
        defer { agent.cancel() }
        try await join(coordinator, "docs-gone")
        let ref = Self.reference("kubeconfig", Data("server: x\n".utf8), sensitive: true)
        let key = StepKey(workflow: "k3s-dev-000103", step: "docs", attempt: 1)
        try coordinator.publishStep(key, to: "docs-gone", artifacts: [ref])
        let fetch = try #require(try await coordinator.expect(.fetch))
        try coordinator.reply(
            Header(type: .error, re: fetch.header.id),
            ErrorReply(reason: RejectReason.unknownArtifact.rawValue, message: "no artifact with that digest"))
        let result = try #require(try await coordinator.expect(.result)).decode(StepResult.self)
        #expect(result.outcome == .failed)
        #expect(result.error?.contains("'kubeconfig' is not available") == true)
        #expect(handler.digests(key) == nil)
    }

    @Test func anUnansweredFetchIsSentAgainAsAfterACoordinatorRestart() async throws {
        let coordinator = try FakeCoordinator()
        let handler = ArtifactRecordingHandler()
        let agent = startAgent(coordinator, handler: handler, id: "docs-resend")
        defer { agent.cancel() }
        try await join(coordinator, "docs-resend")
        let data = Data("small state".utf8)
        let ref = Self.reference("cluster-state", data)
        let key = StepKey(workflow: "k3s-dev-000104", step: "docs", attempt: 1)
        try coordinator.publishStep(key, to: "docs-resend", artifacts: [ref])
        let lost = try #require(try await coordinator.expect(.fetch))
        // The first fetch goes unanswered (a coordinator gone mid-fetch); it comes again, with a new id.
        let again = try #require(try await coordinator.expect(.fetch))
        #expect(again.header.id != lost.header.id)
        #expect(try again.decode(FetchRequest.self) == FetchRequest(digest: ref.digest, offset: 0))
        try coordinator.reply(
            Header(type: .fetchReply, re: again.header.id),
            FetchReply(digest: ref.digest, offset: 0, total: data.count, data: data))
        let result = try #require(try await coordinator.expect(.result)).decode(StepResult.self)
        #expect(result.outcome == .succeeded)
        #expect(handler.digests(key) == ["cluster-state": ref.digest])
    }

    @Test func theCacheEvictsTheLeastRecentlyUsedWithinItsBounds() {
        var cache = ArtifactCache(maxBytes: 100, maxEntries: 3)
        let a = Data(repeating: 1, count: 40)
        let b = Data(repeating: 2, count: 40)
        let c = Data(repeating: 3, count: 10)
        cache.insert("a", a)
        cache.insert("b", b)
        #expect(cache.get("a") == a)  // a is now more recent than b
        cache.insert("c", Data(repeating: 9, count: 30))  // 110 bytes: b goes
        #expect(!cache.contains("b"))
        #expect(cache.contains("a") && cache.contains("c"))
        #expect(cache.bytes == 70)
        cache.insert("d", c)
        cache.insert("e", c)  // four entries: the oldest (a) goes
        #expect(cache.count == 3)
        #expect(!cache.contains("a"))
        #expect(cache.evictions == 2)
        cache.insert("huge", Data(count: 101))
        #expect(!cache.contains("huge"), "bytes over the whole bound are not kept")
        #expect(cache.count == 3)
    }
}
