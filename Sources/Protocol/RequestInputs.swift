import ShoalSupport

extension WorkflowRequest {
    /// The request's fields that end up in commands, file names or
    /// Kubernetes names, checked wherever a request is accepted (the CLI,
    /// and the coordinator for requests from the network). The agents parse
    /// them again with their own full grammars (SSH hosts, versions); this
    /// is the common floor: nothing that could be read as shell syntax, an
    /// option, a path escape or a control character gets past it.
    /// - Returns: a one-line reason per bad field; empty when all are fine.
    public func inputProblems() -> [String] {
        var problems: [String] = []
        if !clusterName.isEmpty && !Names.isDNSLabel(clusterName) {
            problems.append(
                "invalid cluster name '\(RequestInputs.printable(clusterName))': use 1-63 lowercase letters, digits "
                    + "and '-', starting and ending with a letter or digit (RFC 1123)")
        }
        for host in hosts where !RequestInputs.isHostSpec(host) {
            problems.append(
                "invalid host '\(RequestInputs.printable(host))': expected USER@HOST or USER@HOST:PORT "
                    + "(letters, digits, '.', '-', '_', ':' and [] only)")
        }
        for (flag, value) in [("--k3s-version", k3sVersion), ("--argocd-version", argocdVersion)]
        where !value.isEmpty && !RequestInputs.isVersion(value) {
            problems.append(
                "invalid \(flag) '\(RequestInputs.printable(value))': use a release name such as v1.36.3+k3s1 "
                    + "(letters, digits, '.', '+', '-', '_')")
        }
        for (flag, value) in [("--ssh-key", sshKeyPath), ("--airgap-dir", airgapDirectory)] {
            guard let value, !RequestInputs.isSafePath(value) else { continue }
            problems.append(
                "invalid \(flag) path '\(RequestInputs.printable(value))': use an absolute path without '..' "
                    + "or control characters")
        }
        return problems
    }
}

/// The character-level rules behind `WorkflowRequest.inputProblems()`.
public enum RequestInputs {
    /// `USER@HOST[:PORT]` made only of characters a host spec needs; the
    /// user part must not start with '-' (it could pass for an option).
    public static func isHostSpec(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (3...300).contains(bytes.count), bytes.filter({ $0 == UInt8(ascii: "@") }).count == 1,
            let first = bytes.first, first != UInt8(ascii: "-"), first != UInt8(ascii: "@")
        else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || Array("@.-_:[]".utf8).contains($0) }
    }

    /// A release name: 1-64 of letters, digits, '.', '+', '-', '_', not starting with '-'.
    public static func isVersion(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...64).contains(bytes.count), bytes[0] != UInt8(ascii: "-") else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || Array(".+-_".utf8).contains($0) }
    }

    /// An absolute path of at most 4096 bytes, without '..' components or control characters.
    public static func isSafePath(_ text: String) -> Bool {
        guard text.hasPrefix("/"), text.utf8.count <= 4096 else { return false }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return false }
        return !text.split(separator: "/").contains("..")
    }

    /// Input echoed in a message: control characters as '?', at most 80 characters.
    public static func printable(_ text: String) -> String { Names.printable(text) }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
    }
}
