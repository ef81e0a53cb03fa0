import Foundation
import ZeroMQ

/// Hands values from any task to the thread that owns the sockets, waking
/// its poll through a `Wakeup`.
final class Mailbox<Value: Sendable>: @unchecked Sendable {  // `items` is guarded by `lock`
    let wakeup = Wakeup()
    private let lock = NSLock()
    private var items: [Value] = []

    func post(_ value: Value) {
        lock.lock()
        items.append(value)
        lock.unlock()
        wakeup.signal()
    }

    func takeAll() -> [Value] {
        lock.lock()
        defer { lock.unlock() }
        let taken = items
        items = []
        return taken
    }
}
