import Coordinator
import Foundation
import Protocol
import ShoalSupport
import Testing

/// Processes other than this one whose command line mentions `marker`.
private func shoalProcesses(mentioning marker: String) -> [(pid: Int32, command: String)] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    var found: [(Int32, String)] = []
    for entry in entries {
        guard let pid = Int32(entry), pid != getpid(),
            let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"), !data.isEmpty
        else { continue }
        // A zombie waiting for its parent to reap it has an empty command line: it is not running.
        let command = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        if command.contains(marker) { found.append((pid, command)) }
    }
    return found
}

extension FaultSuites {
    @Suite(.serialized) struct ParentAndLeaseTests {
        /// `shoal create` killed (SIGKILL, nothing to clean up) 0.05-1 s after it started, 21 times: every
        /// coordinator and agent it had started goes with it, however far it got.
        @Test func aKilledCreateLeavesNoOrphans() async throws {
            let root = NSTemporaryDirectory() + "shoal-orphans-\(UUID().uuidString.prefix(8))"
            try SecureFile.createDirectory(root)
            defer { try? FileManager.default.removeItem(atPath: root) }
            var startedChildren = 0
            for run in 1...21 {
                let output = "\(root)/run-\(run)"
                let create = try ChildProcess.start(
                    name: "create-\(run)", executable: ProcessBus.executable,
                    arguments: ["create", "-d", output, "--sim-delay", "2s"], standardOutput: .null,
                    logFile: "\(root)/create-\(run).log")
                try await Task.sleep(for: .milliseconds(Int.random(in: 50...1000)))
                startedChildren += shoalProcesses(mentioning: output).count { $0.pid != create.pid }
                create.send(SIGKILL)
                #expect(create.wait(timeout: .seconds(10)))
            }
            #expect(startedChildren > 0, "some kills came after children had started")
            // Agents hand back what they run and exit; allow them their drain (8 s) and some.
            let deadline = ContinuousClock.now + .seconds(30)
            var left = shoalProcesses(mentioning: root)
            while !left.isEmpty && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                left = shoalProcesses(mentioning: root)
            }
            #expect(left.isEmpty, "orphans: \(left.map { "\($0.pid) \($0.command.prefix(120))" })")
            for process in left { kill(process.pid, SIGKILL) }
        }

        /// An agent frozen (SIGSTOP) past its liveness in the middle of a step, five times: the step moves to
        /// another agent, and the frozen one, woken, finds its lease gone and does not do the work again.
        @Test func aFrozenAgentNeverCompletesAStepThatMovedOn() throws {
            let bus = ProcessBus(maxAttempts: 3)
            defer { bus.stopAll() }
            try bus.startCoordinator()
            for role in Role.allCases { try bus.startAgent(role, id: "\(role.rawValue)-1") }
            try bus.startAgent(.monitoring, id: "monitoring-2")
            let client = try bus.client()
            for run in 1...5 {
                let workflow = try client.submit(demoRequest(delayMilliseconds: 1500)).workflow
                var frozen: String?
                let deadline = ContinuousClock.now + .seconds(60)
                while frozen == nil && ContinuousClock.now < deadline {
                    if let step = try client.status(workflow).step("monitoring"), step.state == .running,
                        let agent = step.agent
                    {
                        bus.signal(agent, SIGSTOP)
                        frozen = agent
                    }
                    Thread.sleep(forTimeInterval: 0.02)
                }
                let stopped = try #require(frozen, "run \(run): the monitoring step started")
                var moved = false
                let moveDeadline = ContinuousClock.now + .seconds(15)
                while !moved && ContinuousClock.now < moveDeadline {
                    if let step = try client.status(workflow).step("monitoring"), step.attempt >= 2,
                        let agent = step.agent, agent != stopped
                    {
                        moved = true
                    }
                    Thread.sleep(forTimeInterval: 0.02)
                }
                #expect(moved, "run \(run): the step went to the other monitoring agent")
                bus.signal(stopped, SIGCONT)
                let final = try bus.waitFinished([workflow], timeout: .seconds(60), client: client)[0]
                #expect(final.state == .succeeded, "run \(run): \(final.error ?? "")")
                #expect(bus.executions()["\(workflow)/monitoring"] == 1, "run \(run): monitoring completed once")
                // The woken agent says it let the step go, and never that it finished it.
                let log = try String(contentsOfFile: "\(bus.directory)/logs/\(stopped).log", encoding: .utf8)
                let lines = log.split(separator: "\n").filter { $0.contains(workflow) }
                #expect(!lines.contains { $0.contains("step ended") }, "run \(run): \(lines)")
                if lines.contains(where: { $0.contains("step started") }) {
                    #expect(lines.contains { $0.contains("lease") || $0.contains("handed back") }, "run \(run): \(lines)")
                } else {
                    // Frozen after its ack, before the step started: it gives up the steps it held as a whole.
                    #expect(log.contains("abandoning its running steps"), "run \(run): \(log.suffix(2000))")
                }
            }
        }
    }
}
