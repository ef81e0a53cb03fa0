import FoundationEssentials
import Glibc
import Logging
import Protocol
import ShoalCore
import Synchronization

/// The handler of an agent whose role's handlers run in a step worker (`shoal agent-worker ROLE ...`, see
/// `WorkerFrame` for the protocol): each step goes to the worker over its standard input, its reply comes back on
/// its standard output.
///
/// The worker starts with the first step, serves the steps that follow (several at once), and is stopped once no
/// step has been in flight for `idleTimeout`; the next step starts a fresh one. A step whose task is cancelled (its
/// lease was lost, the agent stops) is cancelled in the worker; a worker that does not answer within a few seconds
/// is killed and the step handed back (`LeaseLost`). A worker that exits by itself fails the steps it had with
/// "the step worker exited (status N)" or "(signal S)".
///
/// Each worker is spawned from a thread of its own that lives until it has reaped the worker, so a parent-death
/// signal the worker asks for (`prctl(PR_SET_PDEATHSIG)`) fires when this process dies, not when some pool thread
/// ends. That thread also reads the worker's replies and keeps its idle deadline.
public final class WorkerBridge: StepHandler {
    private let launcher: Launcher
    private let idleTimeout: Duration
    /// How long a cancelled step's worker has to answer before it is killed.
    private let cancelGrace: Duration
    private let logger: Logger
    private let state = Mutex(State())

    /// - Parameters:
    ///   - command: the worker's executable (a path, or a name looked up on PATH) and its arguments, e.g.
    ///     `["/usr/local/bin/shoal", "agent-worker", "infra", "--work-dir", "/var/lib/shoal"]`.
    ///   - idleTimeout: how long the worker stays with no step in flight before it is stopped.
    ///   - logger: the bridge's log (the worker logs to the standard error it inherits).
    public convenience init(command: [String], idleTimeout: Duration, logger: Logger) {
        self.init(idleTimeout: idleTimeout, cancelGrace: .seconds(5), logger: logger) { () throws(StepWorkerError) in
            try WorkerBridge.spawn(command)
        }
    }

    /// `launcher` starts a worker; it runs on the thread that then reads that worker's replies.
    init(idleTimeout: Duration, cancelGrace: Duration, logger: Logger, launcher: @escaping Launcher) {
        _ = WorkerBridge.brokenPipesIgnored
        self.launcher = launcher
        self.idleTimeout = idleTimeout
        self.cancelGrace = cancelGrace
        self.logger = logger
    }

    /// How often the leases of the steps in a worker are renewed there (see `WorkerRequest.renew`).
    public static let renewInterval: Duration = .milliseconds(250)
    /// How much longer than the agent's lease the worker's lasts: a renewal a loaded machine delays must not hand a
    /// step back while the agent still holds it (the step would be given out again, to the same fate). A frozen
    /// agent's worker therefore stops within this of the agent's lease.
    public static let leaseSlack: Duration = .seconds(5)

