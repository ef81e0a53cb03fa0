import Foundation
import Logging
import Synchronization
import Testing

@testable import AgentRuntime
import ShoalCore
@testable import Protocol

/// The bridge against a step worker whose serving loop runs in this process, on real pipes.
@Suite struct WorkerBridgeTests {
    @Test func aStepRunInTheWorkerReturnsWhatTheHandlerReturns() async throws {
        let workers = InProcessWorkers()
        let bridge = workers.bridge()
        let context = stepContext(
            "echo", params: ["n": .integer(7)], artifacts: [Artifact(name: "a", path: nil, data: Data([0, 1, 255]))])
        let direct = try await ScriptedHandler().run(context)
        #expect(try await bridge.run(context) == direct)
        #expect(workers.launches == 1)
        await bridge.shutdown()
    }

    @Test func aFailedStepThrowsTheHandlersTextUnchanged() async throws {
        let bridge = InProcessWorkers().bridge()
        do {
            _ = try await bridge.run(stepContext("fail"))
            Issue.record("the step did not fail")
        } catch {
            #expect(error is WorkerStepFailure)
            #expect("\(error)" == "boom: fail: exit status 3")
        }
        // The worker is still the same one, and serves the next step.
        #expect(try await bridge.run(stepContext("echo")).summary == "w/echo#1")
        await bridge.shutdown()
    }

    @Test func aStepThatLostItsLeaseInTheWorkerIsHandedBack() async throws {
        let bridge = InProcessWorkers().bridge()
        await #expect(throws: LeaseLost.self) { try await bridge.run(stepContext("lose")) }
        await bridge.shutdown()
    }

    @Test func twoStepsAtOnceShareOneWorker() async throws {
        let workers = InProcessWorkers()
        let bridge = workers.bridge()
        async let first = bridge.run(stepContext("pair-1"))
        async let second = bridge.run(stepContext("pair-2"))
        let summaries = try await [first.summary, second.summary]
        #expect(summaries == ["together", "together"])
        #expect(workers.launches == 1)
        await bridge.shutdown()
    }

    @Test func cancellingAStepRevokesItsLeaseInTheWorker() async throws {
        let workers = InProcessWorkers()
        let bridge = workers.bridge(cancelGrace: .seconds(20))
        let step = Task { try await bridge.run(stepContext("wait")) }
        #expect(await eventually { workers.handler.started("wait") })
        step.cancel()
        await #expect(throws: LeaseLost.self) { try await step.value }
        // Handed back by the worker, within the grace after which it would have been killed.
        #expect(workers.kills == 0)
        #expect(try await bridge.run(stepContext("echo")).summary == "w/echo#1")
        #expect(workers.launches == 1)
        await bridge.shutdown()
    }

    /// The worker's lease is the agent's: renewed there while the agent hears from the coordinator, and running out
    /// with it when the agent stops hearing (frozen), even though nobody cancels the step.
    @Test func theWorkersLeaseFollowsTheAgentsAndRunsOutWithIt() async throws {
        let workers = InProcessWorkers()
        let bridge = workers.bridge()
        // Windows far above the 250 ms between renewals, and renewals from a thread of their own: a loaded
        // machine's parallel test run can stall the worker's tasks for seconds.
        let window = Duration.seconds(6)
        let lease = StepLease(window: window)
        var context = stepContext("wait-lease")
        context.lease = lease
        // The agent hears from the coordinator: its lease is renewed from the start, until it "freezes".
        let renewing = Locked(true)
        let renewerDone = Locked(false)
        Threads.start(name: "test-renewer") {
            while renewing.value {
                lease.renew(window: window)
                usleep(50_000)
            }
            renewerDone.value = true
        }
        let ended = Atomic(false)
        let step = Task {
            defer { ended.store(true, ordering: .sequentiallyConsistent) }
            return try await bridge.run(context)
        }
        #expect(await eventually(.seconds(30)) { workers.handler.started("wait-lease") })
        // More than a window passes while it is renewed: the step still holds its lease in the worker.
        let started = ContinuousClock.now
        while ContinuousClock.now - started < window + .seconds(2) { try await Task.sleep(for: .milliseconds(50)) }
        let endedWhileRenewed = ended.load(ordering: .sequentiallyConsistent)
        #expect(!endedWhileRenewed, "the step lost its lease in the worker while renewed")
        // Then the renewals stop (a frozen agent): the worker's lease lapses soon after the agent's (its slack
        // later), and the step is handed back without anyone cancelling it.
        renewing.value = false
        #expect(await eventually { renewerDone.value })
        await #expect(throws: LeaseLost.self) { try await step.value }
        #expect(lease.remaining == nil)
        await bridge.shutdown()
    }

