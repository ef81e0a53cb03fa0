import CShoalSupport
import FoundationEssentials
import Glibc
import Logging
import Protocol
import ShoalCore
import Synchronization

// The step worker: a child process (`shoal agent-worker ROLE ...`) that runs the role's handlers for an agent which
// holds the bus connection itself and keeps none of the handlers' libraries in memory. This file holds the protocol
// on the two pipes between them and the worker's serving loop; `WorkerBridge` is the agent's side.
//
// Only FoundationEssentials, Glibc, Synchronization and the C shim here (no Foundation proper): the agent that links
// this file stays small.

/// The frames on the step worker's pipes: the agent writes `WorkerRequest`s to the worker's standard input, the
/// worker writes `WorkerReply`s to its standard output. Its standard error is its log.
///
/// A frame is a 4-byte big-endian length, then that many bytes of JSON (`JSONEncoder` defaults: `Data` as base64).
/// A frame longer than `maximumLength` (512 MiB) or whose body does not decode is refused with a
/// `StepWorkerError`, never trapped on; the stream cannot be trusted after it, so the reader stops there.
///
/// agent -> worker:
/// - `{"type":"run","key":{"workflow":W,"step":S,"attempt":N},"assignment":StepAssignment,"artifacts":[Artifact],
///   "agent":ID,"leaseMilliseconds":N}` runs one attempt under a lease of its own, valid for N ms (none: it never
///   expires); several run at once.
/// - `{"type":"renew","key":KEY,"leaseMilliseconds":N}`: the step's lease is good for N ms from now (what is left of
///   the agent's, plus `WorkerBridge.leaseSlack`). The agent sends one every `WorkerBridge.renewInterval` while the
///   step runs, so a frozen agent (SIGSTOP, a paused VM) leaves its worker's leases to run out soon after its own.
/// - `{"type":"cancel","key":KEY}`: the agent lost the step's lease (or stops); the worker revokes that lease, which
///   cancels the step's task and makes `StepContext.checkLease()` throw `LeaseLost`. An unknown key is ignored.
/// - End of file: the worker finishes the steps it has, answers them, and exits 0.
///
/// worker -> agent, one reply per `run`:
/// - `{"type":"done","key":KEY,"output":StepOutput}`.
/// - `{"type":"failed","key":KEY,"message":TEXT,"handedBack":BOOL}`: `message` is the handler's error as text
///   (`"\(error)"`); `handedBack` is true when the step ended without a result (its lease was revoked, it threw
///   `LeaseLost` or `CancellationError`, or it was cancelled), which the agent must not report.
public enum WorkerFrame {
    /// The longest frame body accepted (512 MiB).
    public static let maximumLength = 512 << 20

    /// The frame for `value`: its length, then its JSON.
    /// - Throws: `StepWorkerError(.frameTooLarge)` past `maximumLength`, `.malformedFrame` when it does not encode.
    public static func encode(_ value: some Encodable) throws(StepWorkerError) -> [UInt8] {
        let body: Data
        do {
            body = try JSONEncoder().encode(value)
        } catch {
            throw StepWorkerError(.malformedFrame, "cannot encode a step worker frame: \(error)")
        }
        try check(length: body.count)
        let length = UInt32(body.count)
        var frame: [UInt8] = [
            UInt8(truncatingIfNeeded: length >> 24), UInt8(truncatingIfNeeded: length >> 16),
            UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length),
        ]
        frame.reserveCapacity(4 + body.count)
        frame.append(contentsOf: body)
        return frame
    }

    /// Decodes a frame's body.
    /// - Throws: `StepWorkerError(.malformedFrame)` naming what is wrong (never the body itself).
    public static func decode<T: Decodable>(_ type: T.Type, from body: Data) throws(StepWorkerError) -> T {
        do {
            return try JSONDecoder().decode(type, from: body)
        } catch let error as DecodingError {
            throw StepWorkerError(.malformedFrame, "damaged step worker frame (\(body.count) bytes): \(error.brief)")
        } catch {
            throw StepWorkerError(.malformedFrame, "damaged step worker frame (\(body.count) bytes)")
        }
    }

    static func check(length: Int) throws(StepWorkerError) {
        guard length <= maximumLength else {
            throw StepWorkerError(
                .frameTooLarge, "step worker frame of \(length) bytes refused: at most \(maximumLength >> 20) MiB")
        }
    }
}

