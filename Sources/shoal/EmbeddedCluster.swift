import Coordinator
import Dispatch
import Foundation
import Logging
import Protocol
import ShoalSupport
import ZeroMQ

/// The embedded default of `shoal create`: a coordinator and one process per
/// agent (N for validation) on loopback with ports chosen by the kernel, all
/// stopped when the workflow ends, fails, or the user presses Ctrl-C.
// `children`, `stopping`, `launchFailure` and `interrupted` are guarded by `lock`, `othersReleased` by `launchGate`.
final class EmbeddedCluster: @unchecked Sendable {
    let executable: String
    let output: String
    let validationWorkers: Int
    let logLevel: String
    /// Plain TCP between the children (`create --insecure`); CURVE otherwise.
    let insecure: Bool
    let logger: Logger
    private let lock = NSLock()
    private var children: [ChildProcess] = []
    /// Set by `stopAll`: a child started afterwards is stopped at once.
    private var stopping = false
    /// Guards `othersReleased`: agents not of `firstRoles` start once it is set.
    private let launchGate = NSCondition()
    private var othersReleased = false
    /// Why an agent could not be started; ends the run.
    private var launchFailure: (any Error)?
    /// Set on Ctrl-C or SIGTERM: the children stopping then is no failure of the run, the handler exits.
    private var interrupted = false
    private var signalSources: [DispatchSourceSignal] = []
    /// More arguments for the agents of a role (the monitoring agent's GitOps address, say); set before `run`.
    var agentArguments: [Role: [String]] = [:]
    /// The roles of the workflow's first steps (`create`: planner, infra), started with the coordinator; the other
    /// agents start once `workflowProgressed` sees a step under way. Empty (`resume`): all start at once.
    var firstRoles: Set<Role> = []
    /// Run on Ctrl-C or SIGTERM once every child has stopped, before the exit (marks the workflow interrupted).
    var onInterrupt: @Sendable () -> Void = {}
    /// Run first on Ctrl-C or SIGTERM, before anything is printed (ends the live view).
    var onSignal: @Sendable () -> Void = {}

    init(executable: String, output: String, validationWorkers: Int, logLevel: String, insecure: Bool, logger: Logger) {
        self.executable = executable
        self.output = output
        self.validationWorkers = validationWorkers
        self.logLevel = logLevel
        self.insecure = insecure
        self.logger = logger
    }

    var logDirectory: String { output + "/.shoal/logs" }

    /// Starts everything, runs `body` with the coordinator's endpoints and
    /// the keys to reach it with (nil when insecure), and stops every child
    /// whatever happens. A coordinator that dies meanwhile ends the run at
    /// once with an error naming its log.
    func run<T: Sendable>(_ body: @escaping @Sendable (BoundEndpoints, CurveClientKeys?) async throws -> T)
        async throws -> T
    {
        installSignalHandlers()
        defer { stopAll() }
        try SecureFile.createDirectory(logDirectory, mode: 0o700)
        // In the order a workflow needs them: the docs agent, whose step is the last, after the validation agents.
        var agents: [(role: Role, id: String)] = Role.allCases.filter { $0 != .validation && $0 != .docs }
            .map { ($0, "\($0.rawValue)-1") }
        for index in 1...validationWorkers { agents.append((.validation, "validation-\(index)")) }
        agents.append((.docs, "docs-1"))
        let keys = insecure ? nil : try EmbeddedKeys.make(in: keyDirectory, agents: agents.map(\.id))
        let (coordinator, endpoints) = try await startCoordinator(
            security: keys.map { ["--key", $0.secretFile("coordinator"), "--allow", $0.allowDirectory] }
                ?? ["--insecure"])
        // The agents start while `body` submits, in the order the workflow needs them: the first step waits for its
        // own agent only, not for the last one to start. With `firstRoles`, the others wait until the workflow is
        // under way (`workflowProgressed`), so that on a small machine their start does not hold up the first
        // steps' agents.
        let launches = agents.map { agent in
            let security =
                keys.map { ["--key", $0.secretFile(agent.id), "--coordinator-key", $0.publicFile("coordinator")] }
                ?? ["--insecure"]
            return (
                name: agent.id, first: firstRoles.isEmpty || firstRoles.contains(agent.role),
                arguments: [
                    "agent", agent.role.rawValue, "--coordinator", endpoints.control, "--id", agent.id,
                    "--work-dir", output, "--state-dir", output + "/.shoal/agents", "--exit-with-parent", "--log-level", logLevel,
                    // They live for one workflow: a step worker of their own would only add a process start per agent.
                    "--in-process",
                ] + security + (agentArguments[agent.role] ?? [])
            )
        }
        Thread.detachNewThread { [self] in
            for launch in launches.filter(\.first) + launches.filter({ !$0.first }) {
                if !launch.first {
                    launchGate.lock()
                    while !othersReleased { launchGate.wait() }
                    launchGate.unlock()
                }
                do {
                    guard try start(name: launch.name, arguments: launch.arguments, standardOutput: .null) != nil
                    else { return }
                } catch {
                    lock.withLock { launchFailure = error }
                    return
                }
            }
        }
        let log = logPath("coordinator")
        return try await firstOf(
            { [self] in
                do {
                    return try await body(endpoints, keys?.client)
                } catch {
                    // Ctrl-C stops the coordinator under the client's feet: the signal handler ends the run.
                    while isInterrupted { try await Task.sleep(for: .milliseconds(100)) }
                    throw error
                }
            },
            { [self] in
                while coordinator.isRunning || isInterrupted {
                    if let failure = lock.withLock({ launchFailure }) { throw failure }
                    try await Task.sleep(for: .milliseconds(100))
                }
                throw ShoalError(
                    .unreachable,
                    "the embedded coordinator stopped (\(coordinator.exitDescription)) before the workflow ended; see \(log)")
            })
    }