    @Test func aStepCancelledBeforeItStartsNeverReachesTheWorker() async throws {
        let workers = InProcessWorkers()
        let bridge = workers.bridge()
        let step = Task {
            while !Task.isCancelled { await Task.yield() }
            return try await bridge.run(stepContext("echo"))
        }
        step.cancel()
        await #expect(throws: LeaseLost.self) { try await step.value }
        #expect(workers.handler.started("echo") == false)
        await bridge.shutdown()
    }

    @Test func aWorkerThatIgnoresACancelIsKilledAndItsStepsHandedBack() async throws {
        let workers = InProcessWorkers()
        let bridge = workers.bridge(cancelGrace: .milliseconds(200))
        let stubborn = Task { try await bridge.run(stepContext("stubborn")) }
        let bystander = Task { try await bridge.run(stepContext("wait-bystander")) }
        #expect(await eventually { workers.handler.started("stubborn") && workers.handler.started("wait-bystander") })
        stubborn.cancel()
        await #expect(throws: LeaseLost.self) { try await stubborn.value }
        // The other step of the killed worker did nothing wrong: handed back, not failed.
        await #expect(throws: LeaseLost.self) { try await bystander.value }
        #expect(workers.kills == 1)
        #expect(try await bridge.run(stepContext("echo")).summary == "w/echo#1")
        #expect(workers.launches == 2)
        workers.handler.release()
        await bridge.shutdown()
    }

    @Test func aWorkerGoneWithAStepInFlightFailsItAndTheNextStepGetsANewOne() async throws {
        let workers = InProcessWorkers()
        let bridge = workers.bridge()
        let step = Task { try await bridge.run(stepContext("stubborn")) }
        #expect(await eventually { workers.handler.started("stubborn") })
        workers.crash()
        do {
            _ = try await step.value
            Issue.record("the step did not fail")
        } catch let error as StepWorkerError {
            #expect(error.code == .workerExited)
            #expect(error.description == "the step worker exited (its output closed)")
        }
        #expect(try await bridge.run(stepContext("echo")).summary == "w/echo#1")
        #expect(workers.launches == 2)
        workers.handler.release()
        await bridge.shutdown()
    }

    @Test func anIdleWorkerIsStoppedAndTheNextStepStartsAnother() async throws {
        let workers = InProcessWorkers()
        let bridge = workers.bridge(idleTimeout: .milliseconds(200))
        // (Counted by launches: the worker may already be retired when `run` returns on a loaded machine.)
        #expect(try await bridge.run(stepContext("echo")).summary == "w/echo#1")
        #expect(workers.launches == 1)
        // Its input closed, the serving loop returned and the bridge forgot the worker.
        #expect(await eventually { workers.served == 1 && bridge.liveWorkers == 0 })
        #expect(bridge.workerGeneration == nil)
        #expect(try await bridge.run(stepContext("echo")).summary == "w/echo#1")
        #expect(workers.launches == 2)
        await bridge.shutdown()
    }

    @Test func aBusyWorkerIsNotStoppedForIdleness() async throws {
        let workers = InProcessWorkers()
        let bridge = workers.bridge(idleTimeout: .milliseconds(100))
        let step = Task { try await bridge.run(stepContext("stubborn")) }
        #expect(await eventually { workers.handler.started("stubborn") })
        // Several idle timeouts pass with the step in flight: the worker stays.
        let until = ContinuousClock.now + .milliseconds(500)
        while ContinuousClock.now < until { try await Task.sleep(for: .milliseconds(50)) }
        #expect(workers.served == 0)
        workers.handler.release()
        #expect(try await step.value.summary == "released")
        #expect(workers.launches == 1)
        await bridge.shutdown()
    }

    @Test func shutdownLetsRunningStepsFinishThenRefusesNewOnes() async throws {
        let workers = InProcessWorkers()
        let bridge = workers.bridge()
        let step = Task { try await bridge.run(stepContext("stubborn")) }
        #expect(await eventually { workers.handler.started("stubborn") })
        let stopping = Task { await bridge.shutdown(timeout: .seconds(20)) }
        workers.handler.release()
        #expect(try await step.value.summary == "released")
        await stopping.value
        #expect(workers.served == 1)
        do {
            _ = try await bridge.run(stepContext("echo"))
            Issue.record("a step ran after shutdown")
        } catch let error as StepWorkerError {
            #expect(error.code == .shutDown)
        }
    }