/// Splits a byte stream into frame bodies, whatever the chunks it arrives in.
public struct WorkerFrameDecoder: Sendable {
    private var buffer: [UInt8] = []
    /// Where the unread bytes of `buffer` start.
    private var start = 0

    public init() {}

    /// Whether part of a frame is waiting for the rest (at end of file: a truncated frame).
    public var hasPartialFrame: Bool { start < buffer.count }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole frame's body, nil until one has arrived.
    /// - Throws: `StepWorkerError(.frameTooLarge)` when the length announced is above `WorkerFrame.maximumLength`.
    public mutating func next() throws(StepWorkerError) -> Data? {
        guard buffer.count - start >= 4 else { return nil }
        let length =
            Int(buffer[start]) << 24 | Int(buffer[start + 1]) << 16 | Int(buffer[start + 2]) << 8
            | Int(buffer[start + 3])
        try WorkerFrame.check(length: length)
        guard buffer.count - start - 4 >= length else {
            // Room for the frame at once, unless it is large: then the bytes that arrive make it grow.
            if length <= 16 << 20 { buffer.reserveCapacity(start + 4 + length) }
            return nil
        }
        let body = Data(buffer[(start + 4)..<(start + 4 + length)])
        start += 4 + length
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
            start = 0
        }
        return body
    }

    /// The end of the stream: a frame cut short is an error.
    /// - Throws: `StepWorkerError(.truncatedFrame)`.
    public func finish() throws(StepWorkerError) {
        if hasPartialFrame {
            throw StepWorkerError(
                .truncatedFrame, "step worker stream ended inside a frame (\(buffer.count - start) bytes of it)")
        }
    }
}

/// What the agent asks of its step worker (see `WorkerFrame`).
public enum WorkerRequest: Codable, Sendable, Equatable {
    case run(WorkerRun)
    case cancel(key: StepKey)
    case renew(key: StepKey, leaseMilliseconds: Int64)

    private enum CodingKeys: String, CodingKey { case type, key, leaseMilliseconds }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .type) {
        case "run": self = .run(try WorkerRun(from: decoder))
        case "cancel": self = .cancel(key: try container.decode(StepKey.self, forKey: .key))
        case "renew":
            self = .renew(
                key: try container.decode(StepKey.self, forKey: .key),
                leaseMilliseconds: try container.decode(Int64.self, forKey: .leaseMilliseconds))
        case let other:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: container, debugDescription: "unknown request type '\(other.prefix(40))'")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .run(let run):
            try container.encode("run", forKey: .type)
            try run.encode(to: encoder)
        case .cancel(let key):
            try container.encode("cancel", forKey: .type)
            try container.encode(key, forKey: .key)
        case .renew(let key, let leaseMilliseconds):
            try container.encode("renew", forKey: .type)
            try container.encode(key, forKey: .key)
            try container.encode(leaseMilliseconds, forKey: .leaseMilliseconds)
        }
    }
}

/// One attempt of a step for the worker: what its `StepContext` is built from.
public struct WorkerRun: Codable, Sendable, Equatable {
    public var key: StepKey
    public var assignment: StepAssignment
    public var artifacts: [Artifact]
    /// The agent's id on the bus (`StepContext.agentID`).
    public var agent: String
    /// How long the step's lease is good for, from when the worker reads this; nil: it never expires.
    public var leaseMilliseconds: Int64?

    public init(
        key: StepKey, assignment: StepAssignment, artifacts: [Artifact], agent: String, leaseMilliseconds: Int64? = nil
    ) {
        self.key = key
        self.assignment = assignment
        self.artifacts = artifacts
        self.agent = agent
        self.leaseMilliseconds = leaseMilliseconds
    }

    /// The lease the step runs under in the worker.
    var lease: StepLease {
        leaseMilliseconds.map { StepLease(window: .milliseconds(max(0, $0))) } ?? .unbounded()
    }
}

