import Foundation
import Testing

@testable import ZeroMQ

/// Rejections reported by a ZAP handler, read from the test's thread.
final class RejectionRecorder: @unchecked Sendable {  // `seen` is guarded by `lock`
    private let lock = NSLock()
    private var seen: [ZAPRejection] = []

    func record(_ rejection: ZAPRejection) { lock.withLock { seen.append(rejection) } }
    var all: [ZAPRejection] { lock.withLock { seen } }

    /// Waits until a rejection matching `predicate` was reported, or the deadline.
    func wait(timeout: Duration = .seconds(5), for predicate: (ZAPRejection) -> Bool) -> ZAPRejection? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let found = all.first(where: predicate) { return found }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return nil
    }
}

/// A ROUTER server and its endpoint, CURVE or not.
private struct Server {
    let router: Socket
    let endpoint: String

    init(context: Context, curve secretKey: String?, enforceDomain: Bool = true) throws {
        router = try Socket(context: context, type: .router)
        if let secretKey {
            if enforceDomain {
                try router.makeCurveServer(secretKey: secretKey, zapDomain: "test")
            } else {
                // libzmq's defaults: a CURVE server and nothing else.
                try router.set(.curveServer, 1)
                try router.set(.curveSecretKey, secretKey)
            }
        }
        try router.bind("tcp://127.0.0.1:*")
        endpoint = try router.lastEndpoint
    }

    /// The next message within `timeout`, or nil.
    func receive(timeout: Duration) throws -> ReceivedMessage? {
        var poller = Poller()
        poller.add(router)
        guard try poller.poll(timeoutMilliseconds: Int(timeout.milliseconds))[0] else { return nil }
        return try router.receiveMessage(wait: false)
    }
}

extension Duration {
    fileprivate var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// A DEALER that sends one message, as a CURVE client or over plain TCP.
private func client(_ context: Context, to endpoint: String, keys: CurveClientKeys?) throws -> Socket {
    let dealer = try Socket(context: context, type: .dealer)
    if let keys { try dealer.makeCurveClient(keys) }
    try dealer.connect(endpoint)
    try dealer.send(Array("hello".utf8))
    return dealer
}

/// Runs blocking socket code on a thread of its own: waiting on sockets must
/// not hold a thread of the (small) cooperative pool that other tests need.
/// It stays in the test's task, so expectations are attributed to the test.
func onOwnThread<T: Sendable>(_ body: @Sendable () throws -> T) async throws -> T {
    try await withTaskExecutorPreference(DedicatedThreadExecutor()) { try body() }
}

/// A task executor with a serial dispatch queue, whose thread is not one of
/// the cooperative pool's.
final class DedicatedThreadExecutor: TaskExecutor {
    private let queue = DispatchQueue(label: "shoal-test-blocking")

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}

@Suite struct ZAPTests {
    let server: CurveKeyPair
    let allowed: CurveKeyPair
    let stranger: CurveKeyPair

    init() throws {
        server = try CurveKeyPair.generate()
        allowed = try CurveKeyPair.generate()
        stranger = try CurveKeyPair.generate()
    }

    private func keys(_ pair: CurveKeyPair) -> CurveClientKeys {
        CurveClientKeys(serverPublicKey: server.publicKey, keyPair: pair)
    }

    @Test func withoutAZAPHandlerLibzmqCurveServerAcceptsAnyClientKey() async throws {
        try await onOwnThread {
            // The behaviour shoal guards against: libzmq alone checks only that
            // the client knows the server's public key, not who the client is.
            let context = Context()
            let server = try Server(context: context, curve: self.server.secretKey, enforceDomain: false)
            let dealer = try client(context, to: server.endpoint, keys: keys(stranger))
            let message = try #require(try server.receive(timeout: .seconds(5)), "libzmq let an unknown key in")
            #expect(message.frames.last == Array("hello".utf8))
            _ = dealer
        }
    }

