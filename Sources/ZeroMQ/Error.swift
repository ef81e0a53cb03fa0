import CZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// An error reported by libzmq, carrying `zmq_errno()` and its message.
public struct ZMQError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The errno value libzmq reported.
    public let code: Int32
    /// The libzmq call that failed.
    public let operation: String

    public var description: String {
        let message = String(cString: zmq_strerror(code))
        return "\(operation): \(message) (errno \(code))"
    }

    /// The context was terminated while the call was in progress.
    public var isContextTerminated: Bool { code == ETERM }
    /// A ROUTER with ROUTER_MANDATORY could not route to the given peer.
    public var isHostUnreachable: Bool { code == EHOSTUNREACH }
}

/// The outcome of a call that may legitimately not complete right now.
enum CallOutcome {
    case done(Int32)
    case wouldBlock
}

/// Every libzmq call goes through here: EINTR is retried, EAGAIN is a value,
/// any other failure becomes a `ZMQError`. EFAULT and ENOTSOCK mean the
/// wrapper itself misused the API, which is a programmer bug.
@inline(__always)
func zmqCall(_ operation: StaticString, _ body: () -> Int32) throws(ZMQError) -> CallOutcome {
    while true {
        let rc = body()
        if rc >= 0 { return .done(rc) }
        let code = zmq_errno()
        switch code {
        case EINTR:
            continue
        case EAGAIN:
            return .wouldBlock
        case EFAULT, ENOTSOCK:
            preconditionFailure("libzmq misuse in \(operation): \(String(cString: zmq_strerror(code)))")
        default:
            throw ZMQError(code: code, operation: "\(operation)")
        }
    }
}

/// Like `zmqCall`, for calls where EAGAIN cannot happen or is itself an error.
@inline(__always)
@discardableResult
func zmqCheck(_ operation: StaticString, _ body: () -> Int32) throws(ZMQError) -> Int32 {
    switch try zmqCall(operation, body) {
    case .done(let rc): return rc
    case .wouldBlock: throw ZMQError(code: EAGAIN, operation: "\(operation)")
    }
}
