import Coordinator
import Foundation
import Protocol
import ShoalSupport
import Testing

extension FaultSuites {
    /// The engine under load and under faults, with real processes: many
    /// steps at once, agent kills with the default attempts, a journal that
    /// cannot be written.
    @Suite(.serialized) struct EngineFaultTests {
        private func count(_ text: String, in file: String) -> Int {
            let contents = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            return contents.components(separatedBy: text).count - 1
        }

        /// 2000 independent no-op steps over 8 agents: no agent reconnects
        /// (heartbeats are never starved by the burst) and no step needs a
        /// second attempt (its ack deadline starts when it is sent).
        @Test func twoThousandIndependentStepsNeedNoReconnectAndNoSecondAttempt() throws {
            let bus = ProcessBus()
            defer { bus.stopAll() }
            try bus.startCoordinator()
            for index in 1...8 { try bus.startAgent(.bench, id: "bench-\(index)", capacity: 8) }
            let client = try bus.client()
            let workflow = try client.submit(
                WorkflowRequest(), planner: .bench, params: ["shape": "independent", "steps": 2000]
            ).workflow
            let final = try #require(try bus.waitFinished([workflow], timeout: .seconds(180), client: client).first)
            #expect(final.state == .succeeded, "\(final.error ?? "")")
            #expect(final.steps.count == 2001)
            let retried = final.steps.filter { $0.attempt != 1 }
            #expect(retried.isEmpty, "\(retried.count) steps needed more than one attempt, e.g. \(retried.first?.name ?? "")")
            let log = bus.directory + "/logs/coordinator.log"
            #expect(count("agent joined", in: log) == 8, "an agent joined again (it was declared dead)")
            #expect(count("agent lost", in: log) == 0)
            #expect(count("step requeued", in: log) == 0)
        }

        /// About 30 agent kills across 10 workflows, 2 agents per role, and
        /// the default 3 attempts: a step in flight on a killed agent gets a
        /// new attempt that is not charged, so every workflow succeeds, and
        /// none runs a step twice.
        @Test func thirtyAgentKillsWithDefaultAttemptsFailNoWorkflow() throws {
            let bus = ProcessBus(maxAttempts: 3)
            defer { bus.stopAll() }
            try bus.startCoordinator()
            for role in Role.allCases {
                for index in 1...2 { try bus.startAgent(role, id: "\(role.rawValue)-\(index)") }
            }
            let client = try bus.client()
            var workflows: [String] = []
            for _ in 0..<10 { workflows.append(try client.submit(demoRequest(delayMilliseconds: 300)).workflow) }
            var kills = 0
            var generator = SystemRandomNumberGenerator()
            let deadline = ContinuousClock.now + .seconds(150)
            while kills < 30 && ContinuousClock.now < deadline {
                let snapshots = try workflows.map { try client.status($0) }
                if snapshots.allSatisfy({ $0.state.isFinished }) { break }
                let busy = snapshots.flatMap { $0.steps }.filter { $0.state == .running }.compactMap(\.agent)
                if let agent = busy.randomElement(using: &generator), let role = bus.agents[agent]?.role {
                    bus.signal(agent, SIGKILL)
                    kills += 1
                    try bus.startAgent(role, id: agent)
                }
                Thread.sleep(forTimeInterval: 0.25)
            }
            let final = try bus.waitFinished(workflows, timeout: .seconds(120), client: client)
            #expect(kills >= 25, "only \(kills) kills happened")
            for workflow in final {
                #expect(workflow.state == .succeeded, "\(workflow.id): \(workflow.error ?? "")")
            }
            let executions = bus.executions()
            for workflow in final {
                for step in workflow.steps {
                    let runs = executions["\(workflow.id)/\(step.name)"] ?? 0
                    #expect(runs == 1, "\(workflow.id)/\(step.name) ran \(runs) times")
                }
            }
        }

        /// A journal that cannot be written (a file size limit stands in for
        /// a full disk): the coordinator says so in its log and exits
        /// non-zero within seconds, rather than hang.
        @Test func aJournalThatCannotBeWrittenStopsTheCoordinatorWithAClearLine() throws {
            let directory = NSTemporaryDirectory() + "shoal-full-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            // 400 blocks of 512 bytes: room to start, not for long.
            process.arguments = [
                "-c", #"ulimit -f 400 && exec "$0" "$@""#, ProcessBus.executable, "coordinator", "--insecure",
                "--control", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*", "--journal",
                directory + "/journal.sqlite", "--dir", directory + "/output",
            ]
            let output = Pipe()
            let errors = Pipe()
            process.standardOutput = output
            process.standardError = errors
            try process.run()
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            var ready = ""
            let startDeadline = Date().addingTimeInterval(15)
            while !ready.contains("\n") && Date() < startDeadline {
                guard let chunk = FileDescriptorIO.readSome(output.fileHandleForReading.fileDescriptor), !chunk.isEmpty
                else { break }
                ready += String(decoding: chunk, as: UTF8.self)
            }
            let control = try #require(
                ready.split(separator: " ").first { $0.hasPrefix("control=") }.map { String($0.dropFirst(8)) })
            let client = try CoordinatorClient(endpoint: control, curve: nil)
            client.replyTimeout = .milliseconds(500)
            client.attempts = 2
            var request = WorkflowRequest()
            request.clusterName = String(repeating: "a", count: 63)
            var firstFailure: ContinuousClock.Instant?
            let deadline = ContinuousClock.now + .seconds(60)
            while process.isRunning && ContinuousClock.now < deadline {
                do {
                    _ = try client.submit(request)
                } catch {
                    firstFailure = firstFailure ?? ContinuousClock.now
                    if let firstFailure, ContinuousClock.now - firstFailure > .seconds(10) { break }
                }
            }
            let stopped = ContinuousClock.now
            while process.isRunning && ContinuousClock.now - stopped < .seconds(5) { Thread.sleep(forTimeInterval: 0.05) }
            #expect(!process.isRunning, "the coordinator still runs with a journal it cannot write")
            guard !process.isRunning else { return }
            #expect(process.terminationStatus != 0)
            #expect(process.terminationReason == .exit, "it exits, it is not killed by a signal")
            let log = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(log.contains("journal write failed, stopping"), "\(log.suffix(2000))")
            #expect(log.contains("cannot write the journal \(directory)/journal.sqlite"), "\(log.suffix(2000))")
        }
    }
}
