import Foundation
import Testing

@testable import Protocol

/// The direct writer must write what `JSONEncoder` writes (keys sorted), so every reader of these frames and rows
/// reads the same values, and the key lists of v4 are decoded strictly.
@Suite struct CompactJSONTests {
    private static let sortedEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    private static let awkward = [
        "", "plain", "with/slash", "quote\"and\\backslash", "tab\tnew\nline\r", "\u{01}\u{1F}\u{7F}", "café ☃ 𝄞",
        "</script>", "\u{2028}",
    ]

    private func encoded<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try CompactJSONTests.sortedEncoder.encode(value), as: UTF8.self)
    }

    @Test(arguments: awkward) func stringsAreEscapedAsJSONEncoderEscapesThem(_ text: String) throws {
        var json = CompactJSON()
        json.string(text)
        #expect(String(decoding: json.bytes, as: UTF8.self) == (try encoded(text)))
    }

    @Test func headersAreWrittenAsJSONEncoderWritesThem() throws {
        for type in MessageType.allCases {
            for header in [
                Header(type: type),
                Header(type: type, workflow: "k3s-dev-1", step: "check/api", attempt: 3, sender: "v-1", re: "x/1"),
            ] {
                #expect(String(decoding: header.compactJSON, as: UTF8.self) == (try encoded(header)))
                #expect(FastHeader.parse(header.compactJSON) == header)
            }
        }
    }

    @Test func integersAtTheirLimitsAreWrittenExactly() throws {
        for value in [0, 1, -1, 9, 10, Int.max, Int.min, 1_000_000_007] {
            var json = CompactJSON()
            json.integer(value)
            #expect(String(decoding: json.bytes, as: UTF8.self) == String(value))
        }
    }

    private static let values: [String: JSONValue] = [
        "text": "a/b \"c\"", "count": 42, "negative": -7, "ratio": 0.25, "tiny": 1e-300, "flag": true, "none": .null,
        "list": [1, "two", [3.5], ["k": false]], "nested": ["deep": ["deeper": "é"]], "big": .integer(Int.max),
        "integral": .number(3.0),
    ]

    @Test func resultsAreWrittenAsJSONEncoderWritesThemAndReadBackEqual() throws {
        for text in CompactJSONTests.awkward {
            let result = StepResult(
                outcome: text.isEmpty ? .succeeded : .failed,
                output: StepOutput(
                    summary: text, values: CompactJSONTests.values,
                    artifacts: [
                        Artifact(name: "kubeconfig", path: "kubeconfigs/w/kubeconfig", sensitive: true, text: text),
                        Artifact(name: "plan", path: nil, data: Data([0, 1, 2, 255])),
                    ], log: [text, "line two"]),
                error: text.isEmpty ? nil : text, agent: "docs-1", host: "h/1", pid: 42, startedAt: -1,
                finishedAt: 1_700_000_000_000)
            #expect(String(decoding: result.compactJSON, as: UTF8.self) == (try encoded(result)))
            #expect(try JSONDecoder().decode(StepResult.self, from: Data(result.compactJSON)) == result)
        }
    }

    @Test func stepsAreWrittenAsJSONEncoderWritesThemAndReadBackEqual() throws {
        var step = StepSnapshot(
            name: "check/api", role: .validation, needs: ["plan", "provision"], critical: false,
            params: ["check": "api"])
        #expect(String(decoding: step.compactJSON, as: UTF8.self) == (try encoded(step)))
        step.state = .succeeded
        step.attempt = 2
        step.agent = "validation-1"
        step.host = "host"
        step.pid = 7
        step.startedAt = 1
        step.finishedAt = 2
        step.summary = "ok/fine"
        step.error = "none\n"
        step.values = CompactJSONTests.values
        step.failures = 1
        #expect(String(decoding: step.compactJSON, as: UTF8.self) == (try encoded(step)))
        #expect(try JSONDecoder().decode(StepSnapshot.self, from: Data(step.compactJSON)) == step)
    }

    @Test func nonFiniteNumbersAreWrittenAsNull() {
        var json = CompactJSON()
        json.value(.array([.number(.infinity), .number(.nan)]))
        #expect(String(decoding: json.bytes, as: UTF8.self) == "[null,null]")
    }

    @Test func keyListsRoundTrip() throws {
        let list = KeyList(keys: [
            StepKey(workflow: "k3s-dev-000001", step: "bench/1", attempt: 1),
            StepKey(workflow: "k3s-dev-000002", step: "docs", attempt: 10_000),
        ])
        #expect(try KeyList.decode(list.compactJSON) == list)
        #expect(String(decoding: list.compactJSON, as: UTF8.self) == (try encoded(list)))
    }

    @Test(arguments: [
        (#"{"keys":[]}"#, RejectReason.invalidField),
        (#"{"keys":[{"workflow":"Not A Label","step":"s","attempt":1}]}"#, .invalidField),
        (#"{"keys":[{"workflow":"w","step":"","attempt":1}]}"#, .invalidField),
        (#"{"keys":[{"workflow":"w","step":"s","attempt":0}]}"#, .invalidField),
        (#"{"keys":[{"workflow":"w","step":"s"}]}"#, .malformedBody),
        (#"{"keys":[{"workflow":"w","step":"s","attempt":"1"}]}"#, .malformedBody),
        (#"{"keys":{}}"#, .malformedBody),
        (#"{}"#, .malformedBody),
        ("[", .malformedBody),
    ])
    func badKeyListsAreRejectedWithTheirReason(_ body: String, _ reason: RejectReason) {
        #expect(throws: DecodeError.self) { try KeyList.decode(Array(body.utf8)) }
        do {
            _ = try KeyList.decode(Array(body.utf8))
        } catch {
            #expect(error.reason == reason)
        }
    }

    @Test func tooManyKeysAreRejected() {
        let keys = [StepKey](
            repeating: StepKey(workflow: "w", step: "s", attempt: 1), count: KeyList.maxKeys + 1)
        #expect(throws: DecodeError.self) { try KeyList.decode(KeyList(keys: keys).compactJSON) }
    }

    @Test func stepBatchesNameTheirStepsAndRefuseBadOnes() throws {
        let entry = StepBatch.Entry(step: "bench/1", attempt: 1, role: .bench, params: [:], inputs: [:], artifacts: [])
        let batch = StepBatch(request: WorkflowRequest(), steps: [entry, entry])
        let steps = try StepBatch.decode(Array(try JSONEncoder().encode(batch)), workflow: "w")
        #expect(steps.map(\.0) == [StepKey(workflow: "w", step: "bench/1", attempt: 1), StepKey(workflow: "w", step: "bench/1", attempt: 1)])
        #expect(steps[0].1.role == .bench && steps[0].1.request == WorkflowRequest())
        for bad in [
            StepBatch(request: WorkflowRequest(), steps: []),
            StepBatch(request: WorkflowRequest(), steps: [StepBatch.Entry(step: "", attempt: 1, role: .bench, params: [:], inputs: [:], artifacts: [])]),
            StepBatch(request: WorkflowRequest(), steps: [StepBatch.Entry(step: "s", attempt: 0, role: .bench, params: [:], inputs: [:], artifacts: [])]),
        ] {
            #expect(throws: DecodeError.self) { try StepBatch.decode(Array(try JSONEncoder().encode(bad)), workflow: "w") }
        }
        #expect(throws: DecodeError.self) { try StepBatch.decode(Array(#"{"steps":[]}"#.utf8), workflow: "w") }
    }

    @Test func messageIDsAreDistinctAndWithinTheHeaderLimit() {
        let ids = (0..<10_000).map { _ in MessageID.next() }
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { (1...64).contains($0.utf8.count) })
    }
}
