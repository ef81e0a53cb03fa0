import CShoalSupport
import Glibc
import Synchronization

/// A lock for state shared between threads, for the modules that do without Foundation's `NSLock`.
public final class Lock: Sendable {
    private let mutex = Mutex(())

    public init() {}

    /// Runs `body` holding the lock.
    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try mutex.withLock { _ throws(E) in try body() }
    }
}

/// Threads of shoal's own: a socket loop, a ZAP handler, a pipe reader.
public enum Threads {
    /// Starts `body` on a new detached thread named `name` (the system keeps 15 bytes of it).
    /// - Returns: 0, or the error number (EAGAIN...) when the system refuses a new thread: the body does not run.
    @discardableResult
    public static func start(name: String, _ body: @escaping @Sendable () -> Void) -> Int32 {
        let box = Unmanaged.passRetained(Body(name: name, run: body))
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { raw in
            let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
            shoal_set_thread_name(body.name)
            body.run()
            return nil
        }, box.toOpaque())
        guard started == 0 else {
            box.release()
            return started
        }
        pthread_detach(thread)
        return 0
    }

    private final class Body: Sendable {
        let name: String
        let run: @Sendable () -> Void
        init(name: String, run: @escaping @Sendable () -> Void) {
            self.name = name
            self.run = run
        }
    }
}

/// A value readable and writable from any thread.
public final class Locked<Value>: @unchecked Sendable {  // `stored` is guarded by `lock`
    private let lock = Lock()
    private var stored: Value

    public init(_ value: Value) { stored = value }

    public var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }

    /// Changes the value under the lock and returns what `body` returns.
    public func update<T>(_ body: (inout Value) -> T) -> T {
        lock.withLock { body(&stored) }
    }
}
