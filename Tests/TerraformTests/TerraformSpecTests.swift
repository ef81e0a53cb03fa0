import ShoalSupport
import Testing

@testable import Terraform

/// Each refusal of `TerraformSpec.validate()` (and so of `TerraformRenderer.render`).
@Suite struct TerraformSpecTests {
    static let kubeconfig = "/tmp/shoal-test/kubeconfig"

    static func hosts(_ count: Int) -> [SSHHost] {
        (0..<count).map { SSHHost(user: "ubuntu", host: "10.0.0.\($0 + 1)", port: 22) }
    }

    /// The refusal's message, which must be one line.
    func refusal(_ spec: TerraformSpec) throws -> String {
        let error = try #require(throws: ShoalError.self) { try TerraformRenderer.render(spec) }
        #expect(error.code == .invalidInput)
        #expect(!error.message.contains("\n"))
        return error.message
    }

    @Test func acceptsEveryTargetWithSensibleInput() throws {
        try TerraformSpec(clusterName: "demo", target: .local, nodes: 1, kubeconfigPath: Self.kubeconfig).validate()
        try TerraformSpec(
            clusterName: "demo", target: .ssh, nodes: 3, highAvailability: true, hosts: Self.hosts(3),
            sshKeyPath: "/home/me/.ssh/id_ed25519", airgapDirectory: "/opt/k3s", kubeconfigPath: Self.kubeconfig
        ).validate()
        try TerraformSpec(clusterName: "demo", target: .docker, nodes: 5, kubeconfigPath: Self.kubeconfig).validate()
    }

    @Test func refusesLocalWithMoreThanOneNodeAndPointsToSSHOrDocker() throws {
        let message = try refusal(
            TerraformSpec(clusterName: "demo", target: .local, nodes: 3, kubeconfigPath: Self.kubeconfig))
        #expect(message.contains("-n 3"))
        #expect(message.contains("--target ssh"))
        #expect(message.contains("--target docker"))
    }

    @Test func refusesHighAvailabilityOnLocal() throws {
        let message = try refusal(
            TerraformSpec(
                clusterName: "demo", target: .local, nodes: 1, highAvailability: true, kubeconfigPath: Self.kubeconfig))
        #expect(message.contains("cannot be highly available"))
    }

    @Test(arguments: [K3sTarget.ssh, .docker], [1, 2])
    func refusesHighAvailabilityWithFewerThanThreeNodes(target: K3sTarget, nodes: Int) throws {
        let message = try refusal(
            TerraformSpec(
                clusterName: "demo", target: target, nodes: nodes, highAvailability: true,
                hosts: target == .ssh ? Self.hosts(nodes) : [], kubeconfigPath: Self.kubeconfig))
        #expect(message.contains("at least 3 nodes"))
        #expect(message.contains("-n is \(nodes)"))
    }

    @Test func refusesSSHWhenHostCountDiffersFromNodes() throws {
        let tooFew = try refusal(
            TerraformSpec(
                clusterName: "demo", target: .ssh, nodes: 3, hosts: Self.hosts(2), kubeconfigPath: Self.kubeconfig))
        #expect(tooFew.contains("-n 3 needs 3 hosts"))
        #expect(tooFew.contains("got 2"))
        let tooMany = try refusal(
            TerraformSpec(
                clusterName: "demo", target: .ssh, nodes: 1, hosts: Self.hosts(2), kubeconfigPath: Self.kubeconfig))
        #expect(tooMany.contains("needs 1 host in --hosts, got 2"))
    }

    @Test func refusesTheSameHostTwice() throws {
        let host = SSHHost(user: "ubuntu", host: "10.0.0.1", port: 22)
        let message = try refusal(
            TerraformSpec(
                clusterName: "demo", target: .ssh, nodes: 2, hosts: [host, host], kubeconfigPath: Self.kubeconfig))
        #expect(message.contains("appears twice"))
    }

    @Test func refusesAHostileHostBuiltWithoutParse() throws {
        let hostile = SSHHost(user: "root", host: "a;rm -rf /", port: 22)
        let message = try refusal(
            TerraformSpec(
                clusterName: "demo", target: .ssh, nodes: 1, hosts: [hostile], kubeconfigPath: Self.kubeconfig))
        #expect(message.contains("a;rm -rf /"))
        #expect(message.contains("neither an RFC 1123 host name"))
    }

    @Test(arguments: [
        "../x", "", "Demo", "-demo", "demo-", "de_mo", "a;rm -rf /", "x\ny", String(repeating: "a", count: 51),
    ])
    func refusesBadClusterNames(name: String) throws {
        let message = try refusal(
            TerraformSpec(clusterName: name, target: .docker, nodes: 1, kubeconfigPath: Self.kubeconfig))
        #expect(message.hasPrefix("invalid cluster name"))
    }

    @Test(arguments: [0, -1, 100])
    func refusesNodeCountsOutOfRange(nodes: Int) throws {
        let message = try refusal(
            TerraformSpec(clusterName: "demo", target: .docker, nodes: nodes, kubeconfigPath: Self.kubeconfig))
        #expect(message.contains("1 to 99 nodes"))
    }

    @Test(arguments: [
        "1.36.3+k3s1", "v1.36.3", "v1.36+k3s1", "v1.36.3+k3s", "v1.36.3-beta1+k3s1", "latest", "v1.36.3+k3s1;id",
        "v1.a.3+k3s1",
    ])
    func refusesMalformedK3sVersions(version: String) throws {
        let message = try refusal(
            TerraformSpec(
                clusterName: "demo", target: .docker, nodes: 1, k3sVersion: version, kubeconfigPath: Self.kubeconfig))
        #expect(message.contains("vMAJOR.MINOR.PATCH+k3sN"))
    }

