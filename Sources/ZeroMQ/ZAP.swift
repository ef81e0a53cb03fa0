import CZeroMQ
import Dispatch
import Glibc
import ShoalCore

/// The CURVE public keys (Z85, 40 characters) allowed to connect. Thread
/// safe: a ZAP handler reads it on its own thread while the owner replaces
/// it (say, after the allow-list directory changed).
public final class CurveAllowList: @unchecked Sendable {  // `stored` is guarded by `lock`
    private let lock = Lock()
    private var stored: Set<String>

    /// - Parameter keys: Z85 public keys.
    public init(_ keys: some Sequence<String> = [String]()) {
        stored = Set(keys)
    }

    /// The keys allowed now.
    public var keys: Set<String> {
        lock.withLock { stored }
    }

    /// Whether a Z85 public key may connect.
    public func contains(_ key: String) -> Bool {
        lock.withLock { stored.contains(key) }
    }

    /// Replaces every key at once.
    /// - Returns: the keys that were added and those that were removed.
    @discardableResult
    public func replace(with keys: Set<String>) -> (added: Set<String>, removed: Set<String>) {
        lock.withLock {
            let added = keys.subtracting(stored)
            let removed = stored.subtracting(keys)
            stored = keys
            return (added, removed)
        }
    }

    /// Allows one more key.
    public func insert(_ key: String) {
        lock.withLock { _ = stored.insert(key) }
    }

    /// Stops allowing a key. Connections already established stay up: ZAP
    /// runs only during the handshake, so the owner must also cut them.
    public func remove(_ key: String) {
        lock.withLock { _ = stored.remove(key) }
    }
}

/// A ZAP request as libzmq sends it (RFC 27) during a handshake.
public struct ZAPRequest: Sendable, Equatable {
    /// The ZAP domain of the socket being connected to.
    public var domain: String
    /// The peer's IP address.
    public var address: String
    /// "NULL", "PLAIN" or "CURVE".
    public var mechanism: String
    /// The client's CURVE public key in Z85, for the CURVE mechanism.
    public var clientKey: String?
}

/// A handshake the ZAP handler refused, reported to its owner.
public struct ZAPRejection: Sendable, Equatable {
    /// Why a handshake was refused.
    public enum Reason: String, Sendable, CaseIterable {
        /// A CURVE client key that is not on the allow-list.
        case unknownKey = "unknown-key"
        /// A mechanism other than CURVE.
        case mechanism = "wrong-mechanism"
        /// A ZAP domain this handler does not serve.
        case domain = "wrong-domain"
        /// A request that does not follow RFC 27.
        case malformed = "malformed-request"
    }

    public var reason: Reason
    /// What libzmq asked, as far as it could be read.
    public var request: ZAPRequest
}

/// A ZAP handler: the REP socket libzmq asks, on `inproc://zeromq.zap.01`
/// of one context, whether a peer may complete its handshake. It accepts
/// CURVE clients whose public key is on an allow-list for its ZAP domain and
/// answers 400 to everything else. An accepted client's Z85 public key is
/// returned as the ZAP user id, so every message from it carries that key in
/// its "User-Id" property (`ReceivedMessage.userID`).
///
/// Start it before any CURVE server socket of the context binds: without a
/// handler, libzmq 4.3's CURVE server accepts every client key (with
/// `zapEnforceDomain` set, it refuses every client instead).
/// One handler per context; it runs on its own thread until `stop()`.
public final class ZAPHandler: Sendable {
    /// The endpoint libzmq sends ZAP requests to.
    public static let endpoint = "inproc://zeromq.zap.01"

    /// The ZAP domain served; requests for another domain are refused.
    public let domain: String
    /// The keys accepted; replace them at any time.
    public let allowList: CurveAllowList
    private let signal = ReactorLoop.StopSignal()
    private let finished = DispatchSemaphore(value: 0)