    @Test func withOurZAPHandlerAnUnlistedKeyGetsNothingAndTheHandlerSawIt() async throws {
        try await onOwnThread {
            let context = Context()
            let recorder = RejectionRecorder()
            let handler = try ZAPHandler(
                context: context, domain: "test", allowList: CurveAllowList([allowed.publicKey]),
                onRejection: recorder.record)
            defer { handler.stop() }
            let server = try Server(context: context, curve: self.server.secretKey)
            let dealer = try client(context, to: server.endpoint, keys: keys(stranger))
            let rejection = try #require(recorder.wait { $0.reason == .unknownKey })
            #expect(rejection.request.clientKey == stranger.publicKey)
            #expect(rejection.request.mechanism == "CURVE")
            #expect(rejection.request.domain == "test")
            #expect(rejection.request.address == "127.0.0.1")
            #expect(try server.receive(timeout: .milliseconds(300)) == nil)
            _ = dealer
        }
    }

    @Test func anAllowedClientTalksAndItsKeyIsTheUserID() async throws {
        try await onOwnThread {
            let context = Context()
            let recorder = RejectionRecorder()
            let handler = try ZAPHandler(
                context: context, domain: "test", allowList: CurveAllowList([allowed.publicKey]),
                onRejection: recorder.record)
            defer { handler.stop() }
            let server = try Server(context: context, curve: self.server.secretKey)
            let dealer = try client(context, to: server.endpoint, keys: keys(allowed))
            let message = try #require(try server.receive(timeout: .seconds(5)))
            #expect(message.frames.count == 2)
            #expect(message.frames[1] == Array("hello".utf8))
            #expect(message.userID == allowed.publicKey)
            // And the answer gets back.
            try server.router.send([message.frames[0], Array("welcome".utf8)])
            try dealer.set(.receiveTimeout, 5000)
            #expect(try dealer.receive() == [Array("welcome".utf8)])
            #expect(recorder.all.isEmpty)
        }
    }

    @Test func aPlainTCPClientGetsNothingFromACurveServer() async throws {
        try await onOwnThread {
            let context = Context()
            let handler = try ZAPHandler(
                context: context, domain: "test", allowList: CurveAllowList([allowed.publicKey]))
            defer { handler.stop() }
            let server = try Server(context: context, curve: self.server.secretKey)
            let dealer = try client(context, to: server.endpoint, keys: nil)
            #expect(try server.receive(timeout: .milliseconds(500)) == nil)
            try dealer.set(.receiveTimeout, 100)
            #expect(try dealer.receive() == nil)
        }
    }

    @Test func aClientWithTheWrongServerKeyGetsNothing() async throws {
        try await onOwnThread {
            let context = Context()
            let handler = try ZAPHandler(
                context: context, domain: "test", allowList: CurveAllowList([allowed.publicKey]))
            defer { handler.stop() }
            let server = try Server(context: context, curve: self.server.secretKey)
            let impostor = try CurveKeyPair.generate()
            let dealer = try client(
                context, to: server.endpoint,
                keys: CurveClientKeys(serverPublicKey: impostor.publicKey, keyPair: allowed))
            #expect(try server.receive(timeout: .milliseconds(500)) == nil)
            _ = dealer
        }
    }

    @Test func enforcedDomainWithoutAHandlerRefusesEveryone() async throws {
        try await onOwnThread {
            let context = Context()
            let server = try Server(context: context, curve: self.server.secretKey)
            let dealer = try client(context, to: server.endpoint, keys: keys(allowed))
            #expect(try server.receive(timeout: .milliseconds(500)) == nil)
            _ = dealer
        }
    }

    @Test func aZAPRequestForAnotherDomainIsRefused() async throws {
        try await onOwnThread {
            let context = Context()
            let recorder = RejectionRecorder()
            let handler = try ZAPHandler(
                context: context, domain: "other", allowList: CurveAllowList([allowed.publicKey]),
                onRejection: recorder.record)
            defer { handler.stop() }
            let server = try Server(context: context, curve: self.server.secretKey)
            let dealer = try client(context, to: server.endpoint, keys: keys(allowed))
            #expect(recorder.wait { $0.reason == .domain } != nil)
            #expect(try server.receive(timeout: .milliseconds(300)) == nil)
            _ = dealer
        }
    }

