import Foundation
import PropertyBased
import Testing

@testable import AgentRuntime
@testable import Protocol

/// The frames between an agent and its step worker.
@Suite struct StepWorkerFrameTests {
    static let key = StepKey(workflow: "k3s-dev-1a2b", step: "plan", attempt: 2)
    static let assignment = StepAssignment(
        role: .planner, request: WorkflowRequest(), params: ["count": .integer(3), "name": .string("é\n\"x\"")],
        inputs: ["provision": ["hostGateway": .string("10.0.0.1")]],
        artifacts: [ArtifactRef(name: "kubeconfig", path: nil, mode: 0o600, sensitive: true, size: 3, digest: "ab")])
    static let artifact = Artifact(name: "blob", path: "gitops/blob", data: Data([0, 255, 10, 13, 0x22]))

    static let frames: [(WorkerRequest?, WorkerReply?)] = [
        (.run(WorkerRun(key: key, assignment: assignment, artifacts: [artifact], agent: "planner-h-1")), nil),
        (.cancel(key: key), nil),
        (
            nil,
            .done(
                key: key,
                output: StepOutput(
                    summary: "ok", values: ["n": .number(1.5)], artifacts: [artifact],
                    log: ["line"]))
        ),
        (nil, .failed(key: key, message: "terraform apply failed: exit 1", handedBack: false)),
        (nil, .failed(key: key, message: "lease lost", handedBack: true)),
    ]

    @Test func everyFrameSurvivesTheTripThroughAByteStream() throws {
        for (request, reply) in Self.frames {
            var decoder = WorkerFrameDecoder()
            if let request {
                decoder.append(try WorkerFrame.encode(request))
                let body = try #require(try decoder.next())
                #expect(try WorkerFrame.decode(WorkerRequest.self, from: body) == request)
            }
            if let reply {
                decoder.append(try WorkerFrame.encode(reply))
                let body = try #require(try decoder.next())
                #expect(try WorkerFrame.decode(WorkerReply.self, from: body) == reply)
            }
            #expect(try decoder.next() == nil)
            #expect(!decoder.hasPartialFrame)
        }
    }

    @Test func framesHaveABigEndianLengthAndATypedJSONBody() throws {
        let frame = try WorkerFrame.encode(WorkerRequest.cancel(key: Self.key))
        let length = Int(frame[0]) << 24 | Int(frame[1]) << 16 | Int(frame[2]) << 8 | Int(frame[3])
        #expect(length == frame.count - 4)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(frame.dropFirst(4))) as? [String: Any])
        #expect(object["type"] as? String == "cancel")
        #expect((object["key"] as? [String: Any])?["attempt"] as? Int == 2)
        let failed = try WorkerFrame.encode(WorkerReply.failed(key: Self.key, message: "m", handedBack: true))
        let reply = try #require(try JSONSerialization.jsonObject(with: Data(failed.dropFirst(4))) as? [String: Any])
        #expect(reply["type"] as? String == "failed")
        #expect(reply["handedBack"] as? Bool == true)
        #expect(reply["message"] as? String == "m")
    }

    @Test func framesSplitAnywhereComeOutWhole() async throws {
        let stream = try Self.frames.flatMap { request, reply in
            try request.map { try WorkerFrame.encode($0) } ?? WorkerFrame.encode(reply!)
        }
        await propertyCheck(count: 300, input: Gen.int(in: 1...stream.count).array(of: 1...8)) { cuts in
            var decoder = WorkerFrameDecoder()
            var bodies: [Data] = []
            var offset = 0
            for cut in cuts.sorted() + [stream.count] where cut > offset {
                decoder.append(stream[offset..<cut])
                offset = cut
                while let body = try? decoder.next() { bodies.append(body) }
            }
            #expect(bodies.count == Self.frames.count)
            #expect(!decoder.hasPartialFrame)
        }
    }

    @Test func anOversizedLengthIsRefusedBeforeItsBodyArrives() {
        var decoder = WorkerFrameDecoder()
        decoder.append([0x20, 0, 0, 1])  // 512 MiB + 1
        #expect(throws: StepWorkerError.self) { try decoder.next() }
        do {
            _ = try decoder.next()
        } catch {
            #expect(error.code == .frameTooLarge)
            #expect(error.message.contains("at most 512 MiB"))
        }
    }

    @Test func aStreamEndingInsideAFrameIsAnError() throws {
        let frame = try WorkerFrame.encode(WorkerRequest.cancel(key: Self.key))
        for cut in [1, 3, 4, frame.count - 1] {
            var decoder = WorkerFrameDecoder()
            decoder.append(frame.prefix(cut))
            #expect(try decoder.next() == nil)
            #expect(decoder.hasPartialFrame)
            do {
                try decoder.finish()
                Issue.record("a frame cut at \(cut) of \(frame.count) bytes was accepted")
            } catch {
                #expect(error.code == .truncatedFrame)
            }
        }
    }

    @Test func bodiesThatAreNotAFrameAreErrorsNamingWhy() {
        let bodies = [
            "not json", "{}", #"{"type":"launch","key":{"workflow":"w","step":"s","attempt":1}}"#,
            #"{"type":"cancel"}"#, #"{"type":"run","key":{"workflow":"w","step":"s","attempt":"one"}}"#, "[]", "",
        ]
        for body in bodies {
            do {
                _ = try WorkerFrame.decode(WorkerRequest.self, from: Data(body.utf8))
                Issue.record("'\(body)' was decoded")
            } catch {
                #expect(error.code == .malformedFrame)
                #expect(error.message.hasPrefix("damaged step worker frame"))
                #expect(!error.message.contains("\n"))
            }
        }
    }

    @Test func randomBytesNeverTrap() async {
        await propertyCheck(count: 500, input: Gen.uint8().array(of: 0...64)) { bytes in
            var decoder = WorkerFrameDecoder()
            // Keep lengths small, so the body arrives or the frame is truncated, and the bytes are tried as JSON.
            decoder.append([0, 0, 0, UInt8(bytes.count)] + bytes)
            if let body = try? decoder.next() {
                _ = try? WorkerFrame.decode(WorkerReply.self, from: body)
                _ = try? WorkerFrame.decode(WorkerRequest.self, from: body)
            }
            var raw = WorkerFrameDecoder()
            raw.append(bytes)
            while let body = try? raw.next() { _ = try? WorkerFrame.decode(WorkerReply.self, from: body) }
        }
    }
}
