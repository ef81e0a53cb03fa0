import Foundation
import Logging
import Testing

@testable import Coordinator
@testable import Protocol

/// A coordinator told to interrupt unfinished workflows at start marks them in the journal and runs nothing.
struct InterruptTests {
    /// A journal with one running workflow: `plan` succeeded, `provision` running (attempt 1 on infra-1),
    /// `docs` pending.
    private func runningWorkflow() throws -> (journal: Journal, id: String) {
        let directory = NSTemporaryDirectory() + "shoal-interrupt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let journal = try Journal(path: directory + "/journal.sqlite")
        var plan = StepSnapshot(name: "plan", role: .planner, needs: [], critical: true)
        plan.state = .succeeded
        plan.attempt = 1
        var provision = StepSnapshot(name: "provision", role: .infra, needs: ["plan"], critical: true)
        provision.state = .running
        provision.attempt = 1
        provision.agent = "infra-1"
        let docs = StepSnapshot(name: "docs", role: .docs, needs: ["provision"], critical: false)
        let workflow = WorkflowSnapshot(
            id: "k3s-dev-000042", state: .running, request: WorkflowRequest(), createdAt: 1, finishedAt: nil,
            steps: [plan, provision, docs], error: nil, revision: 3)
        try journal.insert(workflow, submitID: nil)
        var batch = JournalBatch()
        batch.assigned(StepKey(workflow: workflow.id, step: "provision", attempt: 1), agent: "infra-1", at: 5)
        try journal.commit(batch)
        return (journal, workflow.id)
    }

    @Test func unfinishedWorkflowsAreMarkedInterruptedAndNotRun() throws {
        let (journal, id) = try runningWorkflow()
        var configuration = CoordinatorConfiguration()
        configuration.interruptUnfinished = true
        let core = try CoordinatorCore(
            configuration: configuration, journal: journal, logger: Logger(label: "test"), eventsPort: nil)
        #expect(core.interruptedAtStart == [id])
        #expect(core.workflows.isEmpty, "nothing of the interrupted workflow is held to run")
        let stored = try #require(try journal.workflow(id))
        #expect(stored.state == .interrupted)
        #expect(stored.finishedAt == nil, "not finished with an outcome, so retention keeps it")
        #expect(stored.step("plan")?.state == .succeeded)
        #expect(stored.step("provision")?.state == .cancelled)
        #expect(stored.step("docs")?.state == .pending)
        #expect(try journal.attemptCount(workflow: id, step: "provision") == 1)
        #expect(try journal.workflows(unfinishedOnly: true).isEmpty)
        // A second start finds nothing left to mark.
        let again = try CoordinatorCore(
            configuration: configuration, journal: journal, logger: Logger(label: "test"), eventsPort: nil)
        #expect(again.interruptedAtStart.isEmpty)
    }

    @Test func byDefaultUnfinishedWorkflowsAreResumed() throws {
        let (journal, id) = try runningWorkflow()
        let core = try CoordinatorCore(
            configuration: CoordinatorConfiguration(), journal: journal, logger: Logger(label: "test"), eventsPort: nil)
        #expect(core.interruptedAtStart.isEmpty)
        #expect(core.workflows[id] != nil)
        #expect(try journal.workflow(id)?.state == .running)
    }
}
