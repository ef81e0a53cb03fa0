import Coordinator
import Foundation
import Protocol
import ShoalSupport
import Testing

extension FaultSuites {
    /// Kills, freezes and restarts real processes in the middle of workflows.
    /// Every loop is bounded in count and time.
    @Suite(.serialized) struct FaultInjectionTests {
        /// Kills the agent of each role in the middle of a step, five times per
        /// role, and starts a replacement under the same id each time.
        @Test func agentsKilledMidStepAreReplacedAndNoStepRunsTwice() throws {
            let bus = ProcessBus()
            defer { bus.stopAll() }
            try bus.startCoordinator()
            var generation: [String: Int] = [:]
            func agentID(_ role: Role, _ index: Int) -> String { "\(role.rawValue)-\(index)" }
            for role in Role.allCases { try bus.startAgent(role, id: agentID(role, 1)) }
            try bus.startAgent(.validation, id: agentID(.validation, 2))
            let client = try bus.client()
            let delay = 800
            var workflows: [String] = []
            for _ in 0..<5 { workflows.append(try client.submit(demoRequest(delayMilliseconds: delay)).workflow) }

            var kills: [Role: Int] = [:]
            var killedSteps: Set<String> = []
            let deadline = ContinuousClock.now + .seconds(150)
            while ContinuousClock.now < deadline {
                let snapshots = try workflows.map { try client.status($0) }
                if snapshots.allSatisfy({ $0.state.isFinished }) {
                    // A loaded machine can miss a step's first third; more workflows give more chances, bounded.
                    guard Role.allCases.contains(where: { (kills[$0] ?? 0) < 5 }), workflows.count < 12 else { break }
                    workflows.append(try client.submit(demoRequest(delayMilliseconds: delay)).workflow)
                    continue
                }
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                for workflow in snapshots {
                    for step in workflow.steps where step.state == .running {
                        // In the middle of the step: it sleeps its simulated delay, nothing is recorded yet.
                        guard let agent = step.agent, let started = step.startedAt, now - started < Int64(delay / 3),
                            (kills[step.role] ?? 0) < 5, killedSteps.insert("\(workflow.id)/\(step.name)#\(step.attempt)").inserted,
                            bus.agents[agent] != nil
                        else { continue }
                        bus.signal(agent, SIGKILL)
                        kills[step.role, default: 0] += 1
                        generation[agent, default: 1] += 1
                        try bus.startAgent(step.role, id: agent)
                    }
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
            let final = try bus.waitFinished(workflows, timeout: .seconds(60), client: client)
            for workflow in final {
                #expect(workflow.state == .succeeded, "\(workflow.id): \(workflow.error ?? "")")
            }
            for role in Role.allCases {
                #expect((kills[role] ?? 0) >= 5, "role \(role.rawValue) was killed \(kills[role] ?? 0) times")
            }
            let executions = bus.executions()
            for workflow in final {
                for step in workflow.steps {
                    #expect(executions["\(workflow.id)/\(step.name)"] == 1, "\(workflow.id)/\(step.name) ran \(executions["\(workflow.id)/\(step.name)"] ?? 0) times")
                }
            }
        }

        /// Kills the coordinator twenty times at random moments and restarts it on
        /// the same journal and ports.
        @Test func coordinatorKilledTwentyTimesLosesNothing() throws {
            let bus = ProcessBus()
            defer { bus.stopAll() }
            try bus.startCoordinator()
            for role in Role.allCases { try bus.startAgent(role, id: "\(role.rawValue)-1") }
            try bus.startAgent(.validation, id: "validation-2")
            let client = try bus.client()
            var workflows: [String] = []
            var generator = SystemRandomNumberGenerator()
            for kill in 0..<20 {
                if kill.isMultiple(of: 4) { workflows.append(try client.submit(demoRequest(delayMilliseconds: 400)).workflow) }
                Thread.sleep(forTimeInterval: Double.random(in: 0.2...0.9, using: &generator))
                bus.killCoordinator()
                // Down for a moment: agents keep working and hold their results.
                Thread.sleep(forTimeInterval: Double.random(in: 0...0.5, using: &generator))
                try bus.startCoordinator()
            }
            let final = try bus.waitFinished(workflows, timeout: .seconds(120), client: client)
            #expect(final.count == 5)
            for workflow in final {
                #expect(workflow.state == .succeeded, "\(workflow.id): \(workflow.error ?? "")")
            }
            let executions = bus.executions()
            for workflow in final {
                for step in workflow.steps {
                    #expect(executions["\(workflow.id)/\(step.name)"] == 1, "\(workflow.id)/\(step.name) ran \(executions["\(workflow.id)/\(step.name)"] ?? 0) times")
                }
            }
        }

        /// Freezes an agent longer than its liveness: its step moves to another
        /// agent; woken, it drops the step and rejoins.
        @Test func frozenAgentLosesItsStepAndRejoinsWithoutDuplicatingWork() throws {
            let bus = ProcessBus()
            defer { bus.stopAll() }
            try bus.startCoordinator()
            for role in Role.allCases { try bus.startAgent(role, id: "\(role.rawValue)-1") }
            try bus.startAgent(.infra, id: "infra-2")
            let client = try bus.client()
            let workflow = try client.submit(demoRequest(delayMilliseconds: 2000)).workflow
            var frozen: String?
            let deadline = ContinuousClock.now + .seconds(20)
            while frozen == nil && ContinuousClock.now < deadline {
                if let step = try client.status(workflow).step("provision"), step.state == .running, let agent = step.agent {
                    bus.signal(agent, SIGSTOP)
                    frozen = agent
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
            let stopped = try #require(frozen)
            // Longer than liveness (3 x 200 ms): the step must move on.
            var movedTo: String?
            let moveDeadline = ContinuousClock.now + .seconds(10)
            while movedTo == nil && ContinuousClock.now < moveDeadline {
                if let step = try client.status(workflow).step("provision"), step.attempt >= 2, let agent = step.agent, agent != stopped {
                    movedTo = agent
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
            #expect(movedTo != nil, "the frozen agent's step went to the other infra agent")
            bus.signal(stopped, SIGCONT)
            let final = try bus.waitFinished([workflow], timeout: .seconds(60), client: client)[0]
            #expect(final.state == .succeeded, "\(final.error ?? "")")
            #expect(bus.executions()["\(workflow)/provision"] == 1, "provision ran once")
            // The woken agent is back on the bus.
            var rejoined = false
            let rejoinDeadline = ContinuousClock.now + .seconds(10)
            while !rejoined && ContinuousClock.now < rejoinDeadline {
                rejoined = try client.agents().contains { $0.id == stopped }
                Thread.sleep(forTimeInterval: 0.1)
            }
            #expect(rejoined)
        }

        /// SIGTERM: an agent finishes its step (or hands it back), the coordinator
        /// stops; both within 10 seconds.
        @Test func sigtermStopsServicesGracefullyWithinTenSeconds() throws {
            let bus = ProcessBus()
            defer { bus.stopAll() }
            try bus.startCoordinator()
            for role in Role.allCases { try bus.startAgent(role, id: "\(role.rawValue)-1") }
            let client = try bus.client()
            let workflow = try client.submit(demoRequest(delayMilliseconds: 1500)).workflow
            var agent: String?
            let deadline = ContinuousClock.now + .seconds(20)
            while agent == nil && ContinuousClock.now < deadline {
                if let step = try client.status(workflow).step("provision"), step.state == .running { agent = step.agent }
                Thread.sleep(forTimeInterval: 0.05)
            }
            let running = try #require(agent)
            let process = try #require(bus.agents[running]?.process)
            let stopAt = ContinuousClock.now
            bus.signal(running, SIGTERM)
            process.waitUntilExit()
            #expect(ContinuousClock.now - stopAt < .seconds(10))
            // It finished the step before leaving: the result was confirmed.
            let provision = try #require(try client.status(workflow).step("provision"))
            #expect(provision.state == .succeeded)
            let coordinatorPID = try #require(bus.coordinatorPID)
            let coordinatorStop = ContinuousClock.now
            kill(coordinatorPID, SIGTERM)
            while kill(coordinatorPID, 0) == 0 && ContinuousClock.now - coordinatorStop < .seconds(10) {
                Thread.sleep(forTimeInterval: 0.05)
                _ = waitpid(coordinatorPID, nil, WNOHANG)
            }
            #expect(kill(coordinatorPID, 0) != 0, "the coordinator exited on SIGTERM")
        }
    }
}
