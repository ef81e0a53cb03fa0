import Foundation
import Subprocess
import SystemPackage

/// What a finished subprocess left behind, as text.
public struct ProcessResult: Sendable {
    /// The exit status, or the signal number when `terminatedBySignal`.
    public var status: Int32
    public var terminatedBySignal: Bool
    public var standardOutput: String
    public var standardError: String
    /// The process (or its process group) outlived its timeout and was killed.
    public var timedOut: Bool
    public var duration: Duration

    public var succeeded: Bool { status == 0 && !terminatedBySignal && !timedOut }

    /// The last lines of standard error, for error messages.
    public func standardErrorTail(lines: Int = 8) -> String {
        standardError.split(separator: "\n", omittingEmptySubsequences: true).suffix(lines).joined(separator: "\n")
    }
}

/// What a finished subprocess left behind, as bytes (git objects, archives).
public struct ProcessOutput: Sendable {
    /// The exit status, or the signal number when `terminatedBySignal`.
    public var status: Int32
    public var terminatedBySignal: Bool
    public var standardOutput: [UInt8]
    public var standardError: [UInt8]
    /// Output beyond the runner's `outputLimit` was read and dropped.
    public var truncated: Bool
    /// The process (or its process group) outlived its timeout and was killed.
    public var timedOut: Bool
    public var duration: Duration

    public var succeeded: Bool { status == 0 && !terminatedBySignal && !timedOut }
}

/// Runs external programs (terraform, kubectl, git) with an argument array,
/// never a shell string, a timeout, and captured output; the one way shoal
/// starts a program and waits for it.
///
/// Each program runs in a process group of its own, so the timeout reaches
/// whatever it started (a shell's background job, terraform's providers).
/// Input is written while output is read, so a child that never reads cannot
/// stall the caller, and each output stream keeps at most `outputLimit` bytes.
public struct ProcessRunner: Sendable {
    /// Extra environment variables, added to the inherited environment.
    public var environment: [String: String]
    /// Standard timeout when a call gives none.
    public var defaultTimeout: Duration
    /// Bytes kept of each of standard output and standard error; the rest is read and dropped.
    public var outputLimit: Int
    /// Whether programs inherit this process's environment (default) or get `environment` alone, as a CGI
    /// program such as `git http-backend` should.
    public var inheritsEnvironment: Bool

    public init(
        environment: [String: String] = [:], defaultTimeout: Duration = .seconds(300), outputLimit: Int = 64 << 20,
        inheritsEnvironment: Bool = true
    ) {
        self.environment = environment
        self.inheritsEnvironment = inheritsEnvironment
        self.defaultTimeout = defaultTimeout
        self.outputLimit = outputLimit
    }

