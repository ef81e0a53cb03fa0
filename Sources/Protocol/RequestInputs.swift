import FoundationEssentials
import Glibc
import ShoalCore

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
        for (flag, value) in [("--advertise-address", advertiseAddress), ("--api-address", apiAddress)] {
            guard let value, !RequestInputs.isAddress(value) else { continue }
            problems.append(
                "invalid \(flag) '\(RequestInputs.printable(value))': use a host name or an IP address that other "
                    + "hosts reach (not 0.0.0.0 or ::)")
        }
        if let metrics = coordinatorMetrics, !RequestInputs.isHostPort(metrics) {
            problems.append(
                "invalid --coordinator-metrics '\(RequestInputs.printable(metrics))': use HOST:PORT (a host name or IP "
                    + "address the cluster reaches, [IPV6]:PORT, port 1-65535), e.g. coordinator.lab:9464")
        }
        let hostNames = Set(hosts.map(RequestInputs.hostPart))
        for (flag, values, valid, expected) in [
            ("--node-ip", nodeIPs, RequestInputs.isIPAddress, "an IPv4 or IPv6 address"),
            ("--flannel-iface", flannelInterfaces, RequestInputs.isInterfaceName, "an interface name such as eth1"),
        ] as [(String, [String: String], (String) -> Bool, String)] {
            if values.count > 99 { problems.append("\(flag): at most 99 hosts") }
            for (host, value) in values.sorted(by: { $0.key < $1.key }).prefix(99) {
                if !hostNames.contains(host) {
                    problems.append(
                        "\(flag) \(RequestInputs.printable(host))=...: '\(RequestInputs.printable(host))' is not the "
                            + "HOST of any --hosts entry")
                } else if !valid(value) {
                    problems.append(
                        "invalid \(flag) \(RequestInputs.printable(host))=\(RequestInputs.printable(value)): "
                            + "expected \(expected)")
                }
            }
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

    /// A host name or an IP literal other hosts can use: 1-253 of letters, digits, '.', ':' and '-', not starting
    /// with '-' or '.', and not the unspecified address (0.0.0.0, ::).
    public static func isAddress(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...253).contains(bytes.count), bytes[0] != UInt8(ascii: "-"), bytes[0] != UInt8(ascii: ".") else {
            return false
        }
        guard bytes.allSatisfy({ isAlphanumeric($0) || Array(".:-".utf8).contains($0) }) else { return false }
        if text.contains(":") { return isIPAddress(text) }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return v4.s_addr != 0 }
        return true
    }

    /// `HOST:PORT` or `[IPV6]:PORT` with HOST an address (`isAddress`) and PORT 1-65535.
    public static func isHostPort(_ text: String) -> Bool {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port), text[text.index(after: colon)...].allSatisfy(\.isASCII)
        else { return false }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
            return host.contains(":") && isIPAddress(host)
        }
        return !host.contains(":") && isAddress(host)
    }

    /// An IPv4 or IPv6 literal other than the unspecified address.
    public static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return v4.s_addr != 0 }
        var v6 = in6_addr()
        guard !text.contains("%"), inet_pton(AF_INET6, text, &v6) == 1 else { return false }
        return withUnsafeBytes(of: &v6) { bytes in bytes.contains { $0 != 0 } }
    }

    /// A Linux network interface name: 1-15 of letters, digits, '.', '_' and '-', not '.' or '..'.
    public static func isInterfaceName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...15).contains(bytes.count), text != ".", text != ".." else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || Array("._-".utf8).contains($0) }
    }

    /// The HOST of a `USER@HOST[:PORT]` or `USER@[IPV6]:PORT` entry, as `--node-ip HOST=IP` names it.
    public static func hostPart(_ entry: String) -> String {
        let rest = entry.split(separator: "@", maxSplits: 1).last.map(String.init) ?? entry
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            return String(rest[rest.index(after: rest.startIndex)..<close])
        }
        let colons = rest.filter { $0 == ":" }.count
        return colons == 1 ? String(rest.prefix { $0 != ":" }) : rest
    }

    /// Input echoed in a message: control characters as '?', at most 80 characters.
    public static func printable(_ text: String) -> String { Names.printable(text) }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
    }
}
