import ArgumentParser
import Coordinator
import Dispatch
import Foundation
import Protocol
import ShoalSupport

struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Follow a workflow until it ends; exit 0 when it succeeded, 1 otherwise.",
        discussion: HelpExamples.discussion(
            """
            Shows the workflow as `create` does (the live table on a terminal, a line per step otherwise), then its \
            summary. With --coordinator it follows that coordinator's workflow from any host; without, the journal \
            of an embedded run in -d DIR. Ctrl-C stops watching; the workflow goes on.
            """, HelpExamples.watch))

    @Argument(help: "The workflow id.", completion: .workflowIDs) var workflow: String
    @OptionGroup var source: SourceOptions
    @Option(help: "Give up after this long (e.g. 30m); watches until the workflow ends by default.")
    var timeout: ShoalDuration?
    @OptionGroup var view: ProgressOptions

    func validate() throws {
        try checkWorkflowID(workflow)
        try timeout?.validate(in: .milliseconds(100) ... ShoalDuration.maximum, option: "--timeout")
    }

    func run() async throws {
        try await WorkflowWatch(workflow: workflow, source: source, view: view, timeout: timeout?.duration).run()
    }
}

/// `shoal watch` and `shoal status -w`: follows a workflow with the progress display until it ends, then prints
/// its summary and exits as `wait` does (0 succeeded, 1 otherwise).
struct WorkflowWatch: Sendable {
    var workflow: String
    var source: SourceOptions
    var view: ProgressOptions
    var timeout: Duration?

    /// How often the journal of an embedded run is read again.
    static let pollInterval = 0.2
    /// A workflow still `running` in a journal that no process has held open this long is not being run.
    static let unownedGrace: Duration = .seconds(5)

    func run() async throws {
        let display = ProgressDisplay(style: view.style())
        let workflow = workflow
        let signals = Self.stopOnSignal(display, workflow: workflow)
        defer { withExtendedLifetime(signals) {} }
        display.following()
        let final: WorkflowSnapshot
        do {
            if let coordinator = source.coordinator {
                let limit = timeout
                final = try await firstOf(
                    {
                        try await source.withClient(coordinator) { client in
                            try display.follow(client, workflow: workflow, eventsPort: nil, timeout: limit)
                        }
                    },
                    {
                        guard let limit else { return }
                        try await Task.sleep(for: limit)
                        throw ShoalError(
                            .timeout, "workflow \(workflow) did not finish within \(ShoalDuration(limit)), or "
                                + "\(coordinator) did not answer")
                    })
            } else {
                let watch = self
                final = try await runBlocking { try watch.followJournal(display) }
            }
        } catch let error as ShoalError {
            display.finish()
            fail(error.description)
        }
        display.summary(final, output: source.coordinator == nil ? source.output : nil)
        if final.state != .succeeded { throw ExitCode.failure }
    }

    /// Reads the journal of the output directory every `pollInterval` until the workflow ends, the timeout
    /// passes, or nothing has held the journal open for `unownedGrace` while the workflow is still running (a
    /// `create` that was killed: nothing will end it).
    func followJournal(_ display: ProgressDisplay) throws -> WorkflowSnapshot {
        let (journal, first) = try source.local(workflow)
        let deadline = timeout.map { ContinuousClock.now + $0 }
        var latest = first
        show(latest, journal: journal, display: display)
        var unownedSince: ContinuousClock.Instant?
        var probed = ContinuousClock.now
        while !latest.state.isFinished {
            if let deadline, ContinuousClock.now >= deadline {
                throw ShoalError(
                    .timeout,
                    "workflow \(workflow) did not finish within \(ShoalDuration(timeout!)); it is still running")
            }
            Thread.sleep(forTimeInterval: Self.pollInterval)
            guard let current = try journal.workflow(workflow) else {
                throw ShoalError(.notFound, "workflow \(workflow) is gone from the journal of \(source.output)")
            }
            if current.revision != latest.revision || current.state != latest.state {
                latest = current
                show(latest, journal: journal, display: display)
                unownedSince = nil
            } else if ContinuousClock.now - probed < .seconds(1) {
                continue
            } else if !Self.isHeld(journal.path + ".lock") {
                probed = ContinuousClock.now
                let since = unownedSince ?? ContinuousClock.now
                unownedSince = since
                if ContinuousClock.now - since >= Self.unownedGrace {
                    throw ShoalError(
                        .notFound,
                        "workflow \(workflow) is still running in the journal of \(source.output), but no shoal "
                            + "runs it (its create was stopped); resume it with: shoal resume \(workflow) -o "
                            + source.output)
                }
            } else {
                probed = ContinuousClock.now
                unownedSince = nil
            }
        }
        return latest
    }

    private func show(_ snapshot: WorkflowSnapshot, journal: Journal, display: ProgressDisplay) {
        display.update(snapshot)
        for step in display.stepsToLog(snapshot) {
            if let logs = try? journal.stepLogs(of: snapshot, step: step) { display.printLogs(logs) }
        }
    }

    /// Whether a process holds the `flock` of an `OwnerLock` file. Probed with a shared lock taken and dropped at
    /// once, never written; at most once a second, while the journal shows no change.
    static func isHeld(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var result: Int32
        repeat { result = flock(fd, LOCK_SH | LOCK_NB) } while result != 0 && errno == EINTR
        if result == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return errno == EWOULDBLOCK
    }

    /// Ctrl-C or SIGTERM: the last frame stays, one line says the workflow goes on, exit 128+signal.
    private static func stopOnSignal(_ display: ProgressDisplay, workflow: String) -> [DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                display.finish()
                FileDescriptorIO.printError(
                    "\nstopped watching \(workflow); it goes on (`shoal status \(workflow)` shows it)\n")
                exit(128 + number)
            }
            source.resume()
            return source
        }
    }
}
