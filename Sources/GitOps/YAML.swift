/// A small YAML document model with a deterministic emitter.
///
/// Manifests are built as values and emitted, never assembled from string fragments, so that user input (a cluster
/// name, a password) is always quoted correctly. The output style follows yamllint's defaults: sequences indented
/// under their key, two spaces, `---` before every document, no trailing spaces.
indirect enum YAML: Equatable, Sendable {
    case map([Pair])
    case list([YAML])
    case string(String)
    case int(Int)
    case bool(Bool)
    /// A literal block scalar (`|`), for embedded configuration files.
    case block(String)

    struct Pair: Equatable, Sendable {
        var key: String
        var value: YAML
    }

    /// Emits one document, starting with `---`.
    func document() -> String {
        var lines = ["---"]
        emitTopLevel(into: &lines)
        return lines.joined(separator: "\n") + "\n"
    }

    /// Emits the value without a document marker (for configuration files embedded in a ConfigMap).
    func body() -> String {
        var lines: [String] = []
        emitTopLevel(into: &lines)
        return lines.joined(separator: "\n") + "\n"
    }

    /// Several documents in one file.
    static func stream(_ documents: [YAML]) -> String {
        documents.map { $0.document() }.joined()
    }

    private func emitTopLevel(into lines: inout [String]) {
        switch self {
        case .map(let pairs) where !pairs.isEmpty: YAML.emitPairs(pairs, indent: 0, into: &lines)
        case .list(let items) where !items.isEmpty: YAML.emitItems(items, indent: 0, into: &lines)
        case .block(let text): lines.append(YAML.doubleQuoted(text))
        default: lines.append(inlineScalar ?? "")
        }
    }

    /// The inline form of scalars and empty collections; nil for anything that needs its own lines.
    private var inlineScalar: String? {
        switch self {
        case .string(let text): return YAML.quoteIfNeeded(text)
        case .int(let value): return String(value)
        case .bool(let value): return value ? "true" : "false"
        case .map(let pairs): return pairs.isEmpty ? "{}" : nil
        case .list(let items): return items.isEmpty ? "[]" : nil
        case .block: return nil
        }
    }

    private static func emitPairs(_ pairs: [Pair], indent: Int, into lines: inout [String]) {
        let pad = String(repeating: " ", count: indent)
        for pair in pairs {
            let key = quoteIfNeeded(pair.key)
            if let scalar = pair.value.inlineScalar {
                lines.append("\(pad)\(key): \(scalar)")
                continue
            }
            switch pair.value {
            case .map(let inner):
                lines.append("\(pad)\(key):")
                emitPairs(inner, indent: indent + 2, into: &lines)
            case .list(let items):
                lines.append("\(pad)\(key):")
                emitItems(items, indent: indent + 2, into: &lines)
            case .block(let text):
                emitBlock(text, header: "\(pad)\(key): ", indent: indent + 2, into: &lines)
            default:
                break
            }
        }
    }

    private static func emitItems(_ items: [YAML], indent: Int, into lines: inout [String]) {
        let pad = String(repeating: " ", count: indent)
        for item in items {
            if let scalar = item.inlineScalar {
                lines.append("\(pad)- \(scalar)")
                continue
            }
            switch item {
            case .map(let pairs):
                // The first pair shares the dash's line; the rest align with it.
                var nested: [String] = []
                emitPairs(pairs, indent: indent + 2, into: &nested)
                let first = nested.removeFirst()
                lines.append("\(pad)- " + first.dropFirst(indent + 2))
                lines.append(contentsOf: nested)
            case .list(let inner):
                lines.append("\(pad)-")
                emitItems(inner, indent: indent + 2, into: &lines)
            case .block(let text):
                emitBlock(text, header: "\(pad)- ", indent: indent + 2, into: &lines)
            default:
                break
            }
        }
    }

    private static func emitBlock(_ text: String, header: String, indent: Int, into lines: inout [String]) {
        guard isBlockSafe(text) else {
            lines.append(header + doubleQuoted(text))
            return
        }
        var chomp = "-"
        var content = Substring(text)
        if content.hasSuffix("\n") {
            content = content.dropLast()
            chomp = content.hasSuffix("\n") ? "+" : ""
        }
        let contentLines = content.split(separator: "\n", omittingEmptySubsequences: false)
        // The parser takes the indentation from the first non-empty line; one that starts with a space (or
        // leading empty lines before it) would shift it, so the indentation is then stated.
        let first = contentLines.first ?? ""
        // Scalars, not characters: a space followed by a combining mark is one character but still a space.
        let statesIndent = first.isEmpty || first.unicodeScalars.first == " "
        lines.append(header + "|" + (statesIndent ? "2" : "") + chomp)
        let pad = String(repeating: " ", count: indent)
        for line in contentLines {
            lines.append(line.isEmpty ? "" : pad + line)
        }
    }

    /// Text a literal block keeps exactly: printable characters and `\n` only (YAML parsers read U+0085, U+2028
    /// and U+2029 as line breaks and fold `\r`), with some content (a block of empty lines reads back empty).
    private static func isBlockSafe(_ text: String) -> Bool {
        guard text.unicodeScalars.contains(where: { $0 != "\n" }) else { return false }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        // Trailing lines of blanks are taken as the block's trailing empty lines, not its content, and parsers
        // refuse a tab where the indentation ends.
        let lastLine = lines.last { !$0.isEmpty } ?? ""
        guard !lastLine.unicodeScalars.allSatisfy({ $0 == " " || $0 == "\t" }),
            !lines.contains(where: { $0.unicodeScalars.first == "\t" })
        else {
            return false
        }
        return text.unicodeScalars.allSatisfy { scalar in
            scalar == "\n" || scalar == "\t" || isPrintable(scalar)
        }
    }

    /// YAML's printable set, without the line breaks (U+0085, U+2028, U+2029) and the byte order mark.
    private static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x2028, 0x2029: false
        case 0x20...0x7E, 0xA0...0xD7FF, 0xE000...0xFEFE, 0xFF00...0xFFFD, 0x10000...0x10FFFF: true
        default: false
        }
    }

    /// Plain scalars only where YAML cannot read them as anything but this string; double quotes otherwise.
    static func quoteIfNeeded(_ text: String) -> String {
        isSafePlain(text) ? text : doubleQuoted(text)
    }

    private static let reserved: Set<String> = ["true", "false", "yes", "no", "on", "off", "null", "y", "n"]

    private static func isSafePlain(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, !reserved.contains(text.lowercased()) else { return false }
        let isLetter = (first >= "a" && first <= "z") || (first >= "A" && first <= "Z")
        guard isLetter || first == "/" || first == "_" else { return false }
        guard !text.hasSuffix(":") else { return false }
        return text.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "_", ".", "/", ":", "=", "@", "+", "-": true
            default: false
            }
        }
    }

    /// A double-quoted scalar: everything outside YAML's printable set is escaped, as are the characters that
    /// parsers read as line breaks (U+0085, U+2028, U+2029) and the byte order mark.
    static func doubleQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "\u{85}": out += "\\N"
            case "\u{2028}": out += "\\L"
            case "\u{2029}": out += "\\P"
            case _ where scalar.value <= 0xFF && !isPrintable(scalar):
                out += "\\x" + hex(scalar.value, digits: 2)
            case _ where !isPrintable(scalar):
                out += "\\u" + hex(scalar.value, digits: 4)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    private static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}

extension YAML: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    init(stringLiteral value: String) { self = .string(value) }
    init(integerLiteral value: Int) { self = .int(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
    init(arrayLiteral elements: YAML...) { self = .list(elements) }
    /// Dictionary literals keep their source order.
    init(dictionaryLiteral elements: (String, YAML)...) { self = .map(elements.map { Pair(key: $0.0, value: $0.1) }) }

    /// A map from ordered pairs built at run time.
    static func pairs(_ pairs: [(String, YAML)]) -> YAML { .map(pairs.map { Pair(key: $0.0, value: $0.1) }) }

    /// A map of string values, sorted by key (labels, annotations).
    static func strings(_ values: [String: String]) -> YAML {
        .map(values.sorted { $0.key < $1.key }.map { Pair(key: $0.key, value: .string($0.value)) })
    }
}
