import Foundation
import Logging
import Protocol
import Testing

@testable import AgentRuntime
@testable import Agents

/// The real `shoal agent-worker` process, driven by a `WorkerBridge` as a lean agent drives it.
@Suite(.serialized) struct AgentWorkerProcessTests {
    static let logger = Logger(label: "test")

    static var executable: String {
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let besideTests = Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("shoal").path
        return [besideTests, packageRoot + "/.build/debug/shoal"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        } ?? besideTests
    }

    static func worker(_ role: String, idleTimeout: Duration = .seconds(60)) -> WorkerBridge {
        let directory = NSTemporaryDirectory() + "shoal-worker-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return WorkerBridge(
            command: [executable, "agent-worker", role, "--work-dir", directory, "--log-level", "warning"],
            idleTimeout: idleTimeout, logger: logger)
    }

    static func plan(_ workflow: String, request: WorkflowRequest = WorkflowRequest()) -> StepContext {
        StepContext(
            key: StepKey(workflow: workflow, step: "plan", attempt: 1),
            assignment: StepAssignment(role: .planner, request: request, params: [:], inputs: [:], artifacts: []),
            agentID: "planner-test-1", logger: logger)
    }

    /// A plan step that lasts a minute (demo mode's simulated delay).
    static func slowPlan(_ workflow: String) -> StepContext {
        var request = WorkflowRequest()
        request.simDelayMilliseconds = 60_000
        return plan(workflow, request: request)
    }

    static func inProcess(_ role: Role) throws -> any StepHandler {
        try AgentHandlers.make(role: role, options: AgentOptions(workDirectory: NSTemporaryDirectory()), logger: logger)
    }

    static func isGone(_ pid: pid_t) -> Bool {
        kill(pid, 0) != 0 && errno == ESRCH
    }

    static func eventually(_ timeout: Duration = .seconds(20), _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    @Test func theWorkerAnswersAStepAsTheHandlerInTheAgentDoes() async throws {
        let bridge = Self.worker("planner")
        let context = Self.plan("k3s-dev-worker")
        let expected = try await Self.inProcess(.planner).run(context)
        #expect(try await bridge.run(context) == expected)
        let pid = try #require(bridge.workerProcessID)
        #expect(!Self.isGone(pid))
        // A failure reads the same as in the agent's own process.
        var invalid = WorkflowRequest()
        invalid.nodes = 0
        var local: String?
        do { _ = try await Self.inProcess(.planner).run(Self.plan("bad", request: invalid)) } catch {
            local = "\(error)"
        }
        do {
            _ = try await bridge.run(Self.plan("bad", request: invalid))
            Issue.record("an invalid request was planned")
        } catch {
            #expect(error is WorkerStepFailure)
            #expect("\(error)" == local)
        }
        #expect(bridge.workerProcessID == pid)
        await bridge.shutdown()
        #expect(await Self.eventually { Self.isGone(pid) })
    }

    @Test func twoStepsRunAtOnceInOneWorker() async throws {
        let bridge = Self.worker("planner")
        // Two steps arriving together start one worker.
        async let first = bridge.run(Self.plan("one"))
        async let second = bridge.run(Self.plan("two"))
        let outputs = try await [first, second]
        #expect(outputs[0] == outputs[1])
        #expect(bridge.workerGeneration == 1)
        // A step answered while another (a minute long) runs in the same worker.
        let slow = Task { try await bridge.run(Self.slowPlan("slow")) }
        #expect(await Self.eventually { bridge.stepsSent == 1 })
        #expect(try await bridge.run(Self.plan("fast")) == outputs[0])
        #expect(bridge.stepsSent == 1)
        #expect(bridge.workerGeneration == 1)
        slow.cancel()
        await #expect(throws: LeaseLost.self) { try await slow.value }
        await bridge.shutdown()
    }

    @Test func aKilledWorkerFailsItsStepAndTheNextStepRunsInANewOne() async throws {
        let bridge = Self.worker("planner")
        let step = Task { try await bridge.run(Self.slowPlan("slow")) }
        #expect(await Self.eventually { bridge.stepsSent == 1 })
        let first = try #require(bridge.workerProcessID)
        kill(first, SIGKILL)
        do {
            _ = try await step.value
            Issue.record("the step survived its worker")
        } catch let error as StepWorkerError {
            #expect(error.code == .workerExited)
            #expect(error.description == "the step worker exited (signal 9)")
        }
        #expect(try await bridge.run(Self.plan("after")).summary.isEmpty == false)
        let second = try #require(bridge.workerProcessID)
        #expect(second != first)
        await bridge.shutdown()
    }

    @Test func aCancelledStepIsHandedBackByTheWorkerQuickly() async throws {
        let bridge = Self.worker("planner")
        // The worker runs first, so the slow step's frame goes to a worker that is up.
        _ = try await bridge.run(Self.plan("warm"))
        let pid = try #require(bridge.workerProcessID)
        let step = Task { try await bridge.run(Self.slowPlan("slow")) }
        // Its frame is in the worker's pipe: the cancel follows it there.
        #expect(await Self.eventually { bridge.stepsSent == 1 })
        step.cancel()
        await #expect(throws: LeaseLost.self) { try await step.value }
        // Within the bridge's 5 s grace: the worker handed the step back and was not killed.
        #expect(bridge.workerProcessID == pid)
        #expect(!Self.isGone(pid))
        await bridge.shutdown()
    }

    @Test func anIdleWorkerIsReaped() async throws {
        // Long enough for the pid to be read after the step on a loaded machine.
        let bridge = Self.worker("planner", idleTimeout: .seconds(3))
        _ = try await bridge.run(Self.plan("once"))
        let pid = try #require(bridge.workerProcessID)
        #expect(await Self.eventually { Self.isGone(pid) })
        #expect(bridge.workerProcessID == nil)
        #expect(bridge.liveWorkers == 0)
        await bridge.shutdown()
    }

    @Test func theWorkerDiesWithItsParent() async throws {
        // A shell starts the worker with a pipe of ours as its standard input, prints its pid, then becomes a
        // sleep; killing that sleep (the worker's parent) must end the worker although its input stays open.
        let parent = Process()
        parent.executableURL = URL(fileURLWithPath: "/bin/sh")
        parent.arguments = [
            "-c",
            "exec 3<&0; \"$0\" agent-worker planner --log-level error --parent-pid $$ <&3 3<&- & "
                + "echo $!; exec sleep 60",
            Self.executable,
        ]
        let input = Pipe()
        let output = Pipe()
        parent.standardInput = input
        parent.standardOutput = output
        try parent.run()
        defer { try? input.fileHandleForWriting.close() }
        let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        let worker = try #require(pid_t(line.trimmingCharacters(in: .whitespacesAndNewlines)))
        // Should the test fail, the worker must not outlive it (it holds this process's standard error).
        defer { if !Self.isGone(worker) { kill(worker, SIGKILL) } }
        #expect(await Self.eventually { Self.command(of: worker)?.contains("agent-worker") == true })
        kill(parent.processIdentifier, SIGKILL)
        parent.waitUntilExit()
        #expect(await Self.eventually { Self.isGone(worker) || Self.isZombie(worker) })
    }

    @Test func aDamagedRequestEndsTheWorkerWithOneLineAndStatus1() async throws {
        for input in [Data("garbage!".utf8), Data([0, 0, 0, 2]) + Data("{}".utf8), Data([0, 0, 0, 9, 1])] {
            let worker = Process()
            worker.executableURL = URL(fileURLWithPath: Self.executable)
            worker.arguments = ["agent-worker", "planner", "--log-level", "critical"]
            let stdin = Pipe()
            let stderr = Pipe()
            worker.standardInput = stdin
            worker.standardError = stderr
            worker.standardOutput = FileHandle.nullDevice
            try worker.run()
            try stdin.fileHandleForWriting.write(contentsOf: input)
            try stdin.fileHandleForWriting.close()
            let text = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            worker.waitUntilExit()
            #expect(worker.terminationStatus == 1, "\(input)")
            #expect(text.hasPrefix("error: "), "\(text)")
            #expect(text.split(separator: "\n").count == 1, "\(text)")
        }
    }

    static func command(of pid: pid_t) -> String? {
        FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map {
            String(decoding: $0.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        }
    }

    static func isZombie(_ pid: pid_t) -> Bool {
        guard let stat = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return false }
        let text = String(decoding: stat, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return false }
        return text[text.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }
}