    @Test func acceptsReleaseCandidateVersions() throws {
        try TerraformSpec(
            clusterName: "demo", target: .docker, nodes: 1, k3sVersion: "v1.37.0-rc1+k3s1",
            kubeconfigPath: Self.kubeconfig
        ).validate()
    }

    @Test(arguments: ["kubeconfig", "relative/kubeconfig", "/tmp/../etc/passwd", "/tmp/a\nb", "/"])
    func refusesBadKubeconfigPaths(path: String) throws {
        let message = try refusal(TerraformSpec(clusterName: "demo", target: .local, nodes: 1, kubeconfigPath: path))
        #expect(message.hasPrefix("invalid kubeconfig path"))
    }

    @Test func refusesBadSSHKeyAndAirgapPaths() throws {
        let key = try refusal(
            TerraformSpec(
                clusterName: "demo", target: .ssh, nodes: 1, hosts: Self.hosts(1), sshKeyPath: "~/.ssh/id",
                kubeconfigPath: Self.kubeconfig))
        #expect(key.hasPrefix("invalid SSH key path"))
        let airgap = try refusal(
            TerraformSpec(
                clusterName: "demo", target: .ssh, nodes: 1, hosts: Self.hosts(1), airgapDirectory: "../airgap",
                kubeconfigPath: Self.kubeconfig))
        #expect(airgap.hasPrefix("invalid air-gap directory"))
    }

    @Test func refusesHostsAndSSHKeyForOtherTargets() throws {
        let hosts = try refusal(
            TerraformSpec(
                clusterName: "demo", target: .docker, nodes: 1, hosts: Self.hosts(1), kubeconfigPath: Self.kubeconfig))
        #expect(hosts.contains("--hosts is only used with --target ssh"))
        let key = try refusal(
            TerraformSpec(
                clusterName: "demo", target: .local, nodes: 1, sshKeyPath: "/k", kubeconfigPath: Self.kubeconfig))
        #expect(key.contains("--ssh-key is only used with --target ssh"))
    }

    @Test func refusesAirgapForDocker() throws {
        let message = try refusal(
            TerraformSpec(
                clusterName: "demo", target: .docker, nodes: 1, airgapDirectory: "/opt/k3s",
                kubeconfigPath: Self.kubeconfig))
        #expect(message.contains("docker load"))
    }

    @Test func checkLocalFilesNamesWhatIsMissing() throws {
        let directory = try TemporaryDirectory()
        let spec = TerraformSpec(
            clusterName: "demo", target: .ssh, nodes: 1, hosts: Self.hosts(1), airgapDirectory: directory.path,
            kubeconfigPath: Self.kubeconfig)
        let missing = try #require(throws: ShoalError.self) { try spec.checkLocalFiles() }
        #expect(missing.code == .notFound)
        #expect(missing.message.contains("has no k3s"))
        for name in ["k3s", "install.sh", "k3s-airgap-images-amd64.tar.zst"] {
            try SecureFile.write("x", to: "\(directory.path)/\(name)")
        }
        try spec.checkLocalFiles()

        var withKey = spec
        withKey.sshKeyPath = "\(directory.path)/no-such-key"
        let key = try #require(throws: ShoalError.self) { try withKey.checkLocalFiles() }
        #expect(key.message.contains("no-such-key"))
    }

    @Test(arguments: ["0.0.0.0", "::", "a;id", "x\ny", "", "host name", "-oProxy"])
    func refusesAnAdvertiseAddressOtherHostsCannotUse(address: String) throws {
        let message = try refusal(
            TerraformSpec(
                clusterName: "demo", target: .docker, nodes: 1, kubeconfigPath: Self.kubeconfig,
                advertiseAddress: address))
        #expect(message.hasPrefix("invalid --advertise-address"))
    }

    @Test func acceptsAdvertisedNamesAndAddresses() throws {
        for address in ["10.0.0.5", "infra-1.lab", "2001:db8::5"] {
            try TerraformSpec(
                clusterName: "demo", target: .docker, nodes: 1, kubeconfigPath: Self.kubeconfig,
                advertiseAddress: address
            ).validate()
        }
    }

    @Test func refusesTheAPIAddressOutsideSSH() throws {
        let message = try refusal(
            TerraformSpec(
                clusterName: "demo", target: .docker, nodes: 1, kubeconfigPath: Self.kubeconfig,
                apiAddress: "10.0.0.1"))
        #expect(message.contains("--api-address is only used with --target ssh"))
        let bad = try refusal(
            TerraformSpec(
                clusterName: "demo", target: .ssh, nodes: 1, hosts: Self.hosts(1), kubeconfigPath: Self.kubeconfig,
                apiAddress: "10.0.0.1;id"))
        #expect(bad.hasPrefix("invalid --api-address"))
    }

    @Test(arguments: [
        (SSHHost(user: "u", host: "h1", nodeIP: "node-1"), "node IP 'node-1' is not an IPv4 or IPv6 address"),
        (SSHHost(user: "u", host: "h1", nodeIP: "0.0.0.0"), "node IP '0.0.0.0'"),
        (SSHHost(user: "u", host: "h1", flannelInterface: "eth0;id"), "flannel interface 'eth0;id'"),
        (SSHHost(user: "u", host: "h1", flannelInterface: "a-very-long-interface"), "is not an interface name"),
        (SSHHost(user: "u", host: "h1", hostKey: "ssh-dss AAAA"), "is not an OpenSSH public key"),
    ])
    func refusesBadPerHostSettings(host: SSHHost, message: String) throws {
        let refused = try refusal(
            TerraformSpec(clusterName: "demo", target: .ssh, nodes: 1, hosts: [host], kubeconfigPath: Self.kubeconfig))
        #expect(refused.contains(message), "\(refused)")
    }
}
