import Foundation
import PropertyBased
import Testing

@testable import Protocol

/// The quick reader must read what `JSONDecoder` reads, or step aside: for every text it accepts, `JSONDecoder`
/// accepts it too and gives the same value; and it must not step aside on what shoal writes.
@Suite struct JSONReaderTests {
    private func decoded(_ bytes: [UInt8]) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    /// The reader agrees with `JSONDecoder` on these bytes (or leaves them to it); returns whether it read them.
    @discardableResult
    private func agrees(_ bytes: [UInt8], _ comment: Comment? = nil) -> Bool {
        guard let quick = JSONReader.parse(bytes) else { return false }
        #expect(decoded(bytes) == quick, comment)
        return true
    }

    @Test(arguments: [
        #"{}"#, #"[]"#, #""""#, #"0"#, #"-0"#, #"-12"#, #"999999999999999999"#, #"-999999999999999999"#, "true",
        "false", "null", #"{"a":{"b":[1,2,{"c":null}]}}"#, " { \"a\" :\t[ 1 ,\n2 ] } \r\n", #""a\/b\"c\\d""#,
        #""\b\f\n\r\t""#, #""\u0000\u001f\u00e9\u2028""#, #""\ud834\udd1e""#, #""café ☃ 𝄞""#, #"{"":""}"#,
    ])
    func readsWhatJSONDecoderReadsTheSame(_ text: String) {
        #expect(agrees(Array(text.utf8), "\(text)"))
    }

    @Test(arguments: [
        // Left to JSONDecoder: numbers it reads its own way, repeated keys.
        "1.5", "1e3", "1E3", "3.0", "1234567890123456789", #"{"a":1,"a":2}"#,
        // Not JSON: JSONDecoder rejects them as well.
        "", "{", "[1,]", #"{"a":1,}"#, "01", "-", "+1", "tru", "nul", #""\x""#, #""\u12""#, #""\ud834""#,
        #""\udd1e""#, "\"tab\there\"", #"{"a" 1}"#, "[1] 2", #"{1:2}"#, "'a'",
    ])
    func leavesToJSONDecoderWhatItIsNotSureOf(_ text: String) {
        #expect(JSONReader.parse(Array(text.utf8)) == nil, "\(text)")
    }

    @Test func invalidUTF8AndDeepNestingAreLeftToJSONDecoder() {
        #expect(JSONReader.parse([0x22, 0xC3, 0x28, 0x22]) == nil)
        #expect(JSONReader.parse([0x22, 0xFF, 0x22]) == nil)
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(JSONReader.parse(Array(deep.utf8)) == nil)
        let shallow = String(repeating: "[", count: 60) + String(repeating: "]", count: 60)
        #expect(agrees(Array(shallow.utf8)))
    }

