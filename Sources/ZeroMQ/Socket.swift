import CZeroMQ

/// A libzmq socket. Sockets are not thread safe: a `Socket` is owned by one
/// thread, which creates, uses and closes it. It keeps its `Context` alive,
/// so the context terminates after its last socket.
public final class Socket {
    /// The context this socket belongs to.
    public let context: Context
    /// The kind of socket.
    public let type: SocketType
    private var handle: UnsafeMutableRawPointer?

    /// Creates a socket with LINGER 0, so that closing it never blocks on
    /// messages a vanished peer will never take.
    /// - Throws: `ZMQError` when libzmq cannot create the socket (too many
    ///   sockets, or a terminated context).
    public init(context: Context, type: SocketType) throws(ZMQError) {
        self.context = context
        self.type = type
        guard let handle = zmq_socket(context.handle, type.rawValue) else {
            throw ZMQError(code: zmq_errno(), operation: "zmq_socket")
        }
        self.handle = handle
        try set(.linger, 0)
    }

    deinit { close() }

    /// Closes the socket; pending outbound messages are dropped (LINGER 0
    /// unless changed). Calling it twice is harmless.
    public func close() {
        guard let handle else { return }
        zmq_close(handle)
        self.handle = nil
    }

    var rawHandle: UnsafeMutableRawPointer {
        guard let handle else { preconditionFailure("socket used after close") }
        return handle
    }

    // MARK: Options

    public func set(_ option: SocketOption<Int32>, _ value: Int32) throws(ZMQError) {
        var value = value
        try zmqCheck("zmq_setsockopt") {
            zmq_setsockopt(rawHandle, option.name, &value, MemoryLayout<Int32>.size)
        }
    }

    public func set(_ option: SocketOption<Int64>, _ value: Int64) throws(ZMQError) {
        var value = value
        try zmqCheck("zmq_setsockopt") {
            zmq_setsockopt(rawHandle, option.name, &value, MemoryLayout<Int64>.size)
        }
    }

    public func set(_ option: SocketOption<String>, _ value: String) throws(ZMQError) {
        let bytes = Array(value.utf8)
        try zmqCheck("zmq_setsockopt") {
            bytes.withUnsafeBytes { zmq_setsockopt(rawHandle, option.name, $0.baseAddress, $0.count) }
        }
    }

    public func get(_ option: SocketOption<Int32>) throws(ZMQError) -> Int32 {
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        try zmqCheck("zmq_getsockopt") { zmq_getsockopt(rawHandle, option.name, &value, &size) }
        return value
    }

    public func get(_ option: SocketOption<String>) throws(ZMQError) -> String {
        var buffer = [UInt8](repeating: 0, count: 1024)
        var size = buffer.count
        try zmqCheck("zmq_getsockopt") { zmq_getsockopt(rawHandle, option.name, &buffer, &size) }
        let end = buffer[..<size].firstIndex(of: 0) ?? size
        return String(decoding: buffer[..<end], as: UTF8.self)
    }

    /// The endpoint of the last bind, with the port libzmq chose for `*`.
    public var lastEndpoint: String {
        get throws(ZMQError) { try get(.lastEndpoint) }
    }

    // MARK: Connections

    public func bind(_ endpoint: String) throws(ZMQError) {
        try zmqCheck("zmq_bind") { zmq_bind(rawHandle, endpoint) }
    }

    public func connect(_ endpoint: String) throws(ZMQError) {
        try zmqCheck("zmq_connect") { zmq_connect(rawHandle, endpoint) }
    }

    public func disconnect(_ endpoint: String) throws(ZMQError) {
        try zmqCheck("zmq_disconnect") { zmq_disconnect(rawHandle, endpoint) }
    }

    public func subscribe(_ prefix: String) throws(ZMQError) { try set(.subscribe, prefix) }
    public func unsubscribe(_ prefix: String) throws(ZMQError) { try set(.unsubscribe, prefix) }

    // MARK: Messages

    /// Sends a multipart message, all frames or none.
    /// - Parameters:
    ///   - frames: the frames, at least one.
    ///   - wait: block until the message is queued; when false, a full queue
    ///     returns `false` instead.
    /// - Returns: whether the message was queued.
    /// - Throws: `ZMQError`, e.g. EHOSTUNREACH from a ROUTER_MANDATORY router.
    @discardableResult
    public func send(_ frames: [[UInt8]], wait: Bool = true) throws(ZMQError) -> Bool {
        precondition(!frames.isEmpty, "a message has at least one frame")
        let baseFlags: Int32 = wait ? 0 : ZMQ_DONTWAIT
        for (index, frame) in frames.enumerated() {
            let flags = baseFlags | (index < frames.count - 1 ? ZMQ_SNDMORE : 0)
            let outcome = try zmqCall("zmq_send") {
                frame.withUnsafeBytes { zmq_send(rawHandle, $0.baseAddress, $0.count, flags) }
            }
            // libzmq queues a multipart message atomically: only the first
            // frame can meet a full queue, so EAGAIN later cannot split it.
            if case .wouldBlock = outcome { return false }
        }
        return true
    }

    /// Sends a single-frame message.
    @discardableResult
    public func send(_ frame: [UInt8], wait: Bool = true) throws(ZMQError) -> Bool {
        try send([frame], wait: wait)
    }

    /// Receives a whole multipart message through `zmq_msg_t`, so frames of
    /// any size arrive intact.
    /// - Parameter wait: block until a message arrives (or the receive
    ///   timeout passes); when false, return `nil` at once if none is queued.
    /// - Returns: the frames, or `nil` when nothing arrived.
    public func receive(wait: Bool = true) throws(ZMQError) -> [[UInt8]]? {
        try receiveMessage(wait: wait)?.frames
    }
}
