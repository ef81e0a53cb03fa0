import Foundation
import PropertyBased
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

    @Test func everyIntegerIsWrittenAsJSONEncoderWritesIt() async {
        await propertyCheck(count: 1000, input: Gen.int(), Gen.int32(), Gen.uint8()) { number, small, byte in
            var json = CompactJSON()
            json.beginArray()
            json.integer(number)
            json.integer(small)
            json.integer(byte)
            json.bool(number < 0)
            json.null()
            json.endArray()
            let expected: [JSONValue] = [
                .integer(number), .integer(Int(small)), .integer(Int(byte)), .bool(number < 0), .null,
            ]
            #expect(String(decoding: json.bytes, as: UTF8.self) == Self.encodedOrFailure(expected))
        }
    }

    private static let values: [String: JSONValue] = [
        "text": "a/b \"c\"", "count": 42, "negative": -7, "ratio": 0.25, "tiny": 1e-300, "flag": true, "none": .null,
        "list": [1, "two", [3.5], ["k": false]], "nested": ["deep": ["deeper": "é"]], "big": .integer(Int.max),
        "integral": .number(3.0),
    ]

    @Test func resultsAreWrittenAsJSONEncoderWritesThemAndReadBackEqual() throws {
        for text in CompactJSONTests.awkward {
            let result = StepResult.sample(text, values: CompactJSONTests.values)
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

    // MARK: Generated values

    /// What `JSONEncoder` writes, or a text no writer writes (property checks take no throwing body).
    private static func encodedOrFailure<T: Encodable>(_ value: T) -> String {
        (try? sortedEncoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "JSONEncoder failed"
    }

    /// Characters that JSON escapes or that take several UTF-8 bytes, among plain ones.
    private static let scalars: [Unicode.Scalar] = [
        "a", "Z", "0", " ", "/", "\"", "\\", "\n", "\r", "\t", "\u{00}", "\u{08}", "\u{0C}", "\u{1F}", "\u{7F}", "é",
        "\u{2028}", "☃", "𝄞", "<", "-",
    ]
    private static let text = Gen<Unicode.Scalar?>.element(of: scalars).compactMap { $0 }.array(of: 0...12).map {
        String(String.UnicodeScalarView($0))
    }
    /// Optional texts (nil about one time in three), then integers of every size and small ones, then flags.
    private static let texts = text.optional(valueRate: 0.67).array(of: 12)
    private static let numbers = Gen.int64().array(of: 6)
    private static let small = Gen.int64(in: -3...3).array(of: 6)
    private static let flags = Gen.bool.array(of: 6)

    private static let stepStates: [StepSnapshot.State] = [
        .pending, .assigned, .running, .succeeded, .failed, .skipped, .cancelled,
    ]
    private static let workflowStates: [WorkflowSnapshot.State] = [
        .running, .succeeded, .failed, .cancelled, .destroyed, .interrupted,
    ]

    /// Picks from `choices` by a number of any sign.
    private static func pick<T>(_ choices: [T], _ number: Int64) -> T {
        choices[Int(number.magnitude % UInt64(choices.count))]
    }

    /// JSON values of every kind: texts as keys and strings, integers of every size, nested containers.
    private static func values(_ t: [String?], _ n: [Int64], _ f: [Bool]) -> [String: JSONValue] {
        var values: [String: JSONValue] = [:]
        if f[0] { values[t[6] ?? "text"] = .string(t[7] ?? "") }
        if f[1] { values["count"] = .integer(Int(n[2])) }
        if f[2] { values["nested"] = .object([t[8] ?? "": .array([.null, .bool(f[3]), .integer(Int(n[3]))])]) }
        if f[4] { values[t[9] ?? "list"] = .array([.string(t[10] ?? "x"), .object([:]), .array([])]) }
        return values
    }

    private static func step(_ t: [String?], _ n: [Int64], _ s: [Int64], _ f: [Bool]) -> StepSnapshot {
        var step = StepSnapshot(
            name: t[0] ?? "", role: pick(Role.allCases + [.bench], n[0]), needs: [t[1], t[2]].compactMap { $0 },
            critical: f[5], params: f[0] ? nil : values(t, n, f))
        step.state = pick(stepStates, n[1])
        step.attempt = Int(s[0])
        step.agent = t[3]
        step.host = t[4]
        step.pid = t[5].map { _ in Int32(truncatingIfNeeded: n[4]) }
        step.startedAt = t[3].map { _ in n[5] }
        step.finishedAt = t[4].map { _ in s[1] }
        step.summary = t[11]
        step.error = t[10]
        step.values = values(t, n, f)
        step.failures = t[9].map { _ in Int(s[2]) }
        return step
    }

    @Test func generatedStepsAreWrittenAsJSONEncoderWritesThem() async {
        await propertyCheck(count: 500, input: Self.texts, Self.numbers, Self.small, Self.flags) { t, n, s, f in
            let step = Self.step(t, n, s, f)
            #expect(String(decoding: step.compactJSON, as: UTF8.self) == Self.encodedOrFailure(step))
            #expect((try? JSONDecoder().decode(StepSnapshot.self, from: Data(step.compactJSON))) == step)
        }
    }

    @Test func generatedHeadersAreWrittenAsJSONEncoderWritesThem() async {
        await propertyCheck(count: 500, input: Self.texts, Self.numbers, Self.small, Self.flags) { t, n, s, _ in
            var header = Header(
                type: Self.pick(MessageType.allCases, n[0]), workflow: t[0], step: t[1],
                attempt: t[2].map { _ in Int(n[1]) }, sender: t[3], re: t[4], id: t[5] ?? "")
            header.sentAt = n[2]
            header.v = Int(s[0])
            #expect(String(decoding: header.compactJSON, as: UTF8.self) == Self.encodedOrFailure(header))
        }
    }

    private static func event(_ t: [String?], _ n: [Int64], _ s: [Int64], _ f: [Bool]) -> WorkflowEvent {
        let steps = (0..<Int(s[3].magnitude)).map { _ in Self.step(t.shuffled(), n.shuffled(), s, f.shuffled()) }
        return WorkflowEvent(
            workflow: t[0] ?? "", previousRevision: Int(n[0]), revision: Int(n[1]), state: pick(workflowStates, n[2]),
            error: t[1], finishedAt: t[2].map { _ in n[3] }, steps: steps)
    }

    @Test func eventsAreWrittenAsJSONEncoderWritesThemAndReadBackEqual() async {
        await propertyCheck(count: 300, input: Self.texts, Self.numbers, Self.small, Self.flags) { t, n, s, f in
            let event = Self.event(t, n, s, f)
            #expect(String(decoding: event.compactJSON, as: UTF8.self) == Self.encodedOrFailure(event))
            #expect(event.compactJSON(encodedSteps: event.steps.map(\.compactJSON)) == event.compactJSON)
            #expect((try? JSONDecoder().decode(WorkflowEvent.self, from: Data(event.compactJSON))) == event)
        }
    }

    @Test func anEventWithNothingOptionalAndNoStepsIsWrittenAsJSONEncoderWritesIt() throws {
        let event = WorkflowEvent(
            workflow: "", previousRevision: 0, revision: Int.max, state: .running, error: nil, finishedAt: nil,
            steps: [])
        #expect(String(decoding: event.compactJSON, as: UTF8.self) == (try encoded(event)))
        #expect(String(decoding: event.compactJSON, as: UTF8.self).contains(#""steps":[]"#))
    }

    private static func workflow(_ t: [String?], _ n: [Int64], _ s: [Int64], _ f: [Bool]) -> WorkflowSnapshot {
        var request = WorkflowRequest()
        request.clusterName = t[5] ?? ""
        request.hosts = [t[6], t[7]].compactMap { $0 }
        request.sshKeyPath = t[8]
        request.nodes = Int(n[4])
        request.highAvailability = f[0]
        return WorkflowSnapshot(
            id: t[0] ?? "", state: pick(workflowStates, n[0]), request: request, createdAt: n[1],
            finishedAt: t[1].map { _ in n[2] }, steps: [Self.step(t, n, s, f)], error: t[2], revision: Int(n[3]),
            operation: t[3].map { WorkflowOperation(kind: f[1] ? .validate : .destroy, target: $0) })
    }

    @Test func workflowHeaderRowsAreWrittenAsJSONEncoderWritesTheWorkflowWithoutSteps() async {
        await propertyCheck(count: 500, input: Self.texts, Self.numbers, Self.small, Self.flags) { t, n, s, f in
            let workflow = Self.workflow(t, n, s, f)
            var withoutSteps = workflow
            withoutSteps.steps = []
            let request = Array((try? CompactJSONTests.sortedEncoder.encode(workflow.request)) ?? Data())
            let row = workflow.headerCompactJSON(request: request)
            #expect(String(decoding: row, as: UTF8.self) == Self.encodedOrFailure(withoutSteps))
            #expect((try? JSONDecoder().decode(WorkflowSnapshot.self, from: Data(row))) == withoutSteps)
        }
    }

    @Test func optionalMembersAreLeftOutWhenNil() {
        var json = CompactJSON()
        json.beginObject()
        json.member("a", ifPresent: nil as String?)
        json.member("b", ifPresent: nil as Int?)
        json.member("c", ifPresent: nil as [String: JSONValue]?)
        json.member("d", ifPresent: nil as Bool?) { json, flag in json.bool(flag) }
        json.member("e", ifPresent: "x/y")
        json.member("f", ifPresent: Int64.min)
        json.member("g", ifPresent: [:] as [String: JSONValue]?)
        json.member("h", ifPresent: false) { json, flag in json.bool(flag) }
        json.member("i", ifPresent: nil as String?)
        json.endObject()
        #expect(
            String(decoding: json.bytes, as: UTF8.self) == #"{"e":"x\/y","f":-9223372036854775808,"g":{},"h":false}"#)
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

extension StepResult {
    /// A result whose summary, log, error and one artifact hold `text`, with a sensitive and a plain artifact.
    static func sample(_ text: String, values: [String: JSONValue]) -> StepResult {
        StepResult(
            outcome: text.isEmpty ? .succeeded : .failed,
            output: StepOutput(
                summary: text, values: values,
                artifacts: [
                    Artifact(name: "kubeconfig", path: "kubeconfigs/w/kubeconfig", sensitive: true, text: text),
                    Artifact(name: "plan", path: nil, data: Data([0, 1, 2, 255])),
                ], log: [text, "line two"]),
            error: text.isEmpty ? nil : text, agent: "docs-1", host: "h/1", pid: 42, startedAt: -1,
            finishedAt: 1_700_000_000_000)
    }
}
