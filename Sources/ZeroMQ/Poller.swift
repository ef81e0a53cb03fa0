import CZeroMQ

/// Waits on several sockets and plain file descriptors at once (`zmq_poll`).
public struct Poller {
    private var items: [zmq_pollitem_t] = []

    public init() {}

    /// Adds a socket to wait on for input; returns its index in `poll`'s answer.
    @discardableResult
    public mutating func add(_ socket: Socket) -> Int {
        items.append(zmq_pollitem_t(socket: socket.rawHandle, fd: -1, events: Int16(ZMQ_POLLIN), revents: 0))
        return items.count - 1
    }

    /// Adds a file descriptor (such as a `Wakeup`'s) to wait on for input.
    @discardableResult
    public mutating func add(fileDescriptor: Int32) -> Int {
        items.append(zmq_pollitem_t(socket: nil, fd: fileDescriptor, events: Int16(ZMQ_POLLIN), revents: 0))
        return items.count - 1
    }

    /// Waits until an item is readable or the timeout passes.
    /// - Parameter timeoutMilliseconds: -1 waits forever, 0 returns at once.
    /// - Returns: readability per item, in the order they were added.
    /// - Throws: `ZMQError` (ETERM once the context is shut down).
    public mutating func poll(timeoutMilliseconds: Int) throws(ZMQError) -> [Bool] {
        for index in items.indices { items[index].revents = 0 }
        let count = Int32(items.count)
        let outcome = try items.withUnsafeMutableBufferPointer { buffer throws(ZMQError) in
            try zmqCall("zmq_poll") { zmq_poll(buffer.baseAddress, count, timeoutMilliseconds) }
        }
        if case .wouldBlock = outcome { return Array(repeating: false, count: items.count) }
        return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
    }
}
