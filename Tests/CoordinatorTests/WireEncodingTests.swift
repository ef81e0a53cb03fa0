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
}
