import CZeroMQ

/// A libzmq context. Contexts are thread safe, so one is shared by every
/// socket of a process; each socket keeps its context alive, so the context
/// is terminated only after the last socket has been closed.
public final class Context: @unchecked Sendable {  // libzmq contexts are thread safe by contract
    let handle: UnsafeMutableRawPointer

    /// Creates a context.
    /// - Parameters:
    ///   - ioThreads: libzmq I/O threads (1 is plenty below a gigabit).
    ///   - maxSockets: sockets the context may open (libzmq's default is 1023).
    public init(ioThreads: Int32 = 1, maxSockets: Int32? = nil) {
        guard let handle = zmq_ctx_new() else {
            preconditionFailure("zmq_ctx_new failed: out of memory or file descriptors")
        }
        zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads)
        if let maxSockets { zmq_ctx_set(handle, ZMQ_MAX_SOCKETS, maxSockets) }
        self.handle = handle
    }

    deinit {
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    /// The version of the libzmq library loaded at run time.
    public static var libraryVersion: (major: Int32, minor: Int32, patch: Int32) {
        var major: Int32 = 0
        var minor: Int32 = 0
        var patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (major, minor, patch)
    }

    /// Whether libzmq was built with a capability such as "curve".
    public static func has(_ capability: String) -> Bool {
        zmq_has(capability) != 0
    }
}