    private var isInterrupted: Bool { lock.withLock { interrupted } }

    /// Tells the launcher how the workflow stands: the agents not of `firstRoles` start once a step has left
    /// `pending` (an agent has it: the coordinator and that agent are up), once a step of another role is ready to
    /// run (its needs have all succeeded), or once the workflow has ended.
    func workflowProgressed(_ snapshot: WorkflowSnapshot) {
        guard !launchGate.withLock({ othersReleased }) else { return }
        let succeeded = Set(snapshot.steps.filter { $0.state == .succeeded }.map(\.name))
        let underWay = snapshot.steps.contains { step in
            step.state != .pending
                || (!firstRoles.contains(step.role) && step.needs.allSatisfy { succeeded.contains($0) })
        }
        if underWay || snapshot.state != .running { releaseOthers() }
    }

    private func releaseOthers() {
        launchGate.lock()
        othersReleased = true
        launchGate.broadcast()
        launchGate.unlock()
    }

    /// Throwaway keys of this run: `OUTPUT/.shoal/keys` (0700).
    var keyDirectory: String { output + "/.shoal/keys" }

    private func logPath(_ name: String) -> String { "\(logDirectory)/\(name).log" }

    private func startCoordinator(security: [String]) async throws -> (ChildProcess, BoundEndpoints) {
        guard let coordinator = try start(
            name: "coordinator",
            arguments: [
                "coordinator", "--control", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*", "--journal",
                output + "/.shoal/journal.sqlite", "--dir", output, "--exit-with-parent", "--log-level", logLevel,
                "--interrupt-unfinished",
            ] + security,
            standardOutput: .pipe)
        else { throw ShoalError(.launchFailed, "the coordinator was not started: the run is stopping") }
        let fd = coordinator.standardOutput!
        let log = logPath("coordinator")
        let endpoints = try await runBlocking { () throws -> BoundEndpoints in
            var buffer = Data()
            var keepOpen = false
            defer { if !keepOpen { close(fd) } }
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 200) >= 0 || errno == EINTR else { break }
                if poller.revents == 0 {
                    if !coordinator.isRunning { break }
                    continue
                }
                guard let chunk = FileDescriptorIO.readSome(fd), !chunk.isEmpty else { break }
                buffer.append(chunk)
                guard let line = String(decoding: buffer, as: UTF8.self).split(separator: "\n").first(where: { $0.hasPrefix("ready ") })
                else { continue }
                var fields: [String: String] = [:]
                for field in line.split(separator: " ").dropFirst() {
                    let parts = field.split(separator: "=", maxSplits: 1)
                    if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
                }
                if let control = fields["control"], let events = fields["events"] {
                    // The coordinator may still print; the pipe stays open (and drained) for its life.
                    keepOpen = true
                    Thread.detachNewThread { while let more = FileDescriptorIO.readSome(fd), !more.isEmpty {}; close(fd) }
                    return BoundEndpoints(control: control, events: events)
                }
            }
            let why = coordinator.isRunning ? "did not report ready within 20s" : coordinator.exitDescription
            throw ShoalError(.launchFailed, "the coordinator did not start (\(why)); see \(log)")
        }
        return (coordinator, endpoints)
    }

    /// Starts a child, or none once `stopAll` has run (nil).
    private func start(name: String, arguments: [String], standardOutput: ChildProcess.Output) throws -> ChildProcess? {
        guard !lock.withLock({ stopping }) else { return nil }
        let logPath = logPath(name)
        // The log exists before the child does, so an error can always point to it; earlier runs' lines stay.
        let fd = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw ShoalError(.io, "cannot create the log file \(logPath)", cause: String(cString: strerror(errno)))
        }
        close(fd)
        let child = try ChildProcess.start(
            name: name, executable: executable, arguments: arguments + ["--parent-pid", "\(getpid())"],
            standardOutput: standardOutput, logFile: logPath)
        let stopped = lock.withLock { () -> Bool in
            if !stopping { children.append(child) }
            return stopping
        }
        if stopped {
            // `stopAll` ran while this child was being started: it stops here.
            child.send(SIGTERM)
            if !child.wait(timeout: .seconds(10)) {
                child.send(SIGKILL)
                _ = child.wait(timeout: .seconds(5))
            }
            return nil
        }
        logger.debug("child started", metadata: ["name": "\(name)", "pid": "\(child.pid)"])
        return child
    }

    /// SIGTERM to every agent, then, once they are gone, to the coordinator; SIGKILL to any child still there 10 s
    /// after its SIGTERM. The agents go first: a draining agent waits for the coordinator to confirm the results it
    /// sent, and the confirm of a last result can still be on its way when the workflow's end is published (a
    /// coordinator stopped then would drop it, and the agent would wait out its drain timeout).
    func stopAll() {
        let running = lock.withLock { () -> [ChildProcess] in
            stopping = true
            defer { children = [] }
            return children
        }
        releaseOthers()  // the launcher then finds `stopping` and ends
        let coordinators = running.filter { $0.name == "coordinator" }
        stop(running.filter { $0.name != "coordinator" })
        stop(coordinators)
    }

    private func stop(_ group: [ChildProcess]) {
        for child in group { child.send(SIGTERM) }
        let deadline = ContinuousClock.now + .seconds(10)
        for child in group where !child.wait(timeout: max(.zero, deadline - ContinuousClock.now)) {
            logger.warning("child did not stop, killing it", metadata: ["name": "\(child.name)"])
            child.send(SIGKILL)
            _ = child.wait(timeout: .seconds(5))
        }
    }

    /// Ctrl-C or SIGTERM: stop the children, run `onInterrupt`, then exit with 128+signal.
    private func installSignalHandlers() {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [self] in
                onSignal()
                FileDescriptorIO.printError("\ninterrupted: stopping agents and coordinator\n")
                lock.withLock { interrupted = true }
                stopAll()
                onInterrupt()
                fflush(nil)
                exit(128 + signalNumber)
            }
            source.resume()
            signalSources.append(source)
        }
    }
}

/// The result of `main`, unless `watch` throws first; `main` is then left to end on its own (blocking socket code
/// does not notice cancellation, and the caller is about to stop its children and exit anyway).
func firstOf<T: Sendable>(
    _ main: @escaping @Sendable () async throws -> T, _ watch: @escaping @Sendable () async throws -> Void
) async throws -> T {
    let once = OnceBox<T>()
    return try await withCheckedThrowingContinuation { continuation in
        let watchTask = Task {
            do {
                try await watch()
            } catch is CancellationError {
                return
            } catch {
                once.resume(continuation, with: .failure(error))
            }
        }
        Task {
            do { once.resume(continuation, with: .success(try await main())) } catch {
                once.resume(continuation, with: .failure(error))
            }
            watchTask.cancel()
        }
    }
}

/// Resumes a continuation once, whoever comes first.
private final class OnceBox<T: Sendable>: @unchecked Sendable {  // `done` is guarded by `lock`
    private let lock = NSLock()
    private var done = false

    func resume(_ continuation: CheckedContinuation<T, any Error>, with result: Result<T, any Error>) {
        lock.lock()
        let first = !done
        done = true
        lock.unlock()
        if first { continuation.resume(with: result) }
    }
}
