import Foundation
import Testing

@testable import Protocol

@Suite struct CodecTests {
    private func frames(_ header: String, _ body: String = "{}") -> ArraySlice<[UInt8]> {
        [Array(header.utf8), Array(body.utf8)][...]
    }

    @Test func messagesRoundTripThroughFrames() throws {
        let header = Header(type: .hello, sender: "planner-1")
        let hello = Hello(agent: "planner-1", role: .planner, host: "h", pid: 42, capacity: 2, version: "0.1.0")
        let encoded = Codec.encode(header, hello, topic: "agent/planner-1/")
        #expect(encoded.count == 3)
        #expect(encoded[0] == Array("agent/planner-1/".utf8))
        let envelope = try Codec.decode(encoded.dropFirst())
        #expect(envelope.header == header)
        #expect(try envelope.decode(Hello.self) == hello)
    }

    @Test func headerCarriesVersionTypeIdAndTime() throws {
        let encoded = Codec.encode(Header(type: .ack, workflow: "k3s-dev-1", step: "plan", attempt: 1, sender: "a"), Empty())
        let object = try #require(try JSONSerialization.jsonObject(with: Data(encoded[0])) as? [String: Any])
        #expect(object["v"] as? Int == 4)
        #expect(object["type"] as? String == "ack")
        #expect((object["id"] as? String)?.isEmpty == false)
        #expect(object["sentAt"] != nil)
        #expect(object["attempt"] as? Int == 1)
    }

