import ShoalSupport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Checks of the addresses shoal puts into URLs that other hosts use (`--gitops-advertise`, push addresses).
public enum NetworkAddress {
    /// A dotted-quad IPv4 address.
    public static func isIPv4(_ text: String) -> Bool {
        var address = in_addr()
        return text.utf8.count <= 15 && inet_pton(AF_INET, text, &address) == 1
    }

    /// An IPv6 address, without brackets.
    public static func isIPv6(_ text: String) -> Bool {
        var address = in6_addr()
        return text.utf8.count <= 45 && inet_pton(AF_INET6, text, &address) == 1
    }

    /// A DNS host name (RFC 1123): dot-separated labels of letters, digits and inner hyphens, at most 253
    /// characters.
    public static func isHostName(_ text: String) -> Bool {
        var name = text
        if name.hasSuffix(".") { name.removeLast() }
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            guard (1...63).contains(label.utf8.count), label.first != "-", label.last != "-" else { return false }
            return label.unicodeScalars.allSatisfy {
                switch $0 {
                case "a"..."z", "A"..."Z", "0"..."9", "-": true
                default: false
                }
            }
        }
    }

    /// Whether an address names this host only (`localhost`, `127.0.0.0/8`, `::1`): useless to another host.
    public static func isLoopback(_ host: String) -> Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return bare.lowercased() == "localhost" || bare == "::1" || (isIPv4(bare) && bare.hasPrefix("127."))
    }

    /// Checks `--gitops-advertise`: a host name, an IPv4 address, or an IPv6 address (bare or in brackets).
    /// - Returns: the host as it goes into a URL (IPv6 in brackets).
    /// - Throws: `ShoalError(.invalidInput)` naming the value (shortened, control characters shown escaped).
    public static func validatedAdvertise(_ text: String) throws -> String {
        let bare = text.hasPrefix("[") && text.hasSuffix("]") ? String(text.dropFirst().dropLast()) : text
        if isIPv6(bare) { return "[\(bare)]" }
        if isIPv4(bare) || isHostName(bare) { return bare }
        let shown = String(text.prefix(80).unicodeScalars.map { $0.isASCII && $0.value >= 32 ? String($0) : "?" }.joined())
        throw ShoalError(
            .invalidInput,
            "--gitops-advertise must be a host name or an IP address that the cluster reaches, got '\(shown)'")
    }
}
