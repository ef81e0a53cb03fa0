import Foundation
import Protocol

/// A safety net under the agents' own care: the secrets a result carries
/// in its sensitive artifacts are cut out of everything the coordinator
/// keeps or shows in clear (summary, values, log, error) before the result
/// is journaled, published in events or logged.
enum Redaction {
    static let placeholder = "[redacted]"

    /// Secret strings found in sensitive artifacts: a one-line artifact as a
    /// whole (a password, a token), and the values of `token:`,
    /// `password:` and `*-data:` fields of a multi-line one (a kubeconfig).
    /// Strings shorter than 8 characters are not secrets worth matching.
    static func secrets(in artifacts: [Artifact]) -> Set<String> {
        var found: Set<String> = []
        for artifact in artifacts where artifact.sensitive && artifact.data.count <= 1 << 16 {
            let text = artifact.text.trimmingCharacters(in: .whitespacesAndNewlines)
            let lines = text.split(whereSeparator: \.isNewline)
            if lines.count == 1 {
                found.insert(text)
                continue
            }
            for line in lines {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                guard let colon = trimmed.firstIndex(of: ":") else { continue }
                let field = trimmed[..<colon].lowercased()
                guard field == "token" || field.hasSuffix("password") || field.hasSuffix("-data") else { continue }
                let value = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                found.insert(value.trimmingCharacters(in: CharacterSet(charactersIn: "\"'")))
            }
        }
        return found.filter { $0.count >= 8 }
    }

    /// The result with every secret replaced by `[redacted]` outside its
    /// artifacts, and how many replacements that took.
    static func redact(_ result: StepResult) -> (StepResult, Int) {
        let secrets = secrets(in: result.output.artifacts)
        guard !secrets.isEmpty else { return (result, 0) }
        var count = 0
        func clean(_ text: String) -> String {
            var text = text
            for secret in secrets where text.contains(secret) {
                count += 1
                text = text.replacingOccurrences(of: secret, with: placeholder)
            }
            return text
        }
        func clean(_ value: JSONValue) -> JSONValue {
            switch value {
            case .string(let text): .string(clean(text))
            case .array(let items): .array(items.map(clean))
            case .object(let fields): .object(fields.mapValues(clean))
            case .null, .bool, .integer, .number: value
            }
        }
        var copy = result
        copy.output.summary = clean(copy.output.summary)
        copy.output.log = copy.output.log.map(clean)
        copy.output.values = copy.output.values.mapValues(clean)
        copy.error = copy.error.map(clean)
        return (copy, count)
    }
}