    /// A write to a worker that has just exited fails with EPIPE, which the reply thread then explains.
    private static let brokenPipesIgnored: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    /// Runs the step in the worker, starting one when none runs.
    /// - Throws: the handler's error as `WorkerStepFailure` (its text unchanged); `LeaseLost` when the step was
    ///   handed back (cancelled, or its worker was stopped by this bridge); `StepWorkerError` when the worker cannot
    ///   start, exits with the step in flight, or the bridge was shut down.
    public func run(_ context: StepContext) async throws -> StepOutput {
        let key = context.key
        guard let lease = context.lease.remaining else { throw LeaseLost(key: key) }
        let frame = try WorkerFrame.encode(
            WorkerRequest.run(
                WorkerRun(
                    key: key, assignment: context.assignment, artifacts: context.artifacts, agent: context.agentID,
                    leaseMilliseconds: (lease + WorkerBridge.leaseSlack).milliseconds)))
        let call = Call()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let process: WorkerProcess
                do {
                    process = try admit(key, call: call, lease: context.lease, continuation: continuation)
                } catch {
                    continuation.resume(throwing: error)
                    return
                }
                // A write that fails finds the worker exiting: its exit answers the step.
                _ = process.send(frame)
                if let cancelled = markSent(key, call: call) { sendCancel(key, call: call, to: cancelled) }
            }
        } onCancel: {
            call.cancelled.store(true, ordering: .sequentiallyConsistent)
            if let process = markCancelled(key, call: call) { sendCancel(key, call: call, to: process) }
        }
    }

    /// Stops the worker for good: closes its standard input, so it finishes the steps it has and exits, waits for
    /// that up to `timeout`, then kills it (its steps are handed back). Steps run afterwards fail at once.
    public func shutdown(timeout: Duration = .seconds(10)) async {
        let processes = state.withLock { state in
            state.shutDown = true
            state.current = nil
            return state.workers.values.map(\.process)
        }
        for process in processes { process.closeInput() }
        if await waitForWorkers(until: .now + timeout) { return }
        let stubborn = state.withLock { state in
            for generation in state.workers.keys { state.workers[generation]?.killed = true }
            return state.workers.values.map(\.process)
        }
        logger.warning("step worker still running at shutdown, killing it", metadata: ["count": "\(stubborn.count)"])
        for process in stubborn { process.kill() }
        _ = await waitForWorkers(until: .now + .seconds(2))
    }

    /// The pid of the worker new steps go to, nil when none runs (or it runs in this process, in tests).
    public var workerProcessID: pid_t? {
        state.withLock { state in state.current.flatMap { state.workers[$0]?.process.pid } }
    }

    /// Which worker new steps go to (1 for the first one started, and so on), nil when none runs.
    var workerGeneration: Int? { state.withLock { $0.current } }

    /// Workers started and not yet gone (one, or more while a stopped one finishes).
    var liveWorkers: Int { state.withLock { $0.workers.count } }

    /// Steps whose `run` frame is written and whose reply has not come.
    var stepsSent: Int {
        state.withLock { state in state.workers.values.reduce(0) { $0 + $1.slots.values.filter(\.sent).count } }
    }

    // MARK: - Steps

    /// Picks the worker for a step (starting one when none runs) and records the step's continuation there.
    private func admit(
        _ key: StepKey, call: Call, lease: StepLease, continuation: CheckedContinuation<StepOutput, any Error>
    ) throws -> WorkerProcess {
        try state.withLock { (state) throws -> WorkerProcess in
            if state.shutDown { throw StepWorkerError(.shutDown, "the step worker is shut down (the agent stops)") }
            if call.cancelled.load(ordering: .sequentiallyConsistent) { throw LeaseLost(key: key) }
            let generation: Int
            if let current = state.current, state.workers[current] != nil {
                generation = current
            } else {
                generation = try launch(&state)
            }
            guard state.workers[generation]?.slots[key] == nil else {
                throw StepWorkerError(.io, "step \(key) is running in the step worker already")
            }
            state.workers[generation]?.slots[key] = Slot(call: call, lease: lease, continuation: continuation)
            state.workers[generation]?.idleSince = nil
            return state.workers[generation]!.process
        }
    }

    /// Starts a worker from a thread of its own, which then serves its replies; under the state lock, so two steps
    /// arriving at once share one worker.
    private func launch(_ state: inout State) throws(StepWorkerError) -> Int {
        state.generations += 1
        let generation = state.generations
        let handoff = Handoff<Result<WorkerProcess, StepWorkerError>>()
        let launcher = launcher
        try startWorkerThread { [self] in
            let launched = Result { () throws(StepWorkerError) in
                WorkerProcess(generation: generation, try launcher())
            }
            handoff.put(launched)
            if case .success(let process) = launched { serveReplies(of: process) }
        }
        let process = try handoff.take().get()
        state.workers[generation] = Entry(process: process)
        state.current = generation
        logger.debug(
            "step worker started", metadata: ["worker.pid": "\(process.pid.map(String.init) ?? "in-process")"])
        return generation
    }

    /// Notes that the step's `run` is written; the worker to send `cancel` to when the step was cancelled meanwhile.
    private func markSent(_ key: StepKey, call: Call) -> WorkerProcess? {
        state.withLock { state in
            guard let generation = state.generation(of: key, call: call) else { return nil }
            state.workers[generation]?.slots[key]?.sent = true
            return state.workers[generation]?.slots[key]?.cancelled == true ? state.workers[generation]?.process : nil
        }
    }

    /// Notes the step's cancellation; the worker to send `cancel` to when its `run` is written already (otherwise
    /// `markSent` sends it).
    private func markCancelled(_ key: StepKey, call: Call) -> WorkerProcess? {
        state.withLock { state in
            guard let generation = state.generation(of: key, call: call) else { return nil }
            state.workers[generation]?.slots[key]?.cancelled = true
            return state.workers[generation]?.slots[key]?.sent == true ? state.workers[generation]?.process : nil
        }
    }

    /// Asks the worker to hand the step back, and kills it when the step is still there after `cancelGrace`.
    private func sendCancel(_ key: StepKey, call: Call, to process: WorkerProcess) {
        if let frame = try? WorkerFrame.encode(WorkerRequest.cancel(key: key)) { _ = process.send(frame) }
        let grace = cancelGrace
        Task { [self] in
            try? await Task.sleep(for: grace)
            handBackIfStuck(key, call: call)
        }
    }

    private func handBackIfStuck(_ key: StepKey, call: Call) {
        let stuck = state.withLock { state -> (WorkerProcess, Slot)? in
            guard let generation = state.generation(of: key, call: call),
                let slot = state.workers[generation]?.slots.removeValue(forKey: key)
            else { return nil }
            // Its other steps are handed back too: they did nothing wrong.
            state.workers[generation]?.killed = true
            if state.current == generation { state.current = nil }
            return (state.workers[generation]!.process, slot)
        }
        guard let (process, slot) = stuck else { return }
        logger.warning(
            "step worker did not hand a cancelled step back in time, killing it",
            metadata: ["step": "\(key)", "worker.pid": "\(process.pid.map(String.init) ?? "in-process")"])
        process.kill()
        slot.continuation.resume(throwing: LeaseLost(key: key))
    }

    // MARK: - The reply thread

    /// Reads the worker's replies until it closes its output, keeping its idle deadline meanwhile; then reaps it
    /// and answers the steps it still had.
    private func serveReplies(of process: WorkerProcess) {
        var decoder = WorkerFrameDecoder()
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        var damage: StepWorkerError?
        var renewal = ContinuousClock.now + WorkerBridge.renewInterval
        reading: while true {
            do {
                while let body = try decoder.next() {
                    deliver(try WorkerFrame.decode(WorkerReply.self, from: body), from: process)
                }
            } catch {
                damage = error
                break reading
            }
            if ContinuousClock.now >= renewal {
                renewLeases(in: process)
                renewal = .now + WorkerBridge.renewInterval
            }
            var ready = pollfd(fd: process.output, events: Int16(POLLIN), revents: 0)
            let count = poll(&ready, 1, pollTimeout(process, renewal: renewal))
            if count == 0 || (count < 0 && errno == EINTR) { continue }
            if count < 0 {
                damage = StepWorkerError(.io, "cannot wait for the step worker's replies: \(WorkerIO.errorText())")
                break
            }
            let read = WorkerIO.read(process.output, into: &chunk)
            if read < 0 {
                damage = StepWorkerError(.io, "cannot read the step worker's replies: \(WorkerIO.errorText())")
                break
            }
            if read == 0 {
                do { try decoder.finish() } catch { damage = error }
                break
            }
            decoder.append(chunk[0..<read])
        }
        close(process.output)
        if let damage {
            // Nothing after a damaged frame can be trusted: the worker goes, its steps fail with the reason.
            logger.error(
                "step worker sent a damaged reply, killing it",
                metadata: ["error": "\(damage)", "worker.pid": "\(process.pid.map(String.init) ?? "in-process")"])
            state.withLock { $0.workers[process.generation]?.damage = damage }
            process.kill()
        }
        let status = process.reap()
        exited(process, status: status)
    }

    /// Sends the worker what is left of each running step's lease; a lost one is left to its `cancel`.
    private func renewLeases(in process: WorkerProcess) {
        let leases = state.withLock { state -> [(StepKey, StepLease)] in
            guard let slots = state.workers[process.generation]?.slots else { return [] }
            return slots.compactMap { key, slot in slot.sent && !slot.cancelled ? (key, slot.lease) : nil }
        }
        for (key, lease) in leases {
            guard let left = lease.remaining,
                let frame = try? WorkerFrame.encode(
                    WorkerRequest.renew(key: key, leaseMilliseconds: (left + WorkerBridge.leaseSlack).milliseconds))
            else { continue }
            _ = process.send(frame)
        }
    }

    /// The poll timeout: until the next lease renewal while steps run, else until the idle deadline.
    private func pollTimeout(_ process: WorkerProcess, renewal: ContinuousClock.Instant) -> Int32 {
        let idle = idleWait(process)
        guard state.withLock({ $0.workers[process.generation]?.slots.isEmpty == false }) else { return idle }
        let left = max(.zero, renewal - .now)
        let milliseconds = Int32(clamping: left.milliseconds + 1)
        return idle < 0 ? milliseconds : min(idle, milliseconds)
    }

    /// The poll timeout until the worker's idle deadline (-1: none); a worker idle that long is stopped here.
    private func idleWait(_ process: WorkerProcess) -> Int32 {
        let idleTimeout = idleTimeout
        let (timeout, retired) = state.withLock { state -> (Int32, Bool) in
            guard state.current == process.generation, let since = state.workers[process.generation]?.idleSince
            else { return (-1, false) }
            let left = since + idleTimeout - .now
            if left <= .zero {
                state.current = nil
                return (-1, true)
            }
            let (seconds, attoseconds) = left.components
            let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1
            return (Int32(clamping: milliseconds), false)
        }
        if retired {
            logger.debug(
                "step worker idle, stopping it",
                metadata: ["worker.pid": "\(process.pid.map(String.init) ?? "in-process")"])
            process.closeInput()
        }
        return timeout
    }

    private func deliver(_ reply: WorkerReply, from process: WorkerProcess) {
        let slot = state.withLock { state -> Slot? in
            guard let slot = state.workers[process.generation]?.slots.removeValue(forKey: reply.key) else { return nil }
            if state.workers[process.generation]?.slots.isEmpty == true {
                state.workers[process.generation]?.idleSince = .now
            }
            return slot
        }
        guard let slot else {
            logger.warning("step worker answered a step it was not given", metadata: ["step": "\(reply.key)"])
            return
        }
        switch reply {
        case .done(_, let output): slot.continuation.resume(returning: output)
        case .failed(let key, _, true): slot.continuation.resume(throwing: LeaseLost(key: key))
        case .failed(let key, let message, false):
            slot.continuation.resume(throwing: WorkerStepFailure(key: key, message: message))
        }
    }

    private func exited(_ process: WorkerProcess, status: String) {
        let gone = state.withLock { state -> Entry? in
            if state.current == process.generation { state.current = nil }
            return state.workers.removeValue(forKey: process.generation)
        }
        process.closeInput()
        guard let gone else { return }
        let metadata: Logger.Metadata = [
            "worker.pid": "\(process.pid.map(String.init) ?? "in-process")", "status": "\(status)",
            "steps": "\(gone.slots.count)",
        ]
        if gone.slots.isEmpty || gone.killed {
            logger.debug("step worker exited", metadata: metadata)
        } else {
            logger.warning("step worker exited with steps in flight", metadata: metadata)
        }
        for (key, slot) in gone.slots {
            if gone.killed || slot.cancelled {
                slot.continuation.resume(throwing: LeaseLost(key: key))
            } else if let damage = gone.damage {
                slot.continuation.resume(
                    throwing: StepWorkerError(damage.code, "the step worker's reply was damaged: \(damage.message)"))
            } else {
                slot.continuation.resume(
                    throwing: StepWorkerError(.workerExited, "the step worker exited (\(status))"))
            }
        }
    }

    /// Waits until every worker is gone or the deadline passes; whether they are gone.
    private func waitForWorkers(until deadline: ContinuousClock.Instant) async -> Bool {
        var pause = Duration.milliseconds(1)
        while state.withLock({ !$0.workers.isEmpty }) {
            if ContinuousClock.now >= deadline || Task.isCancelled { return false }
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(20))
        }
        return true
    }

    // MARK: - Spawning

    /// Starts `command` with pipes on its standard input and output (close-on-exec on this side), its standard
    /// error inherited, default signal dispositions, and a process group of its own (so a terminal's ^C reaches
    /// the agent alone, which then stops the worker).
    static func spawn(_ command: [String]) throws(StepWorkerError) -> LaunchedWorker {
        guard let executable = command.first, !executable.isEmpty else {
            throw StepWorkerError(.spawnFailed, "cannot start the step worker: its command is empty")
        }
        let requests = try WorkerIO.pipe()
        let replies: (read: Int32, write: Int32)
        do {
            replies = try WorkerIO.pipe()
        } catch {
            close(requests.read)
            close(requests.write)
            throw error
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, requests.read, 0)
        posix_spawn_file_actions_adddup2(&actions, replies.write, 1)

        let argv = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result = SpawnAttributes.withDefaults(processGroup: true) { attributes in
            posix_spawnp(&pid, executable, &actions, &attributes, argv, environ)
        }
        close(requests.read)
        close(replies.write)
        guard result == 0 else {
            close(requests.write)
            close(replies.read)
            throw StepWorkerError(
                .spawnFailed, "cannot start the step worker '\(executable)': \(WorkerIO.errorText(result))")
        }
        return LaunchedWorker(input: requests.write, output: replies.read, pid: pid)
    }
}

