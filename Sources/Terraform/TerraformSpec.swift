import Foundation
import ShoalSupport

/// What to provision: the input of `TerraformRenderer.render(_:)`.
public struct TerraformSpec: Sendable {
    /// The cluster's name: an RFC 1123 label of at most 50 characters, so that node names
    /// (`<cluster>-server-0`, `<cluster>-agent-12`) stay valid labels and container host names.
    public var clusterName: String
    public var target: K3sTarget
    /// Number of nodes, 1...99 (`local`: exactly 1).
    public var nodes: Int
    /// Production or `--ha`: the first 3 nodes are servers with embedded etcd, the rest agents.
    public var highAvailability: Bool
    /// A K3s release, `vX.Y.Z+k3sN` (or `vX.Y.Z-rcN+k3sN`).
    public var k3sVersion: String
    /// `ssh` target: one host per node, in node order (servers first). Empty for other targets.
    public var hosts: [SSHHost]
    /// `ssh` target: the private key terraform and ssh use; the SSH agent when nil.
    public var sshKeyPath: String?
    /// `local` and `ssh` targets: a directory holding `k3s`, `install.sh` and
    /// `k3s-airgap-images-*.tar*`, installed with INSTALL_K3S_SKIP_DOWNLOAD.
    public var airgapDirectory: String?
    /// Absolute path where apply leaves the kubeconfig (mode 0600).
    public var kubeconfigPath: String
    /// The address other hosts reach the cluster at: the kubeconfig's server, a TLS SAN of the servers, and,
    /// for `docker`, where the API and the NodePorts are published. 127.0.0.1 (`local`, `docker`) or the first
    /// host (`ssh`) when nil.
    public var advertiseAddress: String?
    /// `ssh` target: the address the other nodes join the first server at; the InternalIP K3s reports for
    /// the first server (its node IP when one is given) when nil.
    public var apiAddress: String?
    /// `ssh` target: a known_hosts file with the hosts' keys, which the configuration's `ssh` calls check.
    public var knownHostsPath: String?

    /// The K3s release used when the request names none.
    public static let defaultK3sVersion = "v1.36.3+k3s1"
    /// Longest cluster name: 50 + "-server-99" is 60, within a 63-character label.
    public static let maximumClusterNameLength = 50
    /// NodePorts of Argo CD, Prometheus, Grafana and Headlamp: the docker target publishes them on the
    /// advertised address, and hosts with ufw or firewalld get them opened.
    public static let dockerNodePorts = [30080, 30090, 30300, 30466]
    /// Servers in a highly available cluster (embedded etcd needs an odd number, 3 tolerates one loss).
    public static let highAvailabilityServers = 3

    public init(
        clusterName: String,
        target: K3sTarget,
        nodes: Int,
        highAvailability: Bool = false,
        k3sVersion: String = TerraformSpec.defaultK3sVersion,
        hosts: [SSHHost] = [],
        sshKeyPath: String? = nil,
        airgapDirectory: String? = nil,
        kubeconfigPath: String,
        advertiseAddress: String? = nil,
        apiAddress: String? = nil,
        knownHostsPath: String? = nil
    ) {
        self.clusterName = clusterName
        self.target = target
        self.nodes = nodes
        self.highAvailability = highAvailability
        self.k3sVersion = k3sVersion
        self.hosts = hosts
        self.sshKeyPath = sshKeyPath
        self.airgapDirectory = airgapDirectory
        self.kubeconfigPath = kubeconfigPath
        self.advertiseAddress = advertiseAddress
        self.apiAddress = apiAddress
        self.knownHostsPath = knownHostsPath
    }

    /// How many of the nodes are servers: 3 when highly available, else 1.
    public var serverCount: Int { highAvailability ? TerraformSpec.highAvailabilityServers : 1 }

