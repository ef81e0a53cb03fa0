import Foundation

/// What a finished subprocess left behind.
public struct ProcessResult: Sendable {
    /// The exit status, or the signal number when `terminatedBySignal`.
    public var status: Int32
    public var terminatedBySignal: Bool
    public var standardOutput: String
    public var standardError: String
    /// The process outlived its timeout and was killed.
    public var timedOut: Bool
    public var duration: Duration

    public var succeeded: Bool { status == 0 && !terminatedBySignal && !timedOut }

    /// The last lines of standard error, for error messages.
    public func standardErrorTail(lines: Int = 8) -> String {
        standardError.split(separator: "\n", omittingEmptySubsequences: true).suffix(lines).joined(separator: "\n")
    }
}

/// Runs external programs (terraform, kubectl, git) with an argument array,
/// never a shell string, a timeout, and captured output.
public struct ProcessRunner: Sendable {
    /// Extra environment variables, added to the inherited environment.
    public var environment: [String: String]
    /// Standard timeout when a call gives none.
    public var defaultTimeout: Duration

    public init(environment: [String: String] = [:], defaultTimeout: Duration = .seconds(300)) {
        self.environment = environment
        self.defaultTimeout = defaultTimeout
    }

    /// Runs `executable` with `arguments` and waits for it, or for its timeout.
    /// - Parameters:
    ///   - executable: a program name looked up on PATH, or a path.
    ///   - arguments: passed as they are; no shell sees them.
    ///   - workingDirectory: where the program runs; the current directory when nil.
    ///   - environment: more variables for this call only.
    ///   - input: bytes written to its standard input, which is closed afterwards.
    ///   - timeout: SIGTERM at the timeout, SIGKILL two seconds later.
    /// - Returns: the result; a non-zero exit is data, not an error.
    /// - Throws: `ShoalError` with code `.executableNotFound` or `.launchFailed`.
    public func run(
        _ executable: String,
        _ arguments: [String],
        workingDirectory: String? = nil,
        environment extra: [String: String] = [:],
        input: Data? = nil,
        timeout: Duration? = nil
    ) async throws -> ProcessResult {
        ProcessRunner.ignoreBrokenPipes
        guard let path = ProcessRunner.locate(executable) else {
            throw ShoalError(.executableNotFound, "\(executable) is not installed or not on PATH")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        for (key, value) in extra { env[key] = value }
        process.environment = env
        let stdout = Pipe()
        let stderr = Pipe()
        let stdin = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = stdin

        let outCollector = PipeCollector(stdout.fileHandleForReading)
        let errCollector = PipeCollector(stderr.fileHandleForReading)
        let exited = ExitSignal()
        process.terminationHandler = { _ in exited.fire() }
        let start = ContinuousClock.now
        do {
            try ProcessLaunch.run(process)
        } catch {
            throw ShoalError(.launchFailed, "could not start \(executable)", cause: "\(error)")
        }
        if let input { try? stdin.fileHandleForWriting.write(contentsOf: input) }
        try? stdin.fileHandleForWriting.close()

        let limit = timeout ?? defaultTimeout
        var timedOut = false
        if !(await exited.wait(for: limit)) {
            timedOut = true
            process.terminate()
            if !(await exited.wait(for: .seconds(2))) {
                kill(process.processIdentifier, SIGKILL)
                _ = await exited.wait(for: .seconds(5))
            }
        }
        process.waitUntilExit()
        let out = outCollector.finish()
        let err = errCollector.finish()
        return ProcessResult(
            status: process.terminationStatus,
            terminatedBySignal: process.terminationReason == .uncaughtSignal,
            standardOutput: String(decoding: out, as: UTF8.self),
            standardError: String(decoding: err, as: UTF8.self),
            timedOut: timedOut,
            duration: ContinuousClock.now - start
        )
    }

    /// A child that exits without reading its input must not take this
    /// process down with SIGPIPE: writes to its pipe then fail with EPIPE.
    private static let ignoreBrokenPipes: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    /// The full path of a program on PATH, or nil.
    public static func locate(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

/// Reads a pipe to its end on its own thread, so a chatty child never blocks
/// on a full pipe while we wait for it.
private final class PipeCollector: @unchecked Sendable {  // `data` is guarded by `done`
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = FileDescriptorIO.readToEnd(handle.fileDescriptor)
            done.signal()
        }
    }

    func finish() -> Data {
        done.wait()
        return data
    }
}

/// Set once the child has exited; waited on with a deadline.
private final class ExitSignal: @unchecked Sendable {  // `fired` is guarded by `lock`
    private let lock = NSLock()
    private var fired = false

    func fire() {
        lock.lock()
        fired = true
        lock.unlock()
    }

    /// Returns whether the child exited within `timeout`.
    func wait(for timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !isFired {
            let now = ContinuousClock.now
            if now >= deadline { return false }
            try? await Task.sleep(for: min(.milliseconds(10), deadline - now))
        }
        return true
    }

    private var isFired: Bool {
        lock.lock()
        defer { lock.unlock() }
        return fired
    }
}

/// Foundation's `Process.run()` is not safe to call from several threads at
/// once on Linux (concurrent launches corrupt its spawn state and crash), so
/// every launch in shoal goes through this one lock. Only the launch is
/// serialized; the children then run and are waited for in parallel.
public enum ProcessLaunch {
    private static let lock = NSLock()

    /// Launches `process`.
    /// - Throws: whatever `Process.run()` throws.
    public static func run(_ process: Process) throws {
        lock.lock()
        defer { lock.unlock() }
        try process.run()
    }
}