/// A worker just started: the agent's ends of its pipes, and its pid.
struct LaunchedWorker: Sendable {
    /// Where requests go (the worker's standard input).
    var input: Int32
    /// Where replies come from (the worker's standard output).
    var output: Int32
    /// nil for a worker served in this process (tests); it "exits" when it closes `output`.
    var pid: pid_t?
    /// How to stop a worker without a pid (tests); a process is sent SIGKILL.
    var kill: (@Sendable () -> Void)?
}

extension WorkerBridge {
    typealias Launcher = @Sendable () throws(StepWorkerError) -> LaunchedWorker
}

/// One worker as the bridge holds it.
private final class WorkerProcess: Sendable {
    let generation: Int
    let pid: pid_t?
    let output: Int32
    /// The request pipe's write end; -1 once closed (never written after, so a reused descriptor is never hit).
    private let input: Mutex<Int32>
    /// Whether the process was reaped: its pid may then belong to another process and is never signalled.
    private let reaped = Mutex(false)
    private let stopper: (@Sendable () -> Void)?

    init(generation: Int, _ launched: LaunchedWorker) {
        self.generation = generation
        pid = launched.pid
        output = launched.output
        input = Mutex(launched.input)
        stopper = launched.kill
    }

    /// Writes a frame; false when the worker does not take it (it exits, or its input was closed).
    func send(_ frame: [UInt8]) -> Bool {
        input.withLock { fd in fd >= 0 && WorkerIO.writeAll(fd, frame) }
    }

