import Foundation
import Testing

@testable import ZeroMQ

@Suite struct SocketTests {
    let context = Context()

    @Test func pairCarriesAMegabyteOverInprocIntact() throws {
        let server = try Socket(context: context, type: .pair)
        try server.bind("inproc://big")
        let client = try Socket(context: context, type: .pair)
        try client.connect("inproc://big")
        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try client.send(payload)
        let received = try #require(try server.receive())
        #expect(received.count == 1)
        #expect(received[0] == payload)
    }

    @Test func routerSeesMultipartFramesAndIdentityOverTCP() throws {
        let router = try Socket(context: context, type: .router)
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        #expect((Int(endpoint.split(separator: ":").last ?? "") ?? 0) > 0)
        let dealer = try Socket(context: context, type: .dealer)
        try dealer.connect(endpoint)
        let frames: [[UInt8]] = [Array("header".utf8), [], Array(repeating: 7, count: 300), Array(repeating: 9, count: 70_000)]
        try dealer.send(frames)
        try router.set(.receiveTimeout, 5000)
        let received = try #require(try router.receive())
        #expect(received.count == 5)
        #expect(!received[0].isEmpty)  // the routing identity the ROUTER adds
        #expect(Array(received.dropFirst()) == frames)

        // The reply reaches the dealer through the identity.
        try router.send([received[0], Array("reply".utf8)])
        try dealer.set(.receiveTimeout, 5000)
        #expect(try dealer.receive() == [Array("reply".utf8)])
    }

    @Test func nonBlockingReceiveOnAnEmptySocketReturnsNil() throws {
        let pull = try Socket(context: context, type: .pull)
        try pull.bind("inproc://empty")
        #expect(try pull.receive(wait: false) == nil)
    }

    @Test func closingWithPendingMessagesDoesNotHang() async throws {
        let finished = LockedFlag()
        let thread = Thread {
            do {
                let context = Context()
                let push = try Socket(context: context, type: .push)
                // Nobody listens here: messages queue up and can never leave.
                try push.connect("tcp://127.0.0.1:9")
                for _ in 0..<100 { _ = try push.send(Array(repeating: 1, count: 4096), wait: false) }
                push.close()
            } catch {}
            finished.set()  // after the context's deinit has terminated it
        }
        thread.start()
        let deadline = ContinuousClock.now + .seconds(5)
        while !finished.value && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(finished.value, "closing a socket with queued messages must not block")
    }

    @Test func subscriptionTopicsEndingInSlashAreNotPrefixesOfEachOther() throws {
        let publisher = try Socket(context: context, type: .xpub)
        try publisher.bind("inproc://topics")
        let subscriber = try Socket(context: context, type: .sub)
        try subscriber.connect("inproc://topics")
        try subscriber.subscribe("agent/v-1/")
        try publisher.set(.receiveTimeout, 5000)
        // The XPUB sees the subscription arrive: no sleep needed before publishing.
        let subscription = try #require(try publisher.receive())
        #expect(subscription == [[1] + Array("agent/v-1/".utf8)])
        try publisher.send([Array("agent/v-10/".utf8), Array("not for v-1".utf8)])
        try publisher.send([Array("agent/v-1/".utf8), Array("for v-1".utf8)])
        try subscriber.set(.receiveTimeout, 5000)
        let received = try #require(try subscriber.receive())
        #expect(received[1] == Array("for v-1".utf8))
        #expect(try subscriber.receive(wait: false) == nil)
    }

    @Test func oversizedMessageIsDroppedByMaxMessageSize() throws {
        let pull = try Socket(context: context, type: .pull)
        try pull.set(.maxMessageSize, 1024)
        try pull.bind("tcp://127.0.0.1:*")
        let push = try Socket(context: context, type: .push)
        try push.connect(try pull.lastEndpoint)
        try push.send(Array(repeating: 0, count: 4096))
        try pull.set(.receiveTimeout, 300)
        #expect(try pull.receive() == nil)
    }

    @Test func invalidEndpointIsATypedError() throws {
        let socket = try Socket(context: context, type: .dealer)
        #expect(throws: ZMQError.self) { try socket.connect("nonsense://x") }
        #expect(throws: ZMQError.self) { try socket.bind("tcp://not-an-address:-1") }
    }

    @Test func pollerWakesUpOnWakeupSignalFromAnotherThread() throws {
        let wakeup = Wakeup()
        let socket = try Socket(context: context, type: .pull)
        try socket.bind("inproc://poll")
        var poller = Poller()
        poller.add(socket)
        let wakeIndex = poller.add(fileDescriptor: wakeup.fileDescriptor)
        Thread.detachNewThread { wakeup.signal() }
        let start = ContinuousClock.now
        let ready = try poller.poll(timeoutMilliseconds: 5000)
        #expect(ready[wakeIndex])
        #expect(!ready[0])
        #expect(ContinuousClock.now - start < .seconds(4))
        wakeup.drain()
        #expect(try poller.poll(timeoutMilliseconds: 0) == [false, false])
    }

    @Test func curveKeyPairsAreZ85AndDeriveTheirPublicKey() throws {
        let pair = try CurveKeyPair.generate()
        #expect(pair.publicKey.utf8.count == 40)
        #expect(pair.secretKey.utf8.count == 40)
        #expect(try CurveKeyPair.publicKey(forSecret: pair.secretKey) == pair.publicKey)
        #expect(try CurveKeyPair.generate() != pair)
        #expect(throws: ZMQError.self) { try CurveKeyPair.publicKey(forSecret: "too short") }
    }

    @Test func reactorLoopRunsOnItsOwnThreadAndStops() async throws {
        let loop = ReactorLoop()
        let started = LockedFlag()
        async let finished: Void = loop.run { stop in
            started.set()
            var poller = Poller()
            poller.add(fileDescriptor: stop.wakeup.fileDescriptor)
            while !stop.isStopped { _ = try poller.poll(timeoutMilliseconds: 10_000) }
        }
        while !started.value { try await Task.sleep(for: .milliseconds(5)) }
        let stopAt = ContinuousClock.now
        loop.stop()
        try await finished
        #expect(ContinuousClock.now - stopAt < .seconds(5))
    }
}