    @Test func removingAKeyCutsOffNewConnectionsAndUnbindCutsTheEstablishedOne() async throws {
        try await onOwnThread {
            let context = Context()
            let allowList = CurveAllowList([allowed.publicKey])
            let recorder = RejectionRecorder()
            let handler = try ZAPHandler(
                context: context, domain: "test", allowList: allowList, onRejection: recorder.record)
            defer { handler.stop() }
            let server = try Server(context: context, curve: self.server.secretKey)
            let established = try client(context, to: server.endpoint, keys: keys(allowed))
            #expect(try server.receive(timeout: .seconds(5))?.userID == allowed.publicKey)

            allowList.remove(allowed.publicKey)
            // A new connection with the revoked key is refused...
            let late = try client(context, to: server.endpoint, keys: keys(allowed))
            #expect(recorder.wait { $0.reason == .unknownKey && $0.request.clientKey == allowed.publicKey } != nil)
            // ...but ZAP ran only at the handshake: the established one still talks.
            try established.send(Array("still here".utf8))
            let still = try #require(try server.receive(timeout: .seconds(5)))
            #expect(still.frames.last == Array("still here".utf8))
            #expect(still.userID == allowed.publicKey, "the owner can still tell whose message it is")

            // Unbinding closes the accepted connections; the client reconnects
            // and its new handshake is refused.
            let before = recorder.all.count
            try server.router.unbind(server.endpoint)
            var rebound = false
            let deadline = ContinuousClock.now + .seconds(5)
            while !rebound && ContinuousClock.now < deadline {
                do {
                    try server.router.bind(server.endpoint)
                    rebound = true
                } catch {
                    Thread.sleep(forTimeInterval: 0.02)  // the unbind completes on libzmq's I/O thread
                }
            }
            #expect(rebound)
            // The router must keep being served (polled) for libzmq to finish
            // closing the old connections, as the coordinator's loop does.
            var received: [ReceivedMessage] = []
            let reconnectDeadline = ContinuousClock.now + .seconds(5)
            while recorder.all.count == before && ContinuousClock.now < reconnectDeadline {
                if let message = try server.receive(timeout: .milliseconds(20)) { received.append(message) }
            }
            #expect(recorder.all.count > before, "the established client handshook again, and was refused")
            #expect(received.isEmpty)
            // Non-blocking: a DEALER whose every connection was refused has
            // nowhere to queue, and a blocking send would wait forever.
            _ = try established.send(Array("after revocation".utf8), wait: false)
            #expect(try server.receive(timeout: .milliseconds(500)) == nil)
            _ = late
        }
    }

    @Test func aSecondHandlerOnTheSameContextIsATypedError() async throws {
        try await onOwnThread {
            let context = Context()
            let first = try ZAPHandler(context: context, domain: "test", allowList: CurveAllowList())
            defer { first.stop() }
            #expect(throws: ZMQError.self) {
                try ZAPHandler(context: context, domain: "test", allowList: CurveAllowList())
            }
        }
    }

    @Test func malformedRequestsAreRefusedWithStatus400() {
        let recorder = RejectionRecorder()
        let list = CurveAllowList([allowed.publicKey])
        let short = ZAPHandler.answer(
            [Array("1.0".utf8), Array("7".utf8)], domain: "test", allowList: list, onRejection: recorder.record)
        #expect(short[2] == Array("400".utf8))
        #expect(short[1] == Array("7".utf8), "the request id is echoed")
        let plain = ZAPHandler.answer(
            ["1.0", "8", "test", "127.0.0.1", "", "PLAIN", "user", "pass"].map { Array($0.utf8) }, domain: "test",
            allowList: list, onRejection: recorder.record)
        #expect(plain[2] == Array("400".utf8))
        #expect(recorder.all.map(\.reason) == [.malformed, .mechanism])
    }

    @Test func theAllowListReportsWhatAReplacementAddedAndRemoved() {
        let list = CurveAllowList(["a", "b"])
        let change = list.replace(with: ["b", "c"])
        #expect(change.added == ["c"])
        #expect(change.removed == ["a"])
        #expect(list.keys == ["b", "c"])
        #expect(!list.contains("a"))
    }
}