    /// End of file for the worker: it finishes its steps and exits.
    func closeInput() {
        input.withLock { fd in
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }

    func kill() {
        guard let pid else {
            stopper?()
            return
        }
        reaped.withLock { reaped in
            if !reaped { _ = Glibc.kill(pid, SIGKILL) }
        }
    }

    /// Waits for the process to exit and reaps it: `status N` or `signal S`.
    func reap() -> String {
        guard let pid else { return "its output closed" }
        // Wait without reaping, then reap under the lock `kill` takes, so it never signals a recycled pid.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
        return reaped.withLock { reaped in
            var status: Int32 = 0
            let result = waitpid(pid, &status, 0)
            reaped = true
            guard result == pid else { return "status unknown" }
            if status & 0x7F == 0 { return "status \((status >> 8) & 0xFF)" }
            return "signal \(status & 0x7F)"
        }
    }
}

private struct State {
    /// The worker new steps go to.
    var current: Int?
    /// Workers started and not yet reaped, by generation.
    var workers: [Int: Entry] = [:]
    var generations = 0
    var shutDown = false

    /// The worker running this call of the step.
    func generation(of key: StepKey, call: Call) -> Int? {
        workers.first { $0.value.slots[key]?.call === call }?.key
    }
}

private struct Entry {
    let process: WorkerProcess
    var slots: [StepKey: Slot] = [:]
    /// Since when no step is in flight; nil while one is.
    var idleSince: ContinuousClock.Instant? = .now
    /// Killed by the bridge (a cancelled step not handed back, shutdown): its steps are handed back, not failed.
    var killed = false
    /// Why its replies stopped being read.
    var damage: StepWorkerError?
}

/// A step in flight in a worker.
private struct Slot {
    let call: Call
    /// The agent's lease on the step, renewed in the worker every `renewInterval`.
    let lease: StepLease
    let continuation: CheckedContinuation<StepOutput, any Error>
    /// The `run` frame is written: a `cancel` may follow it.
    var sent = false
    var cancelled = false
}

/// One call of `run`, which its cancellation handler finds it by.
private final class Call: Sendable {
    let cancelled = Atomic(false)
}

/// A value handed from one thread to another that waits for it (the spawning thread to the step that needs the
/// worker); a condition variable, as nothing in the standard library waits on a thread.
private final class Handoff<Value: Sendable>: @unchecked Sendable {  // `value` is guarded by `mutex`
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var value: Value?

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func put(_ value: Value) {
        pthread_mutex_lock(mutex)
        self.value = value
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    func take() -> Value {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while value == nil { pthread_cond_wait(condition, mutex) }
        return value!
    }
}
