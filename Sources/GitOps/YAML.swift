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
        var chomp = "-"
        var content = Substring(text)
        if content.hasSuffix("\n") {
            content = content.dropLast()
            chomp = content.hasSuffix("\n") ? "+" : ""
        }
        let contentLines = content.split(separator: "\n", omittingEmptySubsequences: false)
        let startsWithSpace = contentLines.first?.first == " "
        lines.append(header + "|" + (startsWithSpace ? "2" : "") + chomp)
        let pad = String(repeating: " ", count: indent)
        for line in contentLines {
            lines.append(line.isEmpty ? "" : pad + line)
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

    private static func doubleQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                out += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16, uppercase: true)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
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