    @Test func shutdownKillsAWorkerThatDoesNotFinishInTimeAndHandsItsStepsBack() async throws {
        let workers = InProcessWorkers()
        let bridge = workers.bridge()
        let step = Task { try await bridge.run(stepContext("stubborn")) }
        #expect(await eventually { workers.handler.started("stubborn") })
        await bridge.shutdown(timeout: .milliseconds(200))
        await #expect(throws: LeaseLost.self) { try await step.value }
        #expect(workers.kills == 1)
        workers.handler.release()
    }

    @Test func aDamagedReplyFailsTheStepWithoutATrap() async throws {
        // A "worker" that answers any request with a frame whose body is not JSON.
        let bridge = WorkerBridge(idleTimeout: .seconds(60), cancelGrace: .seconds(5), logger: Logger(label: "test")) {
            () throws(StepWorkerError) -> LaunchedWorker in
            let requests = try WorkerIO.pipe()
            let replies = try WorkerIO.pipe()
            Thread.detachNewThread {
                var buffer = [UInt8](repeating: 0, count: 4096)
                _ = WorkerIO.read(requests.read, into: &buffer)
                _ = WorkerIO.writeAll(replies.write, [0, 0, 0, 5] + Array("hello".utf8))
                close(replies.write)
                while WorkerIO.read(requests.read, into: &buffer) > 0 {}
                close(requests.read)
            }
            return LaunchedWorker(input: requests.write, output: replies.read, pid: nil, kill: nil)
        }
        do {
            _ = try await bridge.run(stepContext("echo"))
            Issue.record("a damaged reply was accepted")
        } catch let error as StepWorkerError {
            #expect(error.code == .malformedFrame)
            #expect(error.description.hasPrefix("the step worker's reply was damaged: damaged step worker frame"))
        }
        await bridge.shutdown()
    }

    @Test func aWorkerThatCannotStartFailsTheStepWithOneLine() async throws {
        let bridge = WorkerBridge(
            command: ["/nonexistent/shoal", "agent-worker", "docs"], idleTimeout: .seconds(1),
            logger: Logger(label: "test"))
        do {
            _ = try await bridge.run(stepContext("echo"))
            Issue.record("the step ran")
        } catch let error as StepWorkerError {
            #expect(error.code == .spawnFailed)
            #expect(error.description == "cannot start the step worker '/nonexistent/shoal': No such file or directory")
        }
        #expect(bridge.liveWorkers == 0)
    }

    @Test func theWorkerHandsItsStepsBackOnADamagedRequest() async throws {
        let handler = ScriptedHandler()
        let requests = try WorkerIO.pipe()
        let replies = try WorkerIO.pipe()
        defer {
            for fd in [requests.read, requests.write, replies.read, replies.write] { close(fd) }
        }
        let serving = Task {
            try await StepWorker.serve(
                handler: handler, input: requests.read, output: replies.write, logger: Logger(label: "test"))
        }
        let run = WorkerRequest.run(
            WorkerRun(
                key: StepKey(workflow: "w", step: "wait", attempt: 1), assignment: stepContext("wait").assignment,
                artifacts: [], agent: "a"))
        #expect(WorkerIO.writeAll(requests.write, try WorkerFrame.encode(run)))
        #expect(await eventually { handler.started("wait") })
        #expect(WorkerIO.writeAll(requests.write, [0xFF, 0xFF, 0xFF, 0xFF]))
        do {
            try await serving.value
            Issue.record("a damaged request was accepted")
        } catch let error as StepWorkerError {
            #expect(error.code == .frameTooLarge)
        }
        var reader = WorkerFrameReader(fd: replies.read)
        let body = try #require(try reader.next())
        #expect(
            try WorkerFrame.decode(WorkerReply.self, from: body)
                == .failed(
                    key: StepKey(workflow: "w", step: "wait", attempt: 1),
                    message: "lease on w/wait#1 lost; the step was given to another agent", handedBack: true))
    }
}

// MARK: - Support