/// What the worker answers a `run` with (see `WorkerFrame`).
public enum WorkerReply: Codable, Sendable, Equatable {
    case done(key: StepKey, output: StepOutput)
    case failed(key: StepKey, message: String, handedBack: Bool)

    public var key: StepKey {
        switch self {
        case .done(let key, _), .failed(let key, _, _): key
        }
    }

    private enum CodingKeys: String, CodingKey { case type, key, output, message, handedBack }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let key = try container.decode(StepKey.self, forKey: .key)
        switch try container.decode(String.self, forKey: .type) {
        case "done": self = .done(key: key, output: try container.decode(StepOutput.self, forKey: .output))
        case "failed":
            self = .failed(
                key: key, message: try container.decode(String.self, forKey: .message),
                handedBack: try container.decode(Bool.self, forKey: .handedBack))
        case let other:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: container, debugDescription: "unknown reply type '\(other.prefix(40))'")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .done(let key, let output):
            try container.encode("done", forKey: .type)
            try container.encode(key, forKey: .key)
            try container.encode(output, forKey: .output)
        case .failed(let key, let message, let handedBack):
            try container.encode("failed", forKey: .type)
            try container.encode(key, forKey: .key)
            try container.encode(message, forKey: .message)
            try container.encode(handedBack, forKey: .handedBack)
        }
    }
}

/// What went wrong between an agent and its step worker.
public struct StepWorkerError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: RawRepresentable, Hashable, Sendable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// A frame announced more than `WorkerFrame.maximumLength`.
        public static let frameTooLarge = Code(rawValue: "frame-too-large")
        /// The stream ended inside a frame.
        public static let truncatedFrame = Code(rawValue: "truncated-frame")
        /// A frame's body is not the JSON of a request or reply.
        public static let malformedFrame = Code(rawValue: "malformed-frame")
        /// The worker could not be started.
        public static let spawnFailed = Code(rawValue: "spawn-failed")
        /// The worker exited (or closed its output) with the step in flight.
        public static let workerExited = Code(rawValue: "worker-exited")
        /// The bridge was shut down.
        public static let shutDown = Code(rawValue: "shut-down")
        /// A read or write on a pipe failed.
        public static let io = Code(rawValue: "io")
    }

    public var code: Code
    public var message: String
    public var description: String { message }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// The error a step that failed in the worker throws in the agent: its text is the handler's, so the step's result
/// reads the same as when the handler runs in the agent.
public struct WorkerStepFailure: Error, CustomStringConvertible, Sendable, Equatable {
    public var key: StepKey
    public var message: String
    public var description: String { message }
}

extension DecodingError {
    /// The reason and where, in one line.
    fileprivate var brief: String {
        func path(_ context: Context) -> String {
            let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return path.isEmpty ? "" : " at \(path)"
        }
        switch self {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return String((context.debugDescription + path(context)).prefix(200))
        case .keyNotFound(let key, let context):
            return "missing '\(key.stringValue)'\(path(context))"
        @unknown default:
            return "undecodable"
        }
    }
}

// MARK: - Descriptors and threads

/// Reads and writes on raw descriptors, retrying EINTR.
enum WorkerIO {
    /// A pipe whose two ends are close-on-exec from the start, so no other child inherits them.
    static func pipe() throws(StepWorkerError) -> (read: Int32, write: Int32) {
        var ends: [Int32] = [-1, -1]
        guard shoal_pipe_cloexec(&ends) == 0 else { throw StepWorkerError(.io, "cannot make a pipe: \(errorText())") }
        // Above the standard descriptors, so a dup2 onto 0 or 1 in a child always clears close-on-exec.
        for index in 0..<2 where ends[index] < 3 {
            let moved = fcntl(ends[index], F_DUPFD_CLOEXEC, 3)
            close(ends[index])
            ends[index] = moved
        }
        guard ends[0] >= 0, ends[1] >= 0 else {
            for end in ends where end >= 0 { close(end) }
            throw StepWorkerError(.io, "cannot make a pipe: \(errorText())")
        }
        return (ends[0], ends[1])
    }