    @Test func membersGiveEachValuesBytes() throws {
        let text = Array(#" {"request": {"a":[1]} , "steps":[] } "#.utf8)
        let members = try #require(JSONReader.members(text))
        #expect(String(decoding: text[try #require(members["request"])], as: UTF8.self) == #"{"a":[1]}"#)
        #expect(String(decoding: text[try #require(members["steps"])], as: UTF8.self) == "[]")
        #expect(JSONReader.members(Array(#"{"a":1,"a":2}"#.utf8)) == nil)
        #expect(JSONReader.members(Array("[1]".utf8)) == nil)
    }

    /// A random tree of strings, integers, booleans, nulls, arrays and objects from `seed`.
    private static func tree(_ seed: Int) -> JSONValue {
        var random = SplitMix(seed: UInt64(bitPattern: Int64(seed)))
        let pieces = ["a", "/", "\"", "\\", "\n", "\u{01}", "é", "☃", "𝄞", " ", "\u{7F}", "\u{2028}", "0"]
        func text() -> String {
            (0..<Int(random.next() % 6)).map { _ in pieces[Int(random.next() % UInt64(pieces.count))] }.joined()
        }
        func value(_ depth: Int) -> JSONValue {
            switch random.next() % (depth > 3 ? 4 : 6) {
            case 0: return .string(text())
            case 1:
                let magnitude = Int(random.next() % 1_000_000_000_000_000_000)
                return .integer(random.next() % 2 == 0 ? magnitude : -magnitude)
            case 2: return .bool(random.next() % 2 == 0)
            case 3: return .null
            case 4: return .array((0..<Int(random.next() % 4)).map { _ in value(depth + 1) })
            default:
                var members: [String: JSONValue] = [:]
                for _ in 0..<Int(random.next() % 4) { members[text()] = value(depth + 1) }
                return .object(members)
            }
        }
        return value(0)
    }

    @Test func readsEveryTreeJSONEncoderWritesAndAgreesOnEveryDamagedCopy() async {
        await propertyCheck(count: 600, input: Gen.int()) { seed in
            let value = Self.tree(seed)
            guard let encoded = try? Array(JSONEncoder().encode(value)) else {
                Issue.record("tree \(seed) did not encode")
                return
            }
            #expect(JSONReader.parse(encoded) == value, "seed \(seed)")
            // Damaged copies: a byte dropped, replaced or doubled, wherever it is.
            var random = SplitMix(seed: UInt64(bitPattern: Int64(seed)) ^ 0x5eed)
            for _ in 0..<8 where !encoded.isEmpty {
                var damaged = encoded
                let at = Int(random.next() % UInt64(encoded.count))
                switch random.next() % 3 {
                case 0: damaged.remove(at: at)
                case 1: damaged[at] = Array(#"{}[],:"\0-1tfn é"#.utf8)[Int(random.next() % 17)]
                default: damaged.insert(damaged[at], at: at)
                }
                agrees(damaged, "seed \(seed)")
            }
        }
    }

    @Test func resultsAreReadQuicklyAsJSONDecoderReadsThem() throws {
        for text in ["", "plain", "quote\"and\\backslash", "tab\tnew\nline", "café ☃ 𝄞", "\u{2028}"] {
            let result = StepResult.sample(text, values: ["text": "a/b", "count": 42, "list": [1, "two", ["k": false]]])
            let quick = try #require(StepResult.quick(result.compactJSON), "\(text)")
            #expect(quick == result)
            #expect(try StepResult.decode(Array(JSONEncoder().encode(result))) == result)
        }
        // A sensitive artifact keeps the mode it came with, as JSONDecoder decodes it.
        var artifact = Artifact(name: "k", path: nil, sensitive: true, text: "x")
        artifact.mode = 0o644
        let odd = StepResult(
            outcome: .succeeded, output: StepOutput(summary: "", artifacts: [artifact]), error: nil, agent: "a",
            host: "h", pid: 1, startedAt: 0, finishedAt: 0)
        #expect(StepResult.quick(odd.compactJSON) == (try JSONDecoder().decode(StepResult.self, from: Data(odd.compactJSON))))
        // A fraction goes the long way and still decodes.
        let scored = StepResult.sample("x", values: ["score": 0.25])
        #expect(StepResult.quick(scored.compactJSON) == nil)
        #expect(try StepResult.decode(scored.compactJSON) == scored)
    }

    @Test func damagedResultsAreReadAsJSONDecoderReadsThemOrRejected() async {
        let body = StepResult.sample("x/\"y\"", values: ["n": 7, "s": "t"]).compactJSON
        await propertyCheck(count: 1500, input: Gen.int(in: 0...Int.max)) { seed in
            var random = SplitMix(seed: UInt64(seed))
            var damaged = body
            for _ in 0...Int(random.next() % 3) {
                let at = Int(random.next() % UInt64(damaged.count))
                switch random.next() % 3 {
                case 0: damaged.remove(at: at)
                case 1: damaged[at] = Array(#"{}[],:"0-1tfn"#.utf8)[Int(random.next() % 13)]
                default: damaged.insert(damaged[at], at: at)
                }
            }
            let slow = try? JSONDecoder().decode(StepResult.self, from: Data(damaged))
            if let quick = StepResult.quick(damaged) { #expect(quick == slow, "seed \(seed)") }
            #expect((try? StepResult.decode(damaged)) == slow, "seed \(seed)")
        }
    }

    @Test func batchesAndAssignmentsAreReadQuicklyAndTheirRequestOnce() throws {
        let ref = ArtifactRef(
            name: "cluster-state", path: "kubeconfigs/w/k", mode: 0o600, sensitive: true, size: 3,
            digest: String(repeating: "ab", count: 32))
        let entry = StepBatch.Entry(
            step: "check/api", attempt: 2, role: .validation, params: ["check": "api", "n": 1],
            inputs: ["provision": ["hostGateway": "10.0.0.1"]], artifacts: [ref])
        var request = WorkflowRequest()
        let batch = StepBatch(request: request, steps: [entry, entry])
        let body = Array(try JSONEncoder().encode(batch))
        var requests = RequestCache()
        #expect(StepBatch.quick(body, requests: &requests) == batch)
        let assignment = StepAssignment(
            role: .validation, request: request, params: entry.params, inputs: entry.inputs, artifacts: [ref])
        #expect(StepAssignment.quick(Array(try JSONEncoder().encode(assignment)), requests: &requests) == assignment)
        // Another request is decoded, not taken from the cache.
        request.nodes = 3
        let other = StepAssignment(role: .docs, request: request, params: [:], inputs: [:], artifacts: [])
        let decoded = try StepAssignment.decode(Array(try JSONEncoder().encode(other)), requests: &requests)
        #expect(decoded == other && decoded.request.nodes == 3)
        // An invalid request is rejected as JSONDecoder rejects it.
        let bad = Array(#"{"request":{"nodes":"1"},"role":"docs","params":{},"inputs":{},"artifacts":[]}"#.utf8)
        #expect(StepAssignment.quick(bad, requests: &requests) == nil)
        #expect(throws: DecodeError.self) { try StepAssignment.decode(bad, requests: &requests) }
    }
}

extension JSONReaderTests {
    @Test func keyListsAndHeartbeatsAreReadQuicklyAsJSONDecoderReadsThem() async throws {
        let keys = [
            StepKey(workflow: "k3s-dev-1", step: "check/api", attempt: 1),
            StepKey(workflow: "k3s-dev-2", step: "é/\"x\"", attempt: 10_000),
        ]
        let list = KeyList(keys: keys)
        #expect(KeyList.quick(list.compactJSON) == list)
        let beat = Heartbeat(inFlight: keys, rejected: ["malformed-body": 3])
        let body = Array(try JSONEncoder().encode(beat))
        #expect(Heartbeat.quick(body) == beat)
        #expect(Heartbeat.quick(Array(try JSONEncoder().encode(Heartbeat(inFlight: keys)))) == Heartbeat(inFlight: keys))
        await propertyCheck(count: 1000, input: Gen.int(in: 0...Int.max)) { seed in
            var random = SplitMix(seed: UInt64(seed))
            for original in [list.compactJSON, body] {
                var damaged = original
                let at = Int(random.next() % UInt64(damaged.count))
                switch random.next() % 3 {
                case 0: damaged.remove(at: at)
                case 1: damaged[at] = Array(#"{}[],:"0-1tfn"#.utf8)[Int(random.next() % 13)]
                default: damaged.insert(damaged[at], at: at)
                }
                if let quick = KeyList.quick(damaged) {
                    #expect(quick == (try? JSONDecoder().decode(KeyList.self, from: Data(damaged))), "seed \(seed)")
                }
                if let quick = Heartbeat.quick(damaged) {
                    #expect(quick == (try? JSONDecoder().decode(Heartbeat.self, from: Data(damaged))), "seed \(seed)")
                }
            }
        }
    }
}

/// A small seeded generator, so a failing seed reproduces.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension JSONReaderTests {
    @Test func plansAreSplitQuicklyAsTheyDecode() throws {
        let plan = Plan(steps: [
            PlannedStep(name: "provision", role: .infra, critical: true),
            PlannedStep(name: "check/api", role: .validation, needs: ["provision"], params: ["check": "api"]),
        ])
        let output = try StepOutput(summary: "2 steps", typed: PlanOutput(plan: plan, servers: 1, agents: 1))
        #expect(Plan.quick(try #require(output.values["plan"])) == plan)
        let (split, kept) = try output.splitPlan()
        #expect(split == plan && kept["plan"] == nil && kept["servers"] == 1)
        // The rest of the output is still checked, and a plan of another shape still names its field.
        var badRest = output
        badRest.values["servers"] = "one"
        #expect(throws: StepContractError.self) { try badRest.splitPlan() }
        var badPlan = output
        badPlan.values["plan"] = ["steps": [["name": "x", "role": "nobody"]]]
        #expect(Plan.quick(try #require(badPlan.values["plan"])) == nil)
        #expect(throws: StepContractError.self) { try badPlan.splitPlan() }
    }
}
