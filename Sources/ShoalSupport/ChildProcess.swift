import CShoalSupport
import Foundation

/// A long-running child (the embedded coordinator and agents), as opposed to a program `ProcessRunner` runs to its
/// end. Children are spawned from one thread that lives as long as this process, so a parent-death signal the
/// child sets (`ParentDeath.bind`) fires when this process dies, not when some worker thread happens to exit.
public final class ChildProcess: @unchecked Sendable {  // `status` is guarded by `lock`
    /// Where a child's standard output goes.
    public enum Output: Sendable {
        case null
        /// A pipe; its read end is `ChildProcess.standardOutput`.
        case pipe
    }

    public let name: String
    public let pid: pid_t
    /// The read end of the child's standard output with `.pipe`, else nil; the caller closes it.
    public let standardOutput: Int32?
    private let lock = NSLock()
    private var status: Int32?

    private init(name: String, pid: pid_t, standardOutput: Int32?) {
        self.name = name
        self.pid = pid
        self.standardOutput = standardOutput
    }

    /// Starts `executable` with `arguments`, standard input from /dev/null and standard error appended to
    /// `logFile` (created 0600 when missing, never truncated). Signal dispositions and mask are reset.
    /// - Throws: `ShoalError(.launchFailed)` with the errno.
    public static func start(
        name: String, executable: String, arguments: [String], standardOutput: Output, logFile: String
    ) throws -> ChildProcess {
        try Spawner.shared.perform {
            try spawn(
                name: name, executable: executable, arguments: arguments, standardOutput: standardOutput,
                logFile: logFile)
        }
    }

    private static func spawn(
        name: String, executable: String, arguments: [String], standardOutput: Output, logFile: String
    ) throws -> ChildProcess {
        var pipeEnds: [Int32] = [-1, -1]
        if case .pipe = standardOutput {
            guard shoal_pipe_cloexec(&pipeEnds) == 0 else { throw failure(name, "pipe") }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if case .pipe = standardOutput {
            posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 2, logFile, O_WRONLY | O_CREAT | O_APPEND, 0o600)

        // `shoal create` ignores SIGINT/SIGTERM/SIGPIPE itself; its children must not inherit that.
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result = SpawnAttributes.withDefaults { attributes in
            posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        }
        if pipeEnds[1] >= 0 { close(pipeEnds[1]) }
        guard result == 0 else {
            if pipeEnds[0] >= 0 { close(pipeEnds[0]) }
            errno = result
            throw failure(name, executable)
        }
        return ChildProcess(name: name, pid: pid, standardOutput: pipeEnds[0] >= 0 ? pipeEnds[0] : nil)
    }

    private static func failure(_ name: String, _ what: String) -> ShoalError {
        ShoalError(.launchFailed, "cannot start \(name) (\(what))", cause: String(cString: strerror(errno)))
    }

    /// The wait status once the child has exited (reaping it), nil while it runs.
    public var exitStatus: Int32? {
        lock.lock()
        defer { lock.unlock() }
        if let status { return status }
        var raw: Int32 = 0
        let result = waitpid(pid, &raw, WNOHANG)
        if result == pid {
            status = raw
        } else if result < 0 && errno == ECHILD {
            status = -1  // reaped elsewhere: gone all the same
        }
        return status
    }

    public var isRunning: Bool { exitStatus == nil }

    /// A line for the user: `exited with status 1`, `killed by signal 9`.
    public var exitDescription: String {
        guard let raw = exitStatus else { return "still running" }
        if raw < 0 { return "exited" }
        if raw & 0x7F == 0 { return "exited with status \((raw >> 8) & 0xFF)" }
        return "killed by signal \(raw & 0x7F)"
    }

    /// Sends `signal` unless the child has already been reaped.
    public func send(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Waits up to `timeout` for the child to exit; returns whether it did.
    public func wait(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        // A child told to stop is usually gone within milliseconds: look again soon, then less often.
        var pause: UInt32 = 500
        while isRunning {
            if ContinuousClock.now >= deadline { return false }
            usleep(pause)
            pause = min(pause * 2, 10_000)
        }
        return true
    }
}

/// The one thread children are spawned from: it never exits (see `ChildProcess`).
private final class Spawner: @unchecked Sendable {  // `work` is guarded by `condition`
    static let shared = Spawner()
    private let condition = NSCondition()
    private var work: [() -> Void] = []

    private init() {
        let thread = Thread { [self] in loop() }
        thread.name = "shoal-spawner"
        thread.start()
    }

    func perform<T>(_ body: @escaping () throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var outcome: Result<T, any Error>?
        condition.lock()
        work.append {
            outcome = Result { try body() }
            done.signal()
        }
        condition.signal()
        condition.unlock()
        done.wait()
        return try outcome!.get()
    }

    private func loop() {
        while true {
            condition.lock()
            while work.isEmpty { condition.wait() }
            let next = work.removeFirst()
            condition.unlock()
            next()
        }
    }
}
