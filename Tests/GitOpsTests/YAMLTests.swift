import PropertyBased
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

@Suite struct YAMLUnicodeTests {
    /// Characters from every class that matters to a YAML writer: C0 and C1 controls, DEL, the line breaks
    /// YAML parsers know (CR, NEL, LS, PS), the byte order mark, non-characters, indicators, quotes, spaces,
    /// non-ASCII letters and characters beyond the Basic Multilingual Plane.
    static let interesting: [Unicode.Scalar] = [
        "\u{0}", "\u{1}", "\u{7}", "\u{8}", "\t", "\n", "\u{B}", "\u{C}", "\r", "\u{1B}", "\u{1F}", " ", "!", "\"",
        "#", "%", "&", "'", "*", ",", "-", ":", ">", "?", "@", "[", "\\", "]", "`", "{", "|", "}", "~", "\u{7F}",
        "\u{80}", "\u{85}", "\u{90}", "\u{9F}", "\u{A0}", "\u{E9}", "\u{FF}", "\u{2028}", "\u{2029}", "\u{D7FF}",
        "\u{E000}", "\u{FEFF}", "\u{FFFD}", "\u{FFFE}", "\u{FFFF}", "\u{1F600}", "\u{10FFFF}", "a", "Z", "0", "9",
        ".", "=", "/", "\u{301}", "\u{349}",
    ]

    /// Yams turns the scalars it parses into Swift strings the way Foundation reads UTF-8, which drops a leading
    /// byte order mark; so the mark is generated anywhere but first (the writer escapes it wherever it is).
    static let text = Gen<Unicode.Scalar?>.element(of: interesting).compactMap { $0 }.array(of: 0...12).map {
        $0.first == "\u{FEFF}" ? String(String.UnicodeScalarView(["x"] + $0)) : String(String.UnicodeScalarView($0))
    }

    private func load(_ yaml: String) throws -> Any? { try Yams.load(yaml: yaml) }

    @Test func everyStringRoundTripsAsValueKeyAndListItem() async {
        await propertyCheck(count: 1500, input: Self.text, Self.text) { text, key in
            let document: YAML = .pairs([(key, .string(text)), ("list", [.string(text), ["k": .string(text)]])])
            let yaml = document.document()
            let parsed = (try? load(yaml)) as? [String: Any]
            #expect(parsed?[key] as? String == text, "\(text.debugDescription) in \(yaml.debugDescription)")
            let list = parsed?["list"] as? [Any]
            #expect(list?.first as? String == text)
            #expect((list?.last as? [String: Any])?["k"] as? String == text)
        }
    }

    @Test func everyBlockKeepsItsTextExactly() async {
        let lines = Self.text.array(of: 1...4).map { $0.joined(separator: "\n") }
        await propertyCheck(count: 1500, input: lines, Gen.bool) { text, trailingNewline in
            let block = text + (trailingNewline ? "\n" : "")
            let document: YAML = ["data": ["file": .block(block)], "list": [.block(block)]]
            let yaml = document.document()
            let parsed = (try? load(yaml)) as? [String: Any]
            #expect(
                (parsed?["data"] as? [String: Any])?["file"] as? String == block,
                "\(block.debugDescription) in \(yaml.debugDescription)")
            #expect((parsed?["list"] as? [Any])?.first as? String == block)
        }
    }

    @Test(arguments: ["\u{90}", "a\u{85}b", "x\u{2028}y\u{2029}z", "b\u{FEFF}om", "del\u{7F}"])
    func controlsAndLineSeparatorsAreEscaped(text: String) throws {
        let yaml = YAML.map([.init(key: "k", value: .string(text))]).body()
        #expect(yaml.unicodeScalars.allSatisfy { $0.value < 0x7F || $0.value > 0x9F || $0 == "\u{A0}" })
        #expect(!yaml.unicodeScalars.contains { ["\u{85}", "\u{2028}", "\u{2029}", "\u{FEFF}"].contains($0) })
        #expect((try Yams.load(yaml: yaml) as? [String: Any])?["k"] as? String == text)
    }

    @Test(arguments: [" \u{349}de;\t/", "\u{9}\u{301}x\ny", "a\n \u{301}"])
    func combiningMarksAfterASpaceOrTabDoNotHideIt(text: String) throws {
        // Found by `make fuzz`: a space and a combining mark are one Character, but the parser sees the space.
        for value in [YAML.block(text), .block(text + "\n")] {
            let yaml = YAML.map([.init(key: "k", value: value)]).body()
            let expected = if case .block(let raw) = value { raw } else { "" }
            #expect((try Yams.load(yaml: yaml) as? [String: Any])?["k"] as? String == expected, "\(yaml.debugDescription)")
        }
    }

    @Test func aBlockWhoseFirstLineIsEmptyStatesItsIndentation() throws {
        let text = "\n  indented after an empty line\nx\n"
        let yaml = YAML.map([.init(key: "k", value: .block(text))]).body()
        #expect(yaml.hasPrefix("k: |2\n"))
        #expect((try Yams.load(yaml: yaml) as? [String: Any])?["k"] as? String == text)
    }
}
