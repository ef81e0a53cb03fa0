import Foundation
import Testing

@testable import Protocol

/// The quick header reader must agree with `JSONDecoder` on everything it accepts, and leave the rest to it.
@Suite struct FastHeaderTests {
    private static let headers: [Header] = MessageType.allCases.flatMap { type in
        [
            Header(type: type),
            Header(type: type, workflow: "k3s-dev-1", step: "check/api", attempt: 3, sender: "validation-1", re: "x-1"),
            Header(type: type, sender: "planner-host-42"),
        ]
    }

    private func fullDecode(_ bytes: [UInt8]) -> Header? {
        try? JSONDecoder().decode(Header.self, from: Data(bytes))
    }

    @Test func readsWhatShoalWritesAsJSONDecoderDoes() throws {
        for header in FastHeaderTests.headers {
            let bytes = Codec.encodeJSON(header)
            let fast = try #require(FastHeader.parse(bytes), "\(String(decoding: bytes, as: UTF8.self))")
            #expect(fast == header)
            #expect(fast == fullDecode(bytes))
        }
    }

    @Test(arguments: [
        #"{ "v":4,"type":"ack","id":"a","sentAt":1}"#,  // whitespace
        #"{"v":4,"type":"ack","id":"a\u0041","sentAt":1}"#,  // an escape
        #"{"v":4,"type":"ack","id":"é","sentAt":1}"#,  // non-ASCII
        #"{"v":4,"type":"ack","id":"a","sentAt":1,"extra":1}"#,  // an unknown key
        #"{"v":4,"type":"ack","id":"a","id":"b","sentAt":1}"#,  // a duplicate
        #"{"v":4.0,"type":"ack","id":"a","sentAt":1}"#,  // a fraction
        #"{"v":03,"type":"ack","id":"a","sentAt":1}"#,  // a leading zero
        #"{"v":4,"type":"nope","id":"a","sentAt":1}"#,  // an unknown type
        #"{"v":4,"type":"ack","id":null,"sentAt":1}"#,  // null where a value is required
        #"{"v":4,"type":"ack","sentAt":1}"#,  // a missing key
        #"{"v":4,"type":"ack","id":"a","sentAt":1}x"#,  // trailing bytes
        #"{"v":4,"type":"ack","id":"a","sentAt":12345678901234567890}"#,  // too many digits
        "{}",
    ])
    func leavesAnythingUnusualToJSONDecoder(_ text: String) {
        #expect(FastHeader.parse(Array(text.utf8)) == nil)
    }

    @Test func nullOptionalsReadAsAbsent() throws {
        let bytes = Array(#"{"attempt":null,"id":"a","sentAt":-5,"sender":null,"type":"heartbeat","v":4}"#.utf8)
        let fast = try #require(FastHeader.parse(bytes))
        #expect(fast == fullDecode(bytes))
        #expect(fast.attempt == nil && fast.sender == nil && fast.sentAt == -5)
    }

    /// Random damage to real headers: whatever the quick reader still accepts, JSONDecoder reads the same.
    @Test func damagedHeadersAreAcceptedOnlyWhenJSONDecoderAgrees() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array(#"{}[]":,0123456789-.aenlu\/ "#.utf8)
        var accepted = 0
        for header in FastHeaderTests.headers {
            let original = Codec.encodeJSON(header)
            for _ in 0..<200 {
                var bytes = original
                for _ in 0..<Int.random(in: 1...3, using: &generator) {
                    let index = Int.random(in: 0..<bytes.count, using: &generator)
                    switch Int.random(in: 0..<3, using: &generator) {
                    case 0: bytes[index] = alphabet.randomElement(using: &generator)!
                    case 1: bytes.remove(at: index)
                    default: bytes.insert(alphabet.randomElement(using: &generator)!, at: index)
                    }
                    if bytes.isEmpty { break }
                }
                if let fast = FastHeader.parse(bytes) {
                    accepted += 1
                    #expect(fast == fullDecode(bytes), "\(String(decoding: bytes, as: UTF8.self))")
                }
            }
        }
        #expect(accepted > 0)
    }

    @Test func anIdleHeartbeatIsRecognisedAndOthersDecodeStrictly() throws {
        #expect(Heartbeat.emptyEncoded == Array(#"{"inFlight":[]}"#.utf8))
        #expect(try Heartbeat.decode(Heartbeat.emptyEncoded) == Heartbeat())
        let busy = Heartbeat(inFlight: [StepKey(workflow: "w-1", step: "plan", attempt: 1)], rejected: ["oversized": 2])
        #expect(try Heartbeat.decode(Codec.encodeJSON(busy)) == busy)
        #expect(throws: DecodeError.self) { try Heartbeat.decode(Array(#"{"inFlight":3}"#.utf8)) }
    }
}
