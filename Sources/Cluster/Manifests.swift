import Foundation
import ShoalSupport
import Yams

/// A YAML or JSON value as Kubernetes manifests use it: a tree of mappings, sequences and scalars.
///
/// `Codable` output of a cluster uses sorted keys, so an encoded cluster is byte-for-byte stable.
public enum ManifestValue: Codable, Sendable, Equatable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([ManifestValue])
    case object([String: ManifestValue])

    /// The value under `key` when this is a mapping.
    public subscript(key: String) -> ManifestValue? {
        guard case .object(let members) = self else { return nil }
        return members[key]
    }

    /// The value at a path of mapping keys.
    public subscript(path: String...) -> ManifestValue? {
        var current: ManifestValue? = self
        for key in path { current = current?[key] }
        return current
    }

    /// A scalar as text (numbers and booleans too: manifest authors quote them or not).
    public var string: String? {
        switch self {
        case .string(let text): return text
        case .int(let number): return String(number)
        case .double(let number): return String(number)
        case .bool(let flag): return flag ? "true" : "false"
        default: return nil
        }
    }

    /// An integer, also from a numeric string.
    public var int: Int? {
        switch self {
        case .int(let number): return number
        case .double(let number) where number.rounded() == number: return Int(number)
        case .string(let text): return Int(text)
        default: return nil
        }
    }

    /// A boolean, also from the strings `true` and `false`.
    public var bool: Bool? {
        switch self {
        case .bool(let flag): return flag
        case .string("true"): return true
        case .string("false"): return false
        default: return nil
        }
    }

    /// The items when this is a sequence.
    public var array: [ManifestValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    /// The members when this is a mapping.
    public var object: [String: ManifestValue]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// Compact JSON with sorted keys: equal values give equal text in every process.
    public var canonicalText: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// A mapping of strings (labels, selectors, data keys); non-scalar values are left out.
    public var stringMap: [String: String] {
        guard let members = object else { return [:] }
        var result: [String: String] = [:]
        for (key, value) in members {
            if let text = value.string { result[key] = text }
        }
        return result
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        // The common shapes first: every failed attempt builds a DecodingError, which is what decoding a model
        // spends its time on otherwise. A JSON string decodes as nothing but a String, a mapping as nothing but a
        // dictionary, so the order changes no result.
        if container.decodeNil() {
            self = .null
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let members = try? container.decode([String: ManifestValue].self) {
            self = .object(members)
        } else if let items = try? container.decode([ManifestValue].self) {
            self = .array(items)
        } else if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else if let number = try? container.decode(Int.self) {
            self = .int(number)
        } else {
            self = .double(try container.decode(Double.self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let flag): try container.encode(flag)
        case .int(let number): try container.encode(number)
        case .double(let number): try container.encode(number)
        case .string(let text): try container.encode(text)
        case .array(let items): try container.encode(items)
        case .object(let members): try container.encode(members)
        }
    }

    /// Converts a composed YAML node; scalars keep the type their resolved tag gives them.
    init(yaml node: Yams.Node) {
        switch node {
        case .scalar(let scalar):
            switch node.tag.rawValue {
            case Tag.Name.null.rawValue: self = .null
            case Tag.Name.bool.rawValue: self = node.bool.map(ManifestValue.bool) ?? .string(scalar.string)
            case Tag.Name.int.rawValue: self = node.int.map(ManifestValue.int) ?? .string(scalar.string)
            case Tag.Name.float.rawValue: self = node.float.map(ManifestValue.double) ?? .string(scalar.string)
            default: self = .string(scalar.string)
            }
        case .mapping(let mapping):
            var members: [String: ManifestValue] = [:]
            for (key, value) in mapping {
                members[key.string ?? ""] = ManifestValue(yaml: value)
            }
            self = .object(members)
        case .sequence(let sequence):
            self = .array(sequence.map(ManifestValue.init(yaml:)))
        case .alias:
            // The parser replaces aliases by the anchored node; a bare alias only comes from hand-built trees.
            self = .null
        }
    }
}

/// One Kubernetes object read from a manifest, with the file it came from.
public struct Manifest: Sendable, Equatable {
    public var apiVersion: String
    public var kind: String
    public var name: String
    /// The namespace written in the manifest, if any.
    public var namespace: String?
    /// The whole object.
    public var body: ManifestValue
    /// The file (or other origin) the object was read from.
    public var source: String

    /// `metadata.labels`.
    public var labels: [String: String] { body["metadata", "labels"]?.stringMap ?? [:] }
}

/// Reads multi-document YAML into Kubernetes objects.
public enum ManifestParser {
    /// Parses every document of `yaml`; empty documents are skipped and `kind: List` is expanded.
    /// - Parameters:
    ///   - yaml: one or more YAML documents separated by `---` (JSON works too).
    ///   - source: the file name, used in error messages.
    /// - Throws: `ShoalError(.invalidInput)` naming `source` when the text is not YAML or a document is not a
    ///   Kubernetes object (no `apiVersion`, `kind` or `metadata.name`).
    public static func parse(_ yaml: String, source: String) throws -> [Manifest] {
        var documents = try compose(yaml, source: source)
        var manifests: [Manifest] = []
        var index = 0
        while index < documents.count {
            let document = documents[index]
            index += 1
            if case .null = document { continue }
            guard case .object = document else {
                throw ShoalError(.invalidInput, "\(source): document \(index) is not a Kubernetes object")
            }
            guard let kind = document["kind"]?.string, !kind.isEmpty else {
                throw ShoalError(.invalidInput, "\(source): document \(index): Object 'Kind' is missing")
            }
            guard let apiVersion = document["apiVersion"]?.string, !apiVersion.isEmpty else {
                throw ShoalError(.invalidInput, "\(source): document \(index): Object 'apiVersion' is missing")
            }
            if kind == "List" || kind.hasSuffix("List") && document["items"] != nil {
                documents.append(contentsOf: document["items"]?.array ?? [])
                continue
            }
            guard let name = document["metadata", "name"]?.string, !name.isEmpty else {
                throw ShoalError(.invalidInput, "\(source): document \(index): \(kind) has no metadata.name")
            }
            manifests.append(
                Manifest(
                    apiVersion: apiVersion, kind: kind, name: name,
                    namespace: document["metadata", "namespace"]?.string,
                    body: document, source: source))
        }
        return manifests
    }

    /// Parses YAML (or JSON) into plain values without interpreting them.
    /// - Throws: `ShoalError(.invalidInput)` naming `source`, with the parser's reason and position as cause.
    public static func compose(_ yaml: String, source: String) throws -> [ManifestValue] {
        do {
            var sequence = try Yams.compose_all(yaml: yaml)
            var values: [ManifestValue] = []
            while let node = sequence.next() { values.append(ManifestValue(yaml: node)) }
            if let error = sequence.error { throw error }
            return values
        } catch {
            throw ShoalError(.invalidInput, "\(source) is not valid YAML", cause: "\(error)")
        }
    }
}

/// Kubernetes resource quantities.
public enum Quantity {
    /// CPU in millicores: `250m`, `0.5`, `2`, `100000n`.
    public static func millicores(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasSuffix("m") { return Int(trimmed.dropLast()) }
        if trimmed.hasSuffix("n"), let nanos = Double(trimmed.dropLast()) {
            return Int((nanos / 1_000_000).rounded(.up))
        }
        if trimmed.hasSuffix("u"), let micros = Double(trimmed.dropLast()) {
            return Int((micros / 1000).rounded(.up))
        }
        guard let cores = Double(trimmed) else { return nil }
        return Int((cores * 1000).rounded(.up))
    }

    /// Memory in bytes: `128Mi`, `1Gi`, `500M`, `1e3`, `1048576`, `1024Ki`.
    public static func bytes(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let suffixes: [(String, Double)] = [
            ("Ki", 1024), ("Mi", 1_048_576), ("Gi", 1_073_741_824), ("Ti", 1_099_511_627_776),
            ("k", 1000), ("M", 1_000_000), ("G", 1_000_000_000), ("T", 1_000_000_000_000),
        ]
        for (suffix, scale) in suffixes where trimmed.hasSuffix(suffix) {
            guard let number = Double(trimmed.dropLast(suffix.count)) else { return nil }
            return Int((number * scale).rounded(.up))
        }
        guard let number = Double(trimmed) else { return nil }
        return Int(number.rounded(.up))
    }
}
