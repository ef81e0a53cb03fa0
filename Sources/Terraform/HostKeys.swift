import Foundation
public import ShoalSupport

/// The SSH host keys of the `ssh` target, checked before anything is installed.
///
/// Terraform's SSH client checks a host's key only when the connection names one (`host_key`),
/// and it does not read `known_hosts`. So the infra agent reads each host's keys with
/// `ssh-keyscan`, compares them with the operator's `known_hosts` (`ssh-keygen -F`, which also
/// reads hashed entries), refuses a host whose key changed, and pins the key Terraform will see in
/// `terraform.tfvars.json`. The `ssh` commands of the configuration check a known_hosts file shoal
/// writes with the same keys (`StrictHostKeyChecking=yes`).
public struct HostKeys: Sendable {
    /// Key types in the order Terraform's SSH client (Go's x/crypto/ssh) asks servers for them: the pinned
    /// key must be of the type the server will present to it.
    public static let preference = [
        "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa", "ssh-ed25519",
    ]

    public var runner: ProcessRunner
    /// `ssh-keyscan`, or a path to it.
    public var keyscan: String
    /// `ssh-keygen`, or a path to it.
    public var keygen: String
    /// The bound of each `ssh-keyscan` and `ssh-keygen` call.
    public var timeout: Duration

    public init(
        runner: ProcessRunner = ProcessRunner(), keyscan: String = "ssh-keyscan", keygen: String = "ssh-keygen",
        timeout: Duration = .seconds(20)
    ) {
        self.runner = runner
        self.keyscan = keyscan
        self.keygen = keygen
        self.timeout = timeout
    }

    /// The operator's known_hosts: `~/.ssh/known_hosts` of this process's user.
    public static func defaultKnownHosts() -> String {
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        return "\(home)/.ssh/known_hosts"
    }

    /// How known_hosts names a host: `host` on port 22, else `[host]:port`.
    public static func knownHostsName(_ host: SSHHost) -> String {
        host.port == 22 ? host.host : "[\(host.host)]:\(host.port)"
    }

    /// The keys `host` presents (`TYPE BASE64` each), read by `ssh-keyscan`.
    /// - Throws: `ShoalError(.unreachable)` when the host presents none.
    public func scan(_ host: SSHHost) async throws -> [String] {
        let result = try await runner.run(
            keyscan, ["-T", "10", "-p", String(host.port), "-t", "ecdsa,rsa,ed25519", host.host], timeout: timeout)
        let keys = Self.keys(in: result.standardOutput)
        guard !keys.isEmpty else {
            throw ShoalError(
                .unreachable,
                "cannot read the SSH host key of \(host.host) port \(host.port) (ssh-keyscan got no answer): check "
                    + "that the host is up and sshd listens there",
                cause: result.standardErrorTail())
        }
        return keys
    }

    /// The keys `knownHosts` holds for `host`, hashed entries included; empty when it has none or the file
    /// does not exist.
    public func known(_ host: SSHHost, in knownHosts: String) async throws -> [String] {
        guard FileManager.default.fileExists(atPath: knownHosts) else { return [] }
        let result = try await runner.run(
            keygen, ["-F", Self.knownHostsName(host), "-f", knownHosts], timeout: timeout)
        return Self.keys(in: result.standardOutput)
    }

    /// Checks every host against `knownHosts` and returns the hosts with `hostKey` set to the key Terraform
    /// will see, and the known_hosts lines for the configuration's own `ssh` calls.
    ///
    /// A host with no entry in `knownHosts` is trusted on first use (as `StrictHostKeyChecking=accept-new`
    /// would); a host whose entry matches none of the keys it presents is refused before anything is installed.
    /// - Throws: `ShoalError(.hostKeyChanged)` naming the host and the command that removes the old key;
    ///   `ShoalError(.unreachable)` for a host that presents no key.
    public func pin(_ hosts: [SSHHost], knownHosts: String) async throws -> (hosts: [SSHHost], lines: [String]) {
        var pinned: [SSHHost] = []
        var lines: [String] = []
        for host in hosts {
            let presented = try await scan(host)
            let known = try await known(host, in: knownHosts)
            if !known.isEmpty && Set(presented).isDisjoint(with: known) {
                let name = Self.knownHostsName(host)
                let was = await fingerprints(known).joined(separator: ", ")
                let now = await fingerprints(presented).joined(separator: ", ")
                throw ShoalError(
                    .hostKeyChanged,
                    "the SSH host key of \(name) changed: \(knownHosts) has \(was), the host now presents \(now). "
                        + "If \(host.host) was reinstalled, remove the old key with `ssh-keygen -R '\(name)' -f "
                        + "\(knownHosts)` and run again; otherwise find out who answers at that address")
            }
            var copy = host
            copy.hostKey = Self.preferred(presented)
            pinned.append(copy)
            lines += presented.map { "\(Self.knownHostsName(host)) \($0)" }
        }
        return (pinned, lines)
    }

    /// The key of the type Terraform's SSH client asks for first.
    static func preferred(_ keys: [String]) -> String? {
        for type in preference {
            if let key = keys.first(where: { $0.hasPrefix(type + " ") }) { return key }
        }
        return nil
    }

    /// `TYPE BASE64` of every well-formed key line of `ssh-keyscan` or `ssh-keygen -F` output (comments,
    /// markers and host fields dropped), in order, without repeats.
    static func keys(in output: String) -> [String] {
        var keys: [String] = []
        for line in output.split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: " ").map(String.init)
            guard let index = fields.firstIndex(where: { preference.contains($0) }), index + 1 < fields.count else {
                continue
            }
            let key = "\(fields[index]) \(fields[index + 1])"
            if SSHHost.isPublicKey(key) && !keys.contains(key) { keys.append(key) }
        }
        return keys
    }

    /// `TYPE SHA256:...` of each key, as `ssh-keygen -l` prints it; the type alone when that fails.
    private func fingerprints(_ keys: [String]) async -> [String] {
        var printed: [String] = []
        for key in keys {
            let type = String(key.prefix { $0 != " " })
            let result = try? await runner.run(
                keygen, ["-l", "-f", "-"], input: Data((key + "\n").utf8), timeout: timeout)
            let fingerprint = result?.standardOutput.split(separator: " ").dropFirst().first.map(String.init)
            printed.append(fingerprint.map { "\(type) \($0)" } ?? type)
        }
        return printed
    }
}

extension ShoalError.Code {
    /// A host presents an SSH key other than the one known_hosts holds for it.
    public static let hostKeyChanged = ShoalError.Code("host-key-changed")
}
