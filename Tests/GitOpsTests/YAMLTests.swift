import Testing
import Yams

@testable import GitOps

@Suite struct YAMLEmitterTests {
    @Test(arguments: [
        "true", "False", "null", "~", "123", "1.5", "0x10", "-dash", "a: b", "# hash", "", " lead", "trail ",
        "quote\"back\\slash", "multi\nline", "tab\there", "*star", "&amp", "!bang", "[list]", "{map}", "@at", "y",
        "plain-value", "quay.io/prometheus/prometheus:v3.14.0", "ends:", "caf\u{e9}", "\u{7}bell",
    ])
    func stringsRoundTripThroughAYAMLParser(text: String) throws {
        let document: YAML = ["key": .string(text), "list": [.string(text)]]
        let parsed = try #require(try Yams.load(yaml: document.body()) as? [String: Any])
        #expect(parsed["key"] as? String == text)
        #expect((parsed["list"] as? [Any])?.first as? String == text)
    }

    @Test func blockScalarsKeepTheirTextExactly() throws {
        for text in ["a\nb\n", "no newline", "two\n\n", "  indented first\nx\n", "a\n\n\nb\n"] {
            let document: YAML = ["data": ["file": .block(text)]]
            let parsed = try Yams.load(yaml: document.document())
            #expect(value(parsed, "data", "file") as? String == text, "block \(text.debugDescription)")
        }
    }

    @Test func mapsKeepTheirOrderAndSequencesAreIndented() {
        let document: YAML = ["b": 1, "a": ["items": [["x": 1, "y": 2], "z"]], "e": [:], "f": []]
        #expect(
            document.document() == """
                ---
                b: 1
                a:
                  items:
                    - x: 1
                      "y": 2
                    - z
                e: {}
                f: []

                """)
    }
}
