import Foundation
import ShoalSupport

/// Where K3s runs.
public enum K3sTarget: String, Sendable, CaseIterable {
    /// One K3s server on this host, through the official install script.
    case local
    /// One node per SSH host: servers first, then agents.
    case ssh
    /// K3s in containers (the rancher/k3s image) on a dedicated docker network.
    case docker
}

/// An SSH destination for one node of the `ssh` target.
///
/// Every field ends up in a command line on some machine, so each is checked against a
/// conservative grammar: a POSIX portable user name, an RFC 1123 host name or an IP literal,
/// and a port in 1...65535.
public struct SSHHost: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var host: String
    public var port: Int
    /// The address K3s registers the node with (`--node-ip`), for a host with several interfaces.
    public var nodeIP: String?
    /// The interface flannel carries pod traffic on (`--flannel-iface`).
    public var flannelInterface: String?
    /// The host's SSH public key (`TYPE BASE64`) that Terraform's SSH client must see; checked by
    /// `HostKeys.pin(_:knownHosts:)` before anything is installed. Unchecked when nil.
    public var hostKey: String?

    /// Builds a host from parts that are already known to be valid; see `validate()`.
    public init(
        user: String, host: String, port: Int = 22, nodeIP: String? = nil, flannelInterface: String? = nil,
        hostKey: String? = nil
    ) {
        self.user = user
        self.host = host
        self.port = port
        self.nodeIP = nodeIP
        self.flannelInterface = flannelInterface
        self.hostKey = hostKey
    }

    /// Parses `user@host`, `user@host:port`, `user@[ipv6]:port` or `user@ipv6`.
    /// - Parameters:
    ///   - text: one entry of `--hosts`.
    /// - Returns: the validated host.
    /// - Throws: `ShoalError(.invalidInput)` with a one-line message saying what is expected.
    public static func parse(_ text: String) throws -> SSHHost {
        let shown = SSHHost.printable(text)
        func refuse(_ why: String) -> ShoalError {
            ShoalError(.invalidInput, "invalid SSH host '\(shown)': \(why)")
        }
        let expected = "expected USER@HOST or USER@HOST:PORT, e.g. ubuntu@10.0.0.5 or admin@node1.lan:2222"
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw refuse(expected) }
        let user = String(parts[0])
        let rest = String(parts[1])
        guard !user.isEmpty, !rest.isEmpty else { throw refuse(expected) }

        var host = rest
        var port = 22
        if rest.hasPrefix("[") {
            // A bracketed IPv6 literal, optionally followed by :port.
            guard let close = rest.firstIndex(of: "]") else { throw refuse("unclosed '[' in an IPv6 address") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let tail = rest[rest.index(after: close)...]
            if !tail.isEmpty {
                guard tail.hasPrefix(":") else { throw refuse(expected) }
                port = try parsePort(String(tail.dropFirst()), refuse)
            }
            guard isIPv6(host) else { throw refuse("'\(printable(host))' is not an IPv6 address") }
        } else {
            let colons = rest.filter { $0 == ":" }.count
            if colons == 1 {
                let pieces = rest.split(separator: ":", omittingEmptySubsequences: false)
                host = String(pieces[0])
                port = try parsePort(String(pieces[1]), refuse)
            }
            // More than one colon: a bare IPv6 literal without a port.
        }
        let parsed = SSHHost(user: user, host: host, port: port)
        do {
            try parsed.validate()
        } catch let error as ShoalError {
            throw refuse(error.message)
        }
        return parsed
    }

    /// Checks each field.
    /// - Throws: `ShoalError(.invalidInput)` naming the field at fault.
    public func validate() throws {
        guard SSHHost.isUserName(user) else {
            throw ShoalError(
                .invalidInput,
                "user name '\(SSHHost.printable(user))' is not a POSIX user name "
                    + "(1-32 of letters, digits, '.', '_' and '-', not starting with '-' or '.')"
            )
        }
        guard SSHHost.isHostName(host) || SSHHost.isIPv4(host) || SSHHost.isIPv6(host) else {
            throw ShoalError(
                .invalidInput,
                "host '\(SSHHost.printable(host))' is neither an RFC 1123 host name nor an IPv4 or IPv6 address"
            )
        }
        guard (1...65535).contains(port) else {
            throw ShoalError(.invalidInput, "port \(port) is out of range (1-65535)")
        }
        if let nodeIP, !(SSHHost.isIPv4(nodeIP) || SSHHost.isIPv6(nodeIP)) || !SSHHost.isAddress(nodeIP) {
            throw ShoalError(.invalidInput, "node IP '\(SSHHost.printable(nodeIP))' is not an IPv4 or IPv6 address")
        }
        if let flannelInterface, !SSHHost.isInterfaceName(flannelInterface) {
            throw ShoalError(
                .invalidInput,
                "flannel interface '\(SSHHost.printable(flannelInterface))' is not an interface name "
                    + "(1-15 of letters, digits, '.', '_' and '-')")
        }
        if let hostKey, !SSHHost.isPublicKey(hostKey) {
            throw ShoalError(
                .invalidInput, "host key '\(SSHHost.printable(hostKey))' is not an OpenSSH public key (TYPE BASE64)")
        }
    }

    /// `user@host:port`, with brackets around an IPv6 literal.
    public var description: String {
        host.contains(":") ? "\(user)@[\(host)]:\(port)" : "\(user)@\(host):\(port)"
    }

    // MARK: - Grammar

    /// A host name or an IP literal that other machines can use: not the unspecified address
    /// (`0.0.0.0`, `::`), which a kubeconfig or a published port cannot name.
    public static func isAddress(_ text: String) -> Bool {
        guard isHostName(text) || isIPv4(text) || isIPv6(text) else { return false }
        if isIPv4(text) || isIPv6(text) {
            var v4 = in_addr()
            if inet_pton(AF_INET, text, &v4) == 1 { return v4.s_addr != 0 }
            var v6 = in6_addr()
            guard inet_pton(AF_INET6, text, &v6) == 1 else { return false }
            return withUnsafeBytes(of: &v6) { bytes in bytes.contains { $0 != 0 } }
        }
        return true
    }

    /// A Linux network interface name: 1-15 of `[A-Za-z0-9._-]`, not `.` or `..`.
    static func isInterfaceName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...15).contains(bytes.count), name != ".", name != ".." else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == 45 || $0 == 46 || $0 == 95 }
    }

    /// `TYPE BASE64` of an OpenSSH public key of a type Terraform's SSH client verifies.
    static func isPublicKey(_ text: String) -> Bool {
        let parts = text.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, HostKeys.preference.contains(String(parts[0])) else { return false }
        let body = parts[1]
        guard (16...16384).contains(body.utf8.count), Data(base64Encoded: String(body)) != nil else { return false }
        return true
    }

    /// A POSIX portable user name: 1-32 of `[A-Za-z0-9._-]`, starting with a letter, digit or `_`.
    /// (Stricter than POSIX about the first character: a leading `-` could pass for an option.)
    static func isUserName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...32).contains(bytes.count) else { return false }
        guard isAlphanumeric(bytes[0]) || bytes[0] == UInt8(ascii: "_") else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == 45 || $0 == 46 }
    }

    /// An RFC 1123 host name: dot-separated labels of 1-63 `[A-Za-z0-9-]`, not starting or
    /// ending with `-`, at most 253 characters, and not all digits (that would be a bad IPv4).
    static func isHostName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...253).contains(bytes.count) else { return false }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            let b = Array(label.utf8)
            guard (1...63).contains(b.count), isAlphanumeric(b.first!), isAlphanumeric(b.last!) else { return false }
            guard b.allSatisfy({ isAlphanumeric($0) || $0 == 45 }) else { return false }
        }
        let numeric = bytes.allSatisfy { ($0 >= 48 && $0 <= 57) || $0 == 46 }
        return !numeric
    }

    static func isIPv4(_ text: String) -> Bool {
        var address = in_addr()
        return !text.isEmpty && inet_pton(AF_INET, text, &address) == 1
    }

    static func isIPv6(_ text: String) -> Bool {
        var address = in6_addr()
        return !text.isEmpty && !text.contains("%") && inet_pton(AF_INET6, text, &address) == 1
    }

    private static func isAlphanumeric(_ b: UInt8) -> Bool {
        (b >= 97 && b <= 122) || (b >= 65 && b <= 90) || (b >= 48 && b <= 57)
    }

    private static func parsePort(_ text: String, _ refuse: (String) -> ShoalError) throws -> Int {
        guard !text.isEmpty, text.utf8.count <= 5, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
            let port = Int(text), (1...65535).contains(port)
        else { throw refuse("port '\(printable(text))' is not a number in 1-65535") }
        return port
    }

    /// Input echoed in an error message: at most 80 characters, control characters shown as `?`,
    /// so a hostile value cannot forge extra lines in a log or terminal.
    static func printable(_ text: String) -> String {
        let cleaned = String(String.UnicodeScalarView(text.unicodeScalars.map { scalar in
            scalar.properties.generalCategory == .control ? "?" : scalar
        }))
        return cleaned.count > 80 ? String(cleaned.prefix(80)) + "..." : cleaned
    }
}
