import Foundation
import Protocol
import ShoalSupport
import Testing

extension FaultSuites {
    /// The CLI against a running coordinator: detach, wait, agents, cancel, resume.
    @Suite(.serialized) struct ControlCommandTests {
        private func shoal(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> ProcessResult {
            try await ProcessRunner().run(ProcessBus.executable, arguments, timeout: timeout)
        }

        @Test func detachWaitAgentsAndStatusWorkAgainstARunningCoordinator() async throws {
            let bus = ProcessBus()
            defer { bus.stopAll() }
            try bus.startCoordinator()
            for role in Role.allCases { try bus.startAgent(role, id: "\(role.rawValue)-1") }
            let created = try await shoal(["create", "-n", "1", "--coordinator", bus.control] + bus.clientKeyArguments + ["--detach"])
            #expect(created.status == 0, "\(created.standardError)")
            let workflow = try #require(created.standardOutput.split(separator: "\n").last.map(String.init))
            #expect(Names.isDNSLabel(workflow))
            let waited = try await shoal(["wait", workflow, "--coordinator", bus.control] + bus.clientKeyArguments)
            #expect(waited.status == 0, "\(waited.standardOutput) \(waited.standardError)")
            #expect(waited.standardOutput.contains("succeeded"))
            let agents = try await shoal(["agents", "--coordinator", bus.control] + bus.clientKeyArguments)
            #expect(agents.status == 0)
            for role in Role.allCases { #expect(agents.standardOutput.contains("\(role.rawValue)-1")) }
            let status = try await shoal(["status", workflow, "--coordinator", bus.control] + bus.clientKeyArguments)
            #expect(status.standardOutput.contains("workflow \(workflow): succeeded"))
            let unknown = try await shoal(["wait", "../etc", "--coordinator", bus.control] + bus.clientKeyArguments)
            #expect(unknown.status != 0)
            #expect(unknown.standardError.contains("invalid workflow id"))
        }

        @Test func cancelStopsAWorkflowAndResumeFinishesIt() async throws {
            let bus = ProcessBus()
            defer { bus.stopAll() }
            try bus.startCoordinator()
            for role in Role.allCases { try bus.startAgent(role, id: "\(role.rawValue)-1") }
            let created = try await shoal(["create", "-n", "1", "--sim-delay", "1s", "--coordinator", bus.control] + bus.clientKeyArguments + ["--detach"])
            let workflow = try #require(created.standardOutput.split(separator: "\n").last.map(String.init))
            let cancelled = try await shoal(["cancel", workflow, "--coordinator", bus.control] + bus.clientKeyArguments)
            #expect(cancelled.standardOutput.contains("cancelled"), "\(cancelled.standardOutput) \(cancelled.standardError)")
            let failedWait = try await shoal(["wait", workflow, "--coordinator", bus.control] + bus.clientKeyArguments)
            #expect(failedWait.status == 1)
            let resumed = try await shoal(["resume", workflow, "--coordinator", bus.control] + bus.clientKeyArguments)
            #expect(resumed.standardOutput.contains("running"))
            let waited = try await shoal(["wait", workflow, "--coordinator", bus.control] + bus.clientKeyArguments, timeout: .seconds(90))
            #expect(waited.status == 0, "\(waited.standardOutput)")
        }

        @Test func aCoordinatorKilledMidWorkflowFinishesItAfterRestart() async throws {
            let bus = ProcessBus()
            defer { bus.stopAll() }
            try bus.startCoordinator()
            for role in Role.allCases { try bus.startAgent(role, id: "\(role.rawValue)-1") }
            let created = try await shoal(["create", "-n", "1", "--sim-delay", "500ms", "--coordinator", bus.control] + bus.clientKeyArguments + ["--detach"])
            let workflow = try #require(created.standardOutput.split(separator: "\n").last.map(String.init))
            let client = try bus.client()
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline, try client.status(workflow).step("gitops-engine")?.state != .running {
                try await Task.sleep(for: .milliseconds(50))
            }
            // `shoal wait` is already waiting when the coordinator dies, and outlives its absence.
            let control = bus.control
            let keys = bus.clientKeyArguments
            async let waiting = shoal(["wait", workflow, "--coordinator", control] + keys, timeout: .seconds(90))
            try await Task.sleep(for: .milliseconds(300))
            bus.killCoordinator()
            try await Task.sleep(for: .seconds(3))
            try bus.startCoordinator()
            let waited = try await waiting
            #expect(waited.status == 0, "\(waited.standardOutput) \(waited.standardError)")
            let executions = bus.executions()
            for step in try client.status(workflow).steps {
                #expect(executions["\(workflow)/\(step.name)"] == 1, "\(step.name) ran once")
            }
        }
    }
}