    /// Refuses a spec that cannot be provisioned, with a message that says what to do.
    /// - Throws: `ShoalError(.invalidInput)`.
    public func validate() throws {
        let name = SSHHost.printable(clusterName)
        guard Names.isDNSLabel(clusterName), clusterName.utf8.count <= TerraformSpec.maximumClusterNameLength else {
            throw invalid(
                "invalid cluster name '\(name)': use 1-\(TerraformSpec.maximumClusterNameLength) lowercase letters, "
                    + "digits and '-', starting and ending with a letter or digit")
        }
        guard (1...99).contains(nodes) else {
            throw invalid("-n \(nodes) is out of range: a cluster has 1 to 99 nodes")
        }
        guard TerraformSpec.isK3sVersion(k3sVersion) else {
            throw invalid(
                "invalid K3s version '\(SSHHost.printable(k3sVersion))': expected vMAJOR.MINOR.PATCH+k3sN, "
                    + "e.g. \(TerraformSpec.defaultK3sVersion)")
        }
        try TerraformSpec.validatePath(kubeconfigPath, what: "kubeconfig path")

        switch target {
        case .local:
            guard nodes == 1 else {
                throw invalid(
                    "--target local runs one K3s server on this host, so -n \(nodes) cannot be honoured: "
                        + "use --target ssh --hosts USER@HOST,... (one host per node) or --target docker")
            }
            guard !highAvailability else {
                throw invalid(
                    "--target local runs one K3s server and cannot be highly available: "
                        + "use --target ssh or --target docker with -n 3 or more")
            }
        case .ssh, .docker:
            guard !highAvailability || nodes >= TerraformSpec.highAvailabilityServers else {
                throw invalid(
                    "high availability needs at least \(TerraformSpec.highAvailabilityServers) nodes "
                        + "(3 servers with embedded etcd), but -n is \(nodes)")
            }
        }

        if target == .ssh {
            guard hosts.count == nodes else {
                throw invalid(
                    "--target ssh with -n \(nodes) needs \(nodes) host\(nodes == 1 ? "" : "s") in --hosts, "
                        + "got \(hosts.count)")
            }
            var seen = Set<String>()
            for host in hosts {
                do {
                    try host.validate()
                } catch let error as ShoalError {
                    throw invalid("invalid SSH host '\(SSHHost.printable(host.user))@\(SSHHost.printable(host.host))': "
                        + error.message)
                }
                let key = "\(host.host.lowercased()):\(host.port)"
                guard seen.insert(key).inserted else {
                    throw invalid("host \(host.host) appears twice in --hosts: each node needs a host of its own")
                }
            }
            if let sshKeyPath { try TerraformSpec.validatePath(sshKeyPath, what: "SSH key path") }
            if let knownHostsPath { try TerraformSpec.validatePath(knownHostsPath, what: "known_hosts path") }
        } else {
            guard hosts.isEmpty else {
                throw invalid("--hosts is only used with --target ssh (the target is \(target.rawValue))")
            }
            guard sshKeyPath == nil else {
                throw invalid("--ssh-key is only used with --target ssh (the target is \(target.rawValue))")
            }
            guard apiAddress == nil else {
                throw invalid(
                    "--api-address is only used with --target ssh (the target is \(target.rawValue)); "
                        + "use --advertise-address for the address other hosts reach the cluster at")
            }
            guard knownHostsPath == nil else {
                throw invalid("a known_hosts file is only used with --target ssh")
            }
        }
        for (flag, value) in [("--advertise-address", advertiseAddress), ("--api-address", apiAddress)] {
            guard let value, !SSHHost.isAddress(value) else { continue }
            throw invalid(
                "invalid \(flag) '\(SSHHost.printable(value))': use a host name or an IP address that other "
                    + "hosts reach (not 0.0.0.0 or ::)")
        }

        if let airgapDirectory {
            guard target != .docker else {
                throw invalid(
                    "--airgap-dir is not used with --target docker: load the rancher/k3s image "
                        + "with 'docker load' instead")
            }
            try TerraformSpec.validatePath(airgapDirectory, what: "air-gap directory")
        }
    }

    /// Checks that the files this spec names exist on this machine: the SSH key, and the air-gap
    /// directory's `k3s` binary, `install.sh` and at least one `k3s-airgap-images-*` archive.
    /// `validate()` does not look at the file system; call this where apply will run.
    /// - Throws: `ShoalError(.notFound)` naming the missing file.
    public func checkLocalFiles() throws {
        let files = FileManager.default
        if let sshKeyPath, !files.isReadableFile(atPath: sshKeyPath) {
            throw ShoalError(.notFound, "the SSH key \(sshKeyPath) does not exist or is not readable")
        }
        guard let airgapDirectory else { return }
        for name in ["k3s", "install.sh"] where !files.fileExists(atPath: "\(airgapDirectory)/\(name)") {
            throw ShoalError(
                .notFound,
                "the air-gap directory \(airgapDirectory) has no \(name): it needs the k3s binary, "
                    + "install.sh and a k3s-airgap-images archive of the same release")
        }
        let entries = (try? files.contentsOfDirectory(atPath: airgapDirectory)) ?? []
        guard entries.contains(where: { $0.hasPrefix("k3s-airgap-images-") }) else {
            throw ShoalError(
                .notFound, "the air-gap directory \(airgapDirectory) has no k3s-airgap-images-* archive")
        }
    }

    // MARK: - Grammar

    /// `vX.Y.Z+k3sN` or `vX.Y.Z-rcN+k3sN`, digits only in the numbers.
    static func isK3sVersion(_ text: String) -> Bool {
        guard text.hasPrefix("v"), text.utf8.count <= 40 else { return false }
        let halves = text.dropFirst().split(separator: "+", omittingEmptySubsequences: false)
        guard halves.count == 2, halves[1].hasPrefix("k3s"), isDigits(halves[1].dropFirst(3)) else { return false }
        var release = halves[0]
        if let dash = release.firstIndex(of: "-") {
            let suffix = release[release.index(after: dash)...]
            guard suffix.hasPrefix("rc"), isDigits(suffix.dropFirst(2)) else { return false }
            release = release[..<dash]
        }
        let numbers = release.split(separator: ".", omittingEmptySubsequences: false)
        return numbers.count == 3 && numbers.allSatisfy { isDigits($0) }
    }

    private static func isDigits(_ text: Substring) -> Bool {
        !text.isEmpty && text.utf8.count <= 6 && text.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
    }

    /// An absolute path without control characters or `..` components. Paths reach commands
    /// only through environment variables, quoted; the check keeps them unsurprising.
    static func validatePath(_ path: String, what: String) throws {
        let hasControl = path.unicodeScalars.contains { $0.properties.generalCategory == .control }
        let components = path.split(separator: "/")
        guard path.hasPrefix("/"), path.utf8.count <= 4096, !hasControl, !components.contains(".."),
            !components.isEmpty
        else {
            throw ShoalError(
                .invalidInput,
                "invalid \(what) '\(SSHHost.printable(path))': use an absolute path without '..' "
                    + "or control characters")
        }
    }

    private func invalid(_ message: String) -> ShoalError {
        ShoalError(.invalidInput, message)
    }
}
