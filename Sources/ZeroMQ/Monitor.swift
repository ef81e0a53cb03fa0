import CZeroMQ
import Glibc
import ShoalCore

/// What a socket monitor reports about handshakes, the events shoal uses to
/// tell a refused key from a coordinator that is simply not there.
public enum HandshakeEvent: Sendable, Equatable {
    /// The handshake (CURVE included) completed.
    case succeeded
    /// The server's ZAP handler refused us; carries the ZAP status code (400).
    case refused(status: Int)
    /// The peers disagree on the protocol: one uses CURVE and the other not,
    /// or a CURVE message could not be decrypted (a wrong server key). Carries
    /// libzmq's `ZMQ_PROTOCOL_ERROR_*` code.
    case protocolError(code: Int)
    /// The connection dropped during the handshake without a reason.
    case failed
}

/// Watches one socket's handshakes through `zmq_socket_monitor`. Owned by
/// the thread that owns the socket, like the socket itself.
public final class SocketMonitor {
    private let pair: Socket
    private static let counter = Locked(0)

    /// Starts monitoring `socket`'s handshake events.
    /// - Throws: `ZMQError`.
    public init(_ socket: Socket) throws(ZMQError) {
        let number = SocketMonitor.nextNumber()
        let endpoint = "inproc://shoal-monitor-\(getpid())-\(number)"
        let events =
            ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
            | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
        try zmqCheck("zmq_socket_monitor") { zmq_socket_monitor(socket.rawHandle, endpoint, events) }
        pair = try Socket(context: socket.context, type: .pair)
        try pair.connect(endpoint)
    }

    private static func nextNumber() -> Int {
        counter.update { value in
            value += 1
            return value
        }
    }

    /// The monitor's socket, to add to a `Poller`.
    public var socket: Socket { pair }

    /// The handshake events that arrived since the last call, oldest first.
    public func drain() -> [HandshakeEvent] {
        var events: [HandshakeEvent] = []
        while let frames = try? pair.receive(wait: false) {
            guard let first = frames.first, first.count >= 6 else { continue }
            let event = Int32(UInt16(first[0]) | UInt16(first[1]) << 8)
            let value = Int(UInt32(first[2]) | UInt32(first[3]) << 8 | UInt32(first[4]) << 16 | UInt32(first[5]) << 24)
            switch event {
            case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: events.append(.succeeded)
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: events.append(.refused(status: value))
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: events.append(.protocolError(code: value))
            case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: events.append(.failed)
            default: break
            }
        }
        return events
    }
}
