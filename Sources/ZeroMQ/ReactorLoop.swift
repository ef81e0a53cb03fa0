import Glibc
import ShoalCore

/// Runs a blocking socket loop on a dedicated thread and bridges its end to
/// async code. `stop()` may come from any task; the loop sees it through
/// `StopSignal`, whose wakeup interrupts a blocking poll.
public final class ReactorLoop: Sendable {
    /// What the loop body checks, and polls, to know when to end.
    public final class StopSignal: Sendable {
        public let wakeup = Wakeup()
        private let flag = LockedFlag()
        public var isStopped: Bool { flag.value }
        func set() {
            flag.set()
            wakeup.signal()
        }
    }

    private let signal = StopSignal()

    public init() {}

    /// Runs `body` on a new thread and waits for it to return.
    public func run(_ body: @escaping @Sendable (StopSignal) throws -> Void) async throws {
        let signal = signal
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let started = Threads.start(name: "shoal-reactor") {
                do {
                    try body(signal)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            if started != 0 { continuation.resume(throwing: ZMQError(code: started, operation: "pthread_create")) }
        }
    }

    /// Asks the loop to end; safe from any thread, any number of times.
    public func stop() { signal.set() }
}

/// A Boolean that only goes from false to true, readable from any thread.
final class LockedFlag: @unchecked Sendable {  // `stored` is guarded by `lock`
    private let lock = Lock()
    private var stored = false
    var value: Bool { lock.withLock { stored } }
    func set() { lock.withLock { stored = true } }
}