    /// Runs `executable` with `arguments` and waits for it, or for its timeout.
    /// - Parameters:
    ///   - executable: a program name looked up on PATH, or a path.
    ///   - arguments: passed as they are; no shell sees them.
    ///   - workingDirectory: where the program runs; the current directory when nil.
    ///   - environment: more variables for this call only.
    ///   - input: bytes written to its standard input, which is closed afterwards.
    ///   - timeout: SIGTERM to the process group at the timeout, SIGKILL two seconds later.
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
        let output = try await runBytes(
            executable, arguments, workingDirectory: workingDirectory, environment: extra,
            input: input.map { [UInt8]($0) } ?? [], timeout: timeout)
        return ProcessResult(
            status: output.status,
            terminatedBySignal: output.terminatedBySignal,
            standardOutput: String(decoding: output.standardOutput, as: UTF8.self),
            standardError: String(decoding: output.standardError, as: UTF8.self),
            timedOut: output.timedOut,
            duration: output.duration
        )
    }

    /// Runs `executable` with bytes in and bytes out; see `run(_:_:workingDirectory:environment:input:timeout:)`.
    /// - Throws: `ShoalError` with code `.executableNotFound` or `.launchFailed`.
    public func runBytes(
        _ executable: String,
        _ arguments: [String],
        workingDirectory: String? = nil,
        environment extra: [String: String] = [:],
        input: [UInt8] = [],
        timeout: Duration? = nil
    ) async throws -> ProcessOutput {
        ProcessRunner.ignoreBrokenPipes
        guard let path = ProcessRunner.locate(executable) else {
            throw ShoalError(.executableNotFound, "\(executable) is not installed or not on PATH")
        }
        var overrides: [Environment.Key: String] = [:]
        for (key, value) in environment.merging(extra, uniquingKeysWith: { $1 }) {
            if let key = Environment.Key(rawValue: key) { overrides[key] = value }
        }
        let childEnvironment: Environment =
            inheritsEnvironment ? .inherit.updating(overrides.mapValues { Optional($0) }) : .custom(overrides)
        var options = PlatformOptions()
        options.processGroupID = 0  // a group of its own, led by the child
        let limit = timeout ?? defaultTimeout
        let keep = outputLimit
        let start = ContinuousClock.now
        do {
            let result = try await Subprocess.run(
                .path(FilePath(path)),
                arguments: Arguments(arguments),
                environment: childEnvironment,
                workingDirectory: workingDirectory.map { FilePath($0) },
                platformOptions: options,
                input: .inputWriter,
                output: .sequence,
                error: .sequence
            ) { execution in
                await ProcessRunner.supervise(execution, input: input, timeout: limit, keep: keep)
            }
            let (status, signalled): (Int32, Bool) =
                switch result.terminationStatus {
                case .exited(let code): (code, false)
                case .signaled(let signal): (signal, true)
                }
            let streams = result.closureResult
            return ProcessOutput(
                status: status,
                terminatedBySignal: signalled,
                standardOutput: streams.output.bytes,
                standardError: streams.error.bytes,
                truncated: streams.output.truncated || streams.error.truncated,
                timedOut: streams.timedOut,
                duration: ContinuousClock.now - start
            )
        } catch let error as SubprocessError {
            throw ShoalError(.launchFailed, "could not start \(executable)", cause: "\(error)")
        }
    }

    /// What the supervising tasks collected.
    private struct Streams: Sendable {
        var output = Collected()
        var error = Collected()
        var timedOut = false
    }

    private struct Collected: Sendable {
        var bytes: [UInt8] = []
        var truncated = false
    }

    private enum Event: Sendable {
        case inputDone
        case output(Collected)
        case error(Collected)
        case deadline
        case gaveUp
        case cancelled
    }

    /// Writes input, reads both outputs and enforces the deadline, all at once.
    private static func supervise(
        _ execution: Execution<CustomWriteInput, SequenceOutput, SequenceOutput>,
        input: [UInt8], timeout: Duration, keep: Int
    ) async -> Streams {
        let group = execution.processIdentifier.value
        let writer = execution.standardInputWriter
        let standardOutput = execution.standardOutput
        let standardError = execution.standardError
        // A cancelled caller (a step handed back or abandoned) stops the whole group at once.
        return await withTaskCancellationHandler {
            await supervise(
                group: group, writer: writer, standardOutput: standardOutput, standardError: standardError,
                input: input, timeout: timeout, keep: keep)
        } onCancel: {
            kill(-group, SIGKILL)
        }
    }

    private static func supervise(
        group: pid_t, writer: StandardInputWriter, standardOutput: SubprocessOutputSequence,
        standardError: SubprocessOutputSequence, input: [UInt8], timeout: Duration, keep: Int
    ) async -> Streams {
        await withTaskGroup(of: Event.self, returning: Streams.self) { tasks in
            tasks.addTask {
                var offset = 0
                // A child that exits without reading makes the write fail (EPIPE); that is not an error here.
                while offset < input.count {
                    guard let written = try? await writer.write(Array(input[offset...])), written > 0 else { break }
                    offset += written
                }
                try? await writer.finish()
                return .inputDone
            }
            tasks.addTask { .output(await collect(standardOutput, keep: keep)) }
            tasks.addTask { .error(await collect(standardError, keep: keep)) }
            tasks.addTask {
                do {
                    try await Task.sleep(for: timeout)
                    return .deadline
                } catch {
                    return .cancelled
                }
            }
            var streams = Streams()
            var open = 2
            while let event = await tasks.next() {
                switch event {
                case .output(let collected):
                    streams.output = collected
                    open -= 1
                case .error(let collected):
                    streams.error = collected
                    open -= 1
                case .deadline:
                    streams.timedOut = true
                    kill(-group, SIGTERM)
                    tasks.addTask {
                        guard (try? await Task.sleep(for: .seconds(2))) != nil else { return .cancelled }
                        kill(-group, SIGKILL)
                        // Something that left the group may still hold the pipes: stop waiting for them.
                        guard (try? await Task.sleep(for: .seconds(3))) != nil else { return .cancelled }
                        return .gaveUp
                    }
                case .gaveUp:
                    tasks.cancelAll()
                    return streams
                case .inputDone, .cancelled:
                    break
                }
                if open == 0 {
                    // Both outputs ended: the group is done writing. A timed-out group gets its SIGKILL now.
                    if streams.timedOut { kill(-group, SIGKILL) }
                    tasks.cancelAll()
                    break
                }
            }
            return streams
        }
    }

    /// Reads a stream to its end, keeping the first `keep` bytes.
    private static func collect(_ sequence: SubprocessOutputSequence, keep: Int) async -> Collected {
        var collected = Collected()
        do {
            for try await buffer in sequence {
                buffer.withUnsafeBytes { raw in
                    let room = keep - collected.bytes.count
                    if raw.count <= room {
                        collected.bytes.append(contentsOf: raw)
                    } else {
                        collected.bytes.append(contentsOf: raw.prefix(max(room, 0)))
                        collected.truncated = true
                    }
                }
            }
        } catch {
            // A read error ends the stream; what was read so far is kept.
        }
        return collected
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

/// Foundation's `Process.run()` is not safe to call from several threads at
/// once on Linux (concurrent launches corrupt its spawn state and crash), so
/// a launch through Foundation goes through this one lock.
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