    /// Binds the ZAP endpoint and starts answering on a new thread.
    /// - Parameters:
    ///   - context: the context whose CURVE servers this handler guards.
    ///   - domain: the ZAP domain (`Socket.makeCurveServer(secretKey:zapDomain:)`).
    ///   - allowList: the CURVE public keys accepted.
    ///   - onRejection: called on the handler's thread for every refused
    ///     handshake; keep it short (count, log).
    /// - Throws: `ZMQError` when the endpoint cannot be bound (EADDRINUSE:
    ///   the context already has a ZAP handler).
    public init(
        context: Context, domain: String, allowList: CurveAllowList,
        onRejection: @escaping @Sendable (ZAPRejection) -> Void = { _ in }
    ) throws(ZMQError) {
        self.domain = domain
        self.allowList = allowList
        let started = DispatchSemaphore(value: 0)
        let startError = Locked<ZMQError?>(nil)
        let signal = signal
        let finished = finished
        let running = Threads.start(name: "shoal-zap") {
            defer { finished.signal() }
            let socket: Socket
            do throws(ZMQError) {
                socket = try Socket(context: context, type: .rep)
                try socket.bind(ZAPHandler.endpoint)
            } catch {
                startError.value = error
                started.signal()
                return
            }
            started.signal()
            ZAPHandler.serve(socket, domain: domain, allowList: allowList, stop: signal, onRejection: onRejection)
            socket.close()
        }
        guard running == 0 else { throw ZMQError(code: running, operation: "pthread_create") }
        started.wait()
        if let error = startError.value {
            finished.wait()
            signal.set()  // nothing left to stop
            throw error
        }
    }

    deinit { stop() }

    /// Stops answering and waits for the handler's thread to end. Handshakes
    /// that start afterwards fail (with `zapEnforceDomain`). Idempotent.
    public func stop() {
        guard !signal.isStopped else { return }
        signal.set()
        finished.wait()
        // Let a later stop() (deinit) return at once too.
        finished.signal()
    }

    private static func serve(
        _ socket: Socket, domain: String, allowList: CurveAllowList, stop: ReactorLoop.StopSignal,
        onRejection: @Sendable (ZAPRejection) -> Void
    ) {
        var poller = Poller()
        let socketIndex = poller.add(socket)
        let stopIndex = poller.add(fileDescriptor: stop.wakeup.fileDescriptor)
        while !stop.isStopped {
            guard let ready = try? poller.poll(timeoutMilliseconds: -1) else { return }
            if ready[stopIndex] { stop.wakeup.drain() }
            guard ready[socketIndex] else { continue }
            while let frames = try? socket.receive(wait: false) {
                let reply = answer(frames, domain: domain, allowList: allowList, onRejection: onRejection)
                // A REP socket must answer before it can receive again.
                guard (try? socket.send(reply)) != nil else { return }
            }
        }
    }

    /// The reply to one request: version, request id, status code, status
    /// text, user id, metadata.
    static func answer(
        _ frames: [[UInt8]], domain: String, allowList: CurveAllowList, onRejection: (ZAPRejection) -> Void
    ) -> [[UInt8]] {
        func text(_ index: Int) -> String {
            index < frames.count ? String(decoding: frames[index], as: UTF8.self) : ""
        }
        let requestID = frames.count > 1 ? frames[1] : []
        var request = ZAPRequest(domain: text(2), address: text(3), mechanism: text(5), clientKey: nil)
        if request.mechanism == "CURVE", frames.count >= 7, frames[6].count == 32 {
            request.clientKey = z85Encode(frames[6])
        }
        func refuse(_ reason: ZAPRejection.Reason, _ status: String) -> [[UInt8]] {
            onRejection(ZAPRejection(reason: reason, request: request))
            return [Array("1.0".utf8), requestID, Array("400".utf8), Array(status.utf8), [], []]
        }
        guard frames.count >= 6, text(0) == "1.0" else { return refuse(.malformed, "malformed ZAP request") }
        guard request.domain == domain else { return refuse(.domain, "unknown domain") }
        guard request.mechanism == "CURVE" else { return refuse(.mechanism, "CURVE required") }
        guard let key = request.clientKey else { return refuse(.malformed, "no CURVE key") }
        guard allowList.contains(key) else { return refuse(.unknownKey, "key not allowed") }
        return [Array("1.0".utf8), requestID, Array("200".utf8), Array("OK".utf8), Array(key.utf8), []]
    }
}

/// Z85 text of a 32-byte binary key.
func z85Encode(_ bytes: [UInt8]) -> String? {
    guard bytes.count % 4 == 0 else { return nil }
    var buffer = [CChar](repeating: 0, count: bytes.count * 5 / 4 + 1)
    let encoded = bytes.withUnsafeBufferPointer { zmq_z85_encode(&buffer, $0.baseAddress, $0.count) }
    guard encoded != nil else { return nil }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
