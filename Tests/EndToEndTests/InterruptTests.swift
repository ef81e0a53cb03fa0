import Coordinator
import Foundation
import Protocol
import ShoalSupport
import Testing

/// An interrupted embedded `create` leaves its workflow `interrupted`: a later `create` in the same directory
/// leaves it alone and names it, and `shoal resume WF -d DIR` runs it to its end without running again what
/// had succeeded.
@Suite(.serialized) struct InterruptTests {
    /// Starts `create --sim-delay 1s` with its stdout in a file; returns once a step after `plan` succeeded.
    private func startCreate(output: String) async throws -> (process: Process, log: String, workflow: String) {
        let log = (output as NSString).deletingLastPathComponent + "/create-\(UUID().uuidString.prefix(6)).out"
        FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Shoal.executable)
        process.arguments = ["create", "-n", "1", "--sim-delay", "1s", "-d", output]
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardError = process.standardOutput
        try process.run()
        let deadline = ContinuousClock.now + .seconds(90)
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let succeeded = text.split(separator: "\n").filter { $0.hasPrefix("  ok ") }.count
            if succeeded >= 2, let workflow = Shoal.workflowID(in: text) { return (process, log, workflow) }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.terminate()
        process.waitUntilExit()
        let text = try String(contentsOfFile: log, encoding: .utf8)
        throw ShoalError(.timeout, "create did not get past two steps: \(text)")
    }

    /// Attempts per step, read from the journal with no coordinator running.
    private func attempts(_ output: String, _ workflow: String) throws -> (WorkflowSnapshot, [String: Int]) {
        let journal = try Journal(path: output + "/.shoal/journal.sqlite")
        let snapshot = try #require(try journal.workflow(workflow))
        var counts: [String: Int] = [:]
        for step in snapshot.steps { counts[step.name] = try journal.attemptCount(workflow: workflow, step: step.name) }
        return (snapshot, counts)
    }

    private func waitUntilNothingRuns(_ output: String) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !processes(mentioning: output).isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(processes(mentioning: output).isEmpty, "nothing of the run is left")
    }

    /// The later `create` and the `resume` of an interrupted workflow, checked against the journal.
    private func createAgainThenResume(output: String, workflow: String) async throws {
        let (before, attemptsBefore) = try attempts(output, workflow)
        #expect(before.state == .interrupted)
        let succeededBefore = Set(before.steps.filter { $0.state == .succeeded }.map(\.name))
        #expect(succeededBefore.contains("plan"))
        let status = try await Shoal.run(["status", workflow, "-d", output])
        #expect(status.standardOutput.contains("workflow \(workflow): interrupted"), "\(status.standardOutput)")
        let list = try await Shoal.run(["list", "-d", output])
        #expect(
            list.standardOutput.split(separator: "\n").contains {
                $0.hasPrefix(workflow) && $0.contains(" interrupted ")
            },
            "\(list.standardOutput)")

        let again = try await Shoal.run(["create", "-n", "1", "-d", output], timeout: .seconds(180))
        #expect(again.status == 0, "\(again.standardOutput)\n\(again.standardError)")
        #expect(
            again.standardOutput.contains(
                "note: workflow \(workflow) was interrupted and not run on; "
                    + "resume with: shoal resume \(workflow) -d \(output)"),
            "\(again.standardOutput)")
        #expect(Shoal.workflowID(in: again.standardOutput) != workflow)
        let (untouched, attemptsUntouched) = try attempts(output, workflow)
        #expect(untouched.state == .interrupted)
        #expect(attemptsUntouched == attemptsBefore, "the later create ran nothing of \(workflow)")

        let resumed = try await Shoal.run(["resume", workflow, "-d", output], timeout: .seconds(180))
        #expect(resumed.status == 0, "\(resumed.standardOutput)\n\(resumed.standardError)")
        #expect(resumed.standardOutput.contains("Workflow \(workflow) succeeded"), "\(resumed.standardOutput)")
        let (after, attemptsAfter) = try attempts(output, workflow)
        #expect(after.state == .succeeded)
        #expect(after.steps.allSatisfy { $0.state == .succeeded || $0.state == .skipped })
        for step in succeededBefore {
            #expect(attemptsAfter[step] == attemptsBefore[step], "\(step) had succeeded and ran again")
        }
        try await waitUntilNothingRuns(output)
    }

    @Test func ctrlCMarksTheWorkflowInterruptedAndResumeFinishesIt() async throws {
        let output = Shoal.temporaryDirectory() + "/out"
        let (process, log, workflow) = try await startCreate(output: output)
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        #expect(process.terminationStatus == 128 + SIGINT)
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(
            text.contains("workflow \(workflow) interrupted; resume with: shoal resume \(workflow) -d \(output)"),
            "\(text)")
        try await waitUntilNothingRuns(output)
        try await createAgainThenResume(output: output, workflow: workflow)
    }

    @Test func afterASIGKILLTheNextRunMarksTheWorkflowInterrupted() async throws {
        let output = Shoal.temporaryDirectory() + "/out"
        let (process, _, workflow) = try await startCreate(output: output)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try await waitUntilNothingRuns(output)
        #expect(try attempts(output, workflow).0.state == .running, "nobody marked it: the journal says running")
        // The later create marks it interrupted before its coordinator starts, and names it.
        try await createAgainThenResumeAfterKill(output: output, workflow: workflow)
    }

    /// After a SIGKILL the later `create` is what marks the workflow; its attempts are compared from then on.
    private func createAgainThenResumeAfterKill(output: String, workflow: String) async throws {
        let (before, _) = try attempts(output, workflow)
        let succeededBefore = Set(before.steps.filter { $0.state == .succeeded }.map(\.name))
        let attemptsBefore = try attempts(output, workflow).1
        let again = try await Shoal.run(["create", "-n", "1", "-d", output], timeout: .seconds(180))
        #expect(again.status == 0, "\(again.standardOutput)\n\(again.standardError)")
        #expect(again.standardOutput.contains("note: workflow \(workflow) was interrupted"), "\(again.standardOutput)")
        let (marked, attemptsMarked) = try attempts(output, workflow)
        #expect(marked.state == .interrupted)
        #expect(attemptsMarked == attemptsBefore, "the later create ran nothing of \(workflow)")
        let resumed = try await Shoal.run(["resume", workflow, "-d", output], timeout: .seconds(180))
        #expect(resumed.status == 0, "\(resumed.standardOutput)\n\(resumed.standardError)")
        let (after, attemptsAfter) = try attempts(output, workflow)
        #expect(after.state == .succeeded)
        for step in succeededBefore {
            #expect(attemptsAfter[step] == attemptsBefore[step], "\(step) had succeeded and ran again")
        }
        try await waitUntilNothingRuns(output)
    }
}
