/// Validation of names that end up in file names, commands or Kubernetes.
public enum Names {
    /// An RFC 1123 DNS label: 1-63 of [a-z0-9-], starting and ending alphanumeric.
    public static func isDNSLabel(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...63).contains(bytes.count) else { return false }
        func alnum(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) }
        guard alnum(bytes.first!), alnum(bytes.last!) else { return false }
        return bytes.allSatisfy { alnum($0) || $0 == 45 }
    }

    /// A workflow id: a DNS label (so it is a safe directory name and cluster name).
    /// - Throws: `ShoalError(.invalidInput)` saying what is allowed.
    public static func validateWorkflowID(_ id: String) throws {
        guard isDNSLabel(id) else {
            throw ShoalError(
                .invalidInput,
                "invalid workflow id '\(printable(id))': use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit"
            )
        }
    }

    /// An agent id: 1-64 of [A-Za-z0-9._-], starting alphanumeric.
    public static func isAgentID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard (1...64).contains(bytes.count) else { return false }
        func alnum(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 65 && b <= 90) || (b >= 48 && b <= 57) }
        guard alnum(bytes[0]) else { return false }
        return bytes.allSatisfy { alnum($0) || $0 == 45 || $0 == 46 || $0 == 95 }
    }

    /// Input fit to echo in an error message: control characters (escape
    /// sequences for a terminal) become `?`, and long text is cut at 80.
    public static func printable(_ text: String) -> String {
        let cleaned = String(
            String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : $0 }))
        return cleaned.count > 80 ? String(cleaned.prefix(80)) + "..." : cleaned
    }
}
