import Foundation
import Testing

@testable import Coordinator
@testable import Protocol

/// The journal's checkpoint thread copies the write-ahead log after commits and sleeps while none come: an idle
/// coordinator does not wake it.
@Suite struct CheckpointerTests {
    let directory = NSTemporaryDirectory() + "shoal-checkpointer-\(UUID().uuidString)"

    /// Waits up to 30 s (a loaded machine) for the checkpointer to reach `passes` and sleep until the next commit.
    private func waitForSleep(_ checkpointer: WALCheckpointer, passes: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let progress = checkpointer.progress
            if progress.passes >= passes && progress.waitingForCommit { return }
            try await Task.sleep(for: .milliseconds(5))
        }
        Issue.record("checkpointer at \(checkpointer.progress), expected \(passes) passes and asleep")
    }

    private func workflow(_ id: String) -> WorkflowSnapshot {
        WorkflowSnapshot(
            id: id, state: .running, request: WorkflowRequest(), createdAt: 1, finishedAt: nil,
            steps: [StepSnapshot(name: "plan", role: .planner, needs: [], critical: true)], error: nil, revision: 1)
    }

    @Test func passesFollowCommitsAndNoneComeWithout() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = try Journal(path: directory + "/journal.sqlite", backgroundCheckpoints: true)
        let checkpointer = try #require(journal.checkpointer)
        // Once the journal is open, the thread sleeps until a commit.
        try await waitForSleep(checkpointer, passes: 0)
        let opened = checkpointer.progress.passes
        try journal.insert(workflow("k3s-dev-000001"), submitID: "a")
        try await waitForSleep(checkpointer, passes: opened + 1)
        let afterOne = checkpointer.progress.passes
        // Asleep, it stays at that count however long nothing is committed: it waits for a commit, not a timer.
        #expect(checkpointer.progress.waitingForCommit)
        try journal.insert(workflow("k3s-dev-000002"), submitID: "b")
        try await waitForSleep(checkpointer, passes: afterOne + 1)
        #expect(checkpointer.progress.passes == afterOne + 1)
    }
}