    @Test(arguments: [
        ("not json", RejectReason.malformedHeader),
        ("[1,2]", .malformedHeader),
        (#"{"v":1,"type":"hello","id":"x","sentAt":1}"#, .unsupportedVersion),
        // v2 steps carried artifact bytes; a v3 peer names them by digest: a v2 hello is refused.
        (#"{"v":2,"type":"hello","id":"x","sentAt":1,"sender":"docs-1"}"#, .unsupportedVersion),
        // v3 coordinators sent every agent a heartbeat of their own and judged idle agents on the short interval.
        (#"{"v":3,"type":"hello","id":"x","sentAt":1,"sender":"docs-1"}"#, .unsupportedVersion),
        (#"{"v":3,"attempt":1,"id":"x","sender":"docs-1","sentAt":1,"step":"s","type":"ack","workflow":"w"}"#, .unsupportedVersion),
        (#"{"v":4,"type":"launch-missiles","id":"x","sentAt":1}"#, .unknownType),
        (#"{"v":4,"type":"hello","sentAt":1}"#, .malformedHeader),
        (#"{"v":4,"type":"hello","id":"x","sentAt":"yesterday"}"#, .malformedHeader),
        (#"{"v":4,"type":"hello","id":"x","sentAt":1,"workflow":"../etc"}"#, .invalidField),
        (#"{"v":4,"type":"hello","id":"x","sentAt":1,"attempt":0}"#, .invalidField),
        (#"{"v":4,"type":"hello","id":"","sentAt":1}"#, .invalidField),
    ])
    func badHeadersAreRejectedWithTheirReason(header: String, reason: RejectReason) {
        #expect {
            try Codec.decode(frames(header))
        } throws: { error in
            (error as? DecodeError)?.reason == reason
        }
    }

    @Test func wrongFrameCountIsRejected() {
        for count in [0, 1, 3, 5] {
            let frames = Array(repeating: Array("{}".utf8), count: count)
            #expect(throws: DecodeError.self) { try Codec.decode(frames[...]) }
        }
    }

    @Test func oversizedHeaderIsRejectedBeforeParsing() {
        let header = #"{"v":4,"type":"hello","id":"x","sentAt":1,"pad":""# + String(repeating: "a", count: 5000) + #""}"#
        #expect {
            try Codec.decode(frames(header))
        } throws: { error in
            (error as? DecodeError)?.reason == .oversized
        }
    }

    @Test func bodyOfTheWrongShapeIsRejected() throws {
        let envelope = try Codec.decode(frames(#"{"v":4,"type":"hello","id":"x","sentAt":1}"#, #"{"agent":5}"#))
        #expect {
            try envelope.decode(Hello.self)
        } throws: { error in
            (error as? DecodeError)?.reason == .malformedBody
        }
    }

    @Test func randomBytesNeverCrashTheDecoder() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let header = (0..<Int.random(in: 0..<200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let body = (0..<Int.random(in: 0..<200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(throws: DecodeError.self) { try Codec.decode([header, body][...]) }
        }
    }
}

@Suite struct RequestTests {
    @Test func defaultsAreValid() {
        #expect(WorkflowRequest().problems().isEmpty)
    }

    @Test func nodeCountOutsideOneToNinetyNineIsRefused() {
        for nodes in [0, -1, 100] {
            var request = WorkflowRequest()
            request.nodes = nodes
            #expect(request.problems() == ["--nodes must be between 1 and 99, got \(nodes)"])
        }
    }

    @Test func productionNeedsThreeNodesAndTheErrorNamesTheRule() throws {
        var request = WorkflowRequest()
        request.environment = .production
        request.nodes = 2
        let problem = try #require(request.problems().first)
        #expect(problem.contains("production needs at least 3 nodes"))
        request.nodes = 3
        #expect(request.problems().isEmpty)
    }

    @Test func otherPlatformsAreNotSupportedYet() throws {
        var request = WorkflowRequest()
        request.platform = "eks"
        #expect(try #require(request.problems().first).contains("not supported yet"))
        request.platform = "nonsense"
        #expect(try #require(request.problems().first).contains("unknown platform"))
    }

    @Test func requestDecodingToleratesMissingFieldsButNotWrongTypes() throws {
        let decoded = try JSONDecoder().decode(WorkflowRequest.self, from: Data(#"{"nodes":3}"#.utf8))
        #expect(decoded.nodes == 3)
        #expect(decoded.platform == "k3s")
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(WorkflowRequest.self, from: Data(#"{"nodes":"three"}"#.utf8))
        }
    }
}

@Suite struct PlanTests {
    @Test func aValidDAGHasNoProblems() {
        let plan = Plan(steps: [
            PlannedStep(name: "a", role: .infra, needs: ["plan"]),
            PlannedStep(name: "b", role: .docs, needs: ["a"]),
        ])
        #expect(plan.problems().isEmpty)
    }

    @Test func cyclesUnknownDependenciesAndDuplicatesAreFound() {
        let plan = Plan(steps: [
            PlannedStep(name: "a", role: .infra, needs: ["b"]),
            PlannedStep(name: "b", role: .infra, needs: ["a"]),
            PlannedStep(name: "c", role: .infra, needs: ["ghost"]),
            PlannedStep(name: "c", role: .infra),
        ])
        let problems = plan.problems()
        #expect(problems.contains { $0.contains("cycle") })
        #expect(problems.contains { $0.contains("unknown step 'ghost'") })
        #expect(problems.contains { $0.contains("duplicate step 'c'") })
    }
}

@Suite struct WorkflowEventTests {
    private func snapshot(revision: Int) -> WorkflowSnapshot {
        WorkflowSnapshot(
            id: "k3s-dev-000001", state: .running, request: WorkflowRequest(), createdAt: 1, finishedAt: nil,
            steps: [StepSnapshot(name: "plan", role: .planner, needs: [], critical: true)], error: nil,
            revision: revision)
    }

    @Test func anEventAppliesToItsPreviousRevisionReplacingAndAppendingSteps() throws {
        var workflow = snapshot(revision: 3)
        var plan = workflow.steps[0]
        plan.state = .succeeded
        let added = StepSnapshot(name: "provision", role: .infra, needs: ["plan"], critical: true, params: ["a": 1])
        let event = WorkflowEvent(
            workflow: workflow.id, previousRevision: 3, revision: 5, state: .running, error: nil, finishedAt: nil,
            steps: [plan, added])
        let frames = Codec.encode(Header(type: .event, workflow: workflow.id), event, topic: "workflow/x/")
        let decoded = try Codec.decode(frames.dropFirst()).decode(WorkflowEvent.self)
        #expect(decoded.apply(to: &workflow))
        #expect(workflow.revision == 5)
        #expect(workflow.steps.map(\.name) == ["plan", "provision"])
        #expect(workflow.steps[0].state == .succeeded)
        #expect(workflow.steps[1].params == ["a": 1])
    }

    @Test func anEventForAnotherRevisionIsAGapAndChangesNothing() {
        var workflow = snapshot(revision: 7)
        let event = WorkflowEvent(
            workflow: workflow.id, previousRevision: 5, revision: 9, state: .failed, error: "x", finishedAt: 2,
            steps: [])
        #expect(!event.apply(to: &workflow))
        #expect(workflow == snapshot(revision: 7))
    }
}