    /// Writes all of `bytes`; false when the descriptor refuses (EPIPE: the reader is gone).
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return false
                }
            }
            return true
        }
    }

    /// One read into `buffer`: the count, 0 at end of file, -1 on error.
    static func read(_ fd: Int32, into buffer: inout [UInt8]) -> Int {
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count >= 0 || errno != EINTR { return count }
        }
    }

    static func errorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }
}

/// Frames read from a descriptor, on the thread that calls `next()`.
struct WorkerFrameReader {
    let fd: Int32
    private var decoder = WorkerFrameDecoder()
    private var chunk = [UInt8](repeating: 0, count: 64 << 10)

    init(fd: Int32) { self.fd = fd }

    /// The next frame's body; nil at the end of the stream between frames.
    /// - Throws: `StepWorkerError` for an oversized or truncated frame, or a failed read.
    mutating func next() throws(StepWorkerError) -> Data? {
        while true {
            if let body = try decoder.next() { return body }
            let count = WorkerIO.read(fd, into: &chunk)
            if count < 0 { throw StepWorkerError(.io, "step worker pipe read failed: \(WorkerIO.errorText())") }
            if count == 0 {
                try decoder.finish()
                return nil
            }
            decoder.append(chunk[0..<count])
        }
    }
}

/// Runs `body` on a thread of its own (not one of the concurrency pool's, which a blocking read would take away
/// from every task); the thread ends with `body`.
func startWorkerThread(_ body: @escaping @Sendable () -> Void) throws(StepWorkerError) {
    let result = Threads.start(name: "shoal-worker-io", body)
    guard result == 0 else { throw StepWorkerError(.io, "cannot start a thread: \(WorkerIO.errorText(result))") }
}

// MARK: - The worker's side

/// The serving loop of `shoal agent-worker`.
public enum StepWorker {
    /// Takes the protocol pipes off standard input and output: they move to close-on-exec descriptors of their own,
    /// standard input becomes /dev/null and standard output the log (standard error). So no program a handler runs
    /// reads the agent's requests, keeps the reply pipe open after the worker exits, or writes into it; a stray
    /// `print` lands in the log. Call first thing, before any thread starts.
    /// - Returns: the descriptors to pass to `serve`.
    /// - Throws: `StepWorkerError(.io)` when the descriptors cannot be moved.
    public static func takeStandardStreams() throws(StepWorkerError) -> (input: Int32, output: Int32) {
        let input = fcntl(0, F_DUPFD_CLOEXEC, 3)
        let output = fcntl(1, F_DUPFD_CLOEXEC, 3)
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard input >= 0, output >= 0, null >= 0, dup2(null, 0) == 0, dup2(2, 1) == 1 else {
            throw StepWorkerError(.io, "cannot take the step worker's pipes: \(WorkerIO.errorText())")
        }
        close(null)
        return (input, output)
    }

