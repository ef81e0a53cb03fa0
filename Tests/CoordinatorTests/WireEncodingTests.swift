import Foundation
import Testing

@testable import Coordinator
@testable import Protocol

/// Assignments written directly read back as the `StepAssignment` the coordinator meant.
@Suite struct WireEncodingTests {
    @Test func anAssignmentWrittenDirectlyReadsBackWhole() throws {
        let request = WorkflowRequest()
        let assignment = AssignmentWithoutRequest(
            role: .validation, params: ["check": "api/server", "weight": 2.5],
            inputs: ["provision": ["hosts": ["10.0.0.1", "10.0.0.2"], "ok": true], "plan": [:]],
            artifacts: [
                ArtifactRef(
                    name: "kubeconfig", path: "kubeconfigs/w/kubeconfig", mode: 0o600, sensitive: true, size: 12,
                    digest: String(repeating: "a", count: 64)),
                ArtifactRef(name: "state", path: nil, mode: 0o644, sensitive: false, size: 0, digest: "")
            ])
        let bytes = assignment.compactJSON(request: WireJSON.encode(request))
        let decoded = try JSONDecoder().decode(StepAssignment.self, from: Data(bytes))
        #expect(
            decoded
                == StepAssignment(
                    role: assignment.role, request: request, params: assignment.params, inputs: assignment.inputs,
                    artifacts: assignment.artifacts))
    }

    /// Assignments and batch entries, with and without optional members, written as `JSONEncoder` writes them.
    @Test func assignmentsAndBatchEntriesAreWrittenAsJSONEncoderWritesThem() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var request = WorkflowRequest()
        request.clusterName = "a/b \"c\"\n"
        let requestJSON = Array(try encoder.encode(request))
        for (artifacts, inputs) in [
            ([ArtifactRef](), [String: [String: JSONValue]]()),
            (
                [
                    ArtifactRef(
                        name: "kubeconfig", path: "kubeconfigs/w/kubeconfig", mode: 0o600, sensitive: true,
                        size: Int.max, digest: String(repeating: "f", count: 64)),
                    ArtifactRef(name: "ça", path: nil, mode: 0, sensitive: false, size: 0, digest: ""),
                ],
                ["plan": [:], "provision": ["hosts": ["10.0.0.1"], "é": .null]]
            ),
        ] {
            let assignment = AssignmentWithoutRequest(
                role: .validation, params: artifacts.isEmpty ? [:] : ["check": "api/server"], inputs: inputs,
                artifacts: artifacts)
            let whole = StepAssignment(
                role: assignment.role, request: request, params: assignment.params, inputs: assignment.inputs,
                artifacts: assignment.artifacts)
            #expect(assignment.compactJSON(request: requestJSON) == Array(try encoder.encode(whole)))
            var json = CompactJSON()
            assignment.write(to: &json, request: nil, step: (name: "validate/\u{2028}", attempt: 10_000))
            let entry = StepBatch.Entry(
                step: "validate/\u{2028}", attempt: 10_000, role: assignment.role, params: assignment.params,
                inputs: assignment.inputs, artifacts: assignment.artifacts)
            #expect(json.bytes == Array(try encoder.encode(entry)))
        }
    }

    /// The rows the coordinator writes directly (the header row with its request written once, each step's row)
    /// read back from a real journal as the workflow they were written from, through the reader every journal
    /// (older ones, written by `JSONEncoder`, too) goes through.
    @Test func rowsWrittenDirectlyReadBackFromTheJournal() throws {
        let directory = NSTemporaryDirectory() + "shoal-rows-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = try Journal(path: directory + "/journal.sqlite")
        var request = WorkflowRequest()
        request.clusterName = "lab/\"é\""
        request.hosts = ["10.0.0.1"]
        var plan = StepSnapshot(name: "plan", role: .planner, needs: [], critical: true, params: ["n": 3])
        plan.state = .succeeded
        plan.attempt = 1
        plan.agent = "planner-1"
        plan.values = ["hosts": ["a", "b"]]
        plan.failures = 2
        let check = StepSnapshot(name: "validate/api", role: .validation, needs: ["plan"], critical: false)
        var workflow = WorkflowSnapshot(
            id: "k3s-dev-000001", state: .running, request: request, createdAt: 1_700_000_000_000, finishedAt: nil,
            steps: [plan, check], error: nil, revision: 1, operation: WorkflowOperation(kind: .validate, target: "w-0"))
        var batch = JournalBatch()
        batch.insert(workflow, submitID: "s-1", request: WireJSON.encode(request))
        for (position, step) in workflow.steps.enumerated() {
            batch.save(
                encoded: Data(step.compactJSON), state: step.state, name: step.name, workflow: workflow.id,
                position: position)
        }
        try journal.commit(batch)
        #expect(try journal.workflow(workflow.id) == workflow)

        workflow.state = .failed
        workflow.error = "critical step 'plan' failed: \n"
        workflow.finishedAt = Int64.max
        workflow.revision = 2
        batch = JournalBatch()
        batch.saveHeader(
            id: workflow.id, state: workflow.state, finishedAt: workflow.finishedAt,
            snapshot: Data(workflow.headerCompactJSON(request: WireJSON.encode(request))))
        try journal.commit(batch)
        #expect(try journal.workflow(workflow.id) == workflow)
    }
}