private func stepContext(_ step: String, params: [String: JSONValue] = [:], artifacts: [Artifact] = []) -> StepContext {
    StepContext(
        key: StepKey(workflow: "w", step: step, attempt: 1),
        assignment: StepAssignment(role: .docs, request: WorkflowRequest(), params: params, inputs: [:], artifacts: []),
        artifacts: artifacts, agentID: "docs-test-1", logger: Logger(label: "test"))
}

/// Waits for `condition` with a deadline; whether it came true.
private func eventually(_ timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return true
}

private struct ScriptedFailure: Error, CustomStringConvertible {
    var description: String
}

/// A handler whose behaviour is its step's name: `echo`, `fail`, `lose`, `wait*` (until its lease is lost),
/// `stubborn` (until released, deaf to cancellation) and `pair-*` (until two run at once).
private final class ScriptedHandler: StepHandler {
    private let state = Mutex<(started: Set<String>, pairs: Int, released: Bool)>(([], 0, false))

    func started(_ step: String) -> Bool { state.withLock { $0.started.contains(step) } }
    func release() { state.withLock { $0.released = true } }

    func run(_ context: StepContext) async throws -> StepOutput {
        state.withLock { _ = $0.started.insert(context.key.step) }
        let step = context.key.step
        switch step {
        case "echo":
            return StepOutput(
                summary: "\(context.key)", values: context.assignment.params, artifacts: context.artifacts,
                log: [context.agentID])
        case "fail":
            throw ScriptedFailure(description: "boom: \(step): exit status 3")
        case "lose":
            throw LeaseLost(key: context.key)
        case let name where name.hasPrefix("wait"):
            let deadline = ContinuousClock.now + .seconds(30)
            while context.lease.isHeld && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(2))
            }
            try context.checkLease()
            return StepOutput(summary: "never lost")
        case "stubborn":
            // A task of its own, which the step's cancellation does not reach.
            await Task.detached { [self] in
                let deadline = ContinuousClock.now + .seconds(30)
                while !state.withLock({ $0.released }) && ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(2))
                }
            }.value
            return StepOutput(summary: "released")
        default:
            state.withLock { $0.pairs += 1 }
            let deadline = ContinuousClock.now + .seconds(10)
            while state.withLock({ $0.pairs }) < 2 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(2))
            }
            return StepOutput(summary: state.withLock { $0.pairs } >= 2 ? "together" : "alone")
        }
    }
}

/// Step workers served by `StepWorker.serve` in this process, one per launch, on pipes.
private final class InProcessWorkers: Sendable {
    let handler = ScriptedHandler()
    private let counts = Mutex<(launches: Int, served: Int, kills: Int)>((0, 0, 0))
    /// The reply pipe's write end of the latest worker, while its serving loop runs.
    private let latest = Mutex<Int32?>(nil)

    var launches: Int { counts.withLock { $0.launches } }
    var served: Int { counts.withLock { $0.served } }
    var kills: Int { counts.withLock { $0.kills } }

    func bridge(idleTimeout: Duration = .seconds(60), cancelGrace: Duration = .seconds(5)) -> WorkerBridge {
        WorkerBridge(idleTimeout: idleTimeout, cancelGrace: cancelGrace, logger: Logger(label: "test")) {
            () throws(StepWorkerError) -> LaunchedWorker in try self.launch()
        }
    }

    /// The latest worker's reply pipe goes to /dev/null, as when it dies: the bridge sees its output end.
    func crash() {
        latest.withLock { worker in
            guard let fd = worker else { return }
            crash(fd)
        }
    }

    /// Under `latest`'s lock, so the descriptor is still the worker's.
    private func crash(_ fd: Int32) {
        let null = open("/dev/null", O_WRONLY)
        dup2(null, fd)
        close(null)
    }

    private func launch() throws(StepWorkerError) -> LaunchedWorker {
        let requests = try WorkerIO.pipe()
        let replies = try WorkerIO.pipe()
        counts.withLock { $0.launches += 1 }
        latest.withLock { $0 = replies.write }
        let handler = handler
        Task {
            try? await StepWorker.serve(
                handler: handler, input: requests.read, output: replies.write, logger: Logger(label: "test-worker"))
            latest.withLock { worker in
                if worker == replies.write { worker = nil }
                close(requests.read)
                close(replies.write)
            }
            counts.withLock { $0.served += 1 }
        }
        return LaunchedWorker(
            input: requests.write, output: replies.read, pid: nil,
            kill: { [self] in
                counts.withLock { $0.kills += 1 }
                latest.withLock { worker in
                    if worker == replies.write { crash(replies.write) }
                }
            })
    }
}