    /// Serves the requests read from `input` with `handler`, each step in a task of its own, and writes the replies
    /// to `output` (one writer at a time), until `input` ends; then waits for the steps still running and returns.
    /// Neither descriptor is closed.
    /// - Parameters:
    ///   - handler: the role's handler, built once for all the steps.
    ///   - input: where requests come from (the agent's end of the request pipe).
    ///   - output: where replies go.
    ///   - logger: the worker's log; each step logs with its `workflow.id`, `step`, `attempt` and `agent.id`.
    /// - Throws: `StepWorkerError` when a damaged request arrives (oversized, truncated or not JSON of a request):
    ///   the steps running then are handed back first.
    public static func serve(handler: any StepHandler, input: Int32, output: Int32, logger: Logger) async throws {
        let (requests, feed) = AsyncStream<Result<WorkerRequest, StepWorkerError>>.makeStream()
        try startWorkerThread {
            var reader = WorkerFrameReader(fd: input)
            do throws(StepWorkerError) {
                while let body = try reader.next() {
                    feed.yield(.success(try WorkerFrame.decode(WorkerRequest.self, from: body)))
                }
            } catch {
                feed.yield(.failure(error))
            }
            feed.finish()
        }
        let serving = Serving(output: output, logger: logger)
        var damage: StepWorkerError?
        // A lease that runs out cancels its step's task, as it would in the agent.
        let lapses = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: WorkerBridge.renewInterval)
                serving.endLapsed()
            }
        }
        defer { lapses.cancel() }
        await withDiscardingTaskGroup { group in
            for await request in requests {
                switch request {
                case .success(.run(let run)):
                    let lease = run.lease
                    guard serving.admit(run.key, lease) else {
                        logger.error("step worker asked to run a step it is running", metadata: ["step": "\(run.key)"])
                        continue
                    }
                    group.addTask {
                        let reply = await lease.cancellingOnLoss {
                            await execute(run, lease: lease, handler: handler, logger: logger)
                        }
                        serving.finish(reply)
                    }
                case .success(.cancel(let key)):
                    serving.revoke(key)
                case .success(.renew(let key, let leaseMilliseconds)):
                    serving.renew(key, window: .milliseconds(max(0, leaseMilliseconds)))
                case .failure(let error):
                    logger.error(
                        "damaged request from the agent, handing back every step", metadata: ["error": "\(error)"])
                    damage = error
                    serving.revokeAll()
                }
            }
        }
        if let damage { throw damage }
    }

    /// Runs one attempt as the agent would in its own process, and says how it ended.
    static func execute(_ run: WorkerRun, lease: StepLease, handler: any StepHandler, logger: Logger) async
        -> WorkerReply
    {
        let logger = logger.forStep(run.key, agent: run.agent)
        let context = StepContext(
            key: run.key, assignment: run.assignment, artifacts: run.artifacts, agentID: run.agent, logger: logger,
            lease: lease)
        logger.debug("step started in the step worker")
        do {
            let output = try await handler.run(context)
            if Task.isCancelled || !lease.isHeld {
                return .failed(key: run.key, message: "\(LeaseLost(key: run.key))", handedBack: true)
            }
            return .done(key: run.key, output: output)
        } catch {
            let handedBack = error is LeaseLost || error is CancellationError || Task.isCancelled || !lease.isHeld
            return .failed(key: run.key, message: "\(error)", handedBack: handedBack)
        }
    }

}

/// The worker's steps in flight and its reply pipe, shared by the steps' tasks.
private final class Serving: Sendable {
    private let output: Mutex<Int32>
    private let running = Mutex<[StepKey: StepLease]>([:])
    private let logger: Logger

    init(output: Int32, logger: Logger) {
        self.output = Mutex(output)
        self.logger = logger
    }

    /// Keeps the step's lease for `cancel`; false when that step runs already.
    func admit(_ key: StepKey, _ lease: StepLease) -> Bool {
        running.withLock { steps in
            if steps[key] != nil { return false }
            steps[key] = lease
            return true
        }
    }

    func revoke(_ key: StepKey) {
        running.withLock { $0[key] }?.revoke()
    }

    func renew(_ key: StepKey, window: Duration) {
        running.withLock { $0[key] }?.renew(window: window)
    }

    func endLapsed() {
        for lease in running.withLock({ Array($0.values) }) { lease.endIfLapsed() }
    }

    func revokeAll() {
        for lease in running.withLock({ Array($0.values) }) { lease.revoke() }
    }

    /// Forgets the step and writes its reply; one that cannot be framed (an output over the frame limit) fails
    /// the step instead.
    func finish(_ reply: WorkerReply) {
        running.withLock { _ = $0.removeValue(forKey: reply.key) }
        let frame: [UInt8]
        do {
            frame = try WorkerFrame.encode(reply)
        } catch {
            logger.error("step reply cannot be framed", metadata: ["step": "\(reply.key)", "error": "\(error)"])
            guard
                let fallback = try? WorkerFrame.encode(
                    WorkerReply.failed(key: reply.key, message: error.message, handedBack: false))
            else { return }
            frame = fallback
        }
        if !output.withLock({ WorkerIO.writeAll($0, frame) }) {
            // The agent is gone: nobody takes the other steps' results either.
            logger.warning(
                "the agent stopped reading, handing back every step", metadata: ["error": "\(WorkerIO.errorText())"])
            revokeAll()
        }
    }
}
