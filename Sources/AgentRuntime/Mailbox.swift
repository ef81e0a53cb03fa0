import ShoalCore
import ZeroMQ

/// Hands values from any task to the thread that owns the sockets, waking
/// its poll through a `Wakeup`.
final class Mailbox<Value: Sendable>: @unchecked Sendable {  // `items` is guarded by `lock`
    let wakeup = Wakeup()
    private let lock = Lock()
    private var items: [Value] = []

    /// Adds a value; wakes the thread only for the first value since it last took them (it takes them all).
    func post(_ value: Value) {
        let first = lock.withLock {
            defer { items.append(value) }
            return items.isEmpty
        }
        if first { wakeup.signal() }
    }

    func takeAll() -> [Value] {
        lock.withLock {
            defer { items = [] }
            return items
        }
    }
}
