import Foundation
import ShoalSupport
import Testing

@testable import Terraform

/// What the renderer writes, checked without running terraform.
@Suite struct TerraformRendererTests {
    static let kubeconfig = "/var/lib/shoal-out/kubeconfigs/wf-7/kubeconfig"

    func file(_ name: String, _ files: [TerraformFile]) throws -> String {
        try #require(files.first { $0.name == name }).contents
    }

    func tfvars(_ files: [TerraformFile]) throws -> [String: Any] {
        let text = try file("terraform.tfvars.json", files)
        return try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    static let configurationNames = [
        "docker.tf", "local.tf", "main.tf", "outputs.tf", "ssh.tf", "variables.tf", "versions.tf",
    ]

    @Test(arguments: K3sTarget.allCases)
    func writesTheConfigurationAndItsValuesForEveryTarget(target: K3sTarget) throws {
        let spec = TerraformSpec(
            clusterName: "demo", target: target, nodes: 1,
            hosts: target == .ssh ? [SSHHost(user: "u", host: "h1")] : [], kubeconfigPath: Self.kubeconfig)
        let names = try TerraformRenderer.render(spec).map(\.name)
        #expect(names == (Self.configurationNames + ["terraform.tfvars.json"]).sorted())
    }

    /// The executable carries the repository's terraform/*.tf byte for byte (the EmbedTerraform plugin), and
    /// no file there is left out.
    @Test func embeddedFilesAreTheRepositorysTerraformFiles() throws {
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        let directory = root.appendingPathComponent("terraform").path
        let onDisk = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".tf") }
        #expect(onDisk.sorted() == Self.configurationNames)
        let embedded = TerraformRenderer.configurationFiles
        #expect(embedded.map(\.name) == onDisk.sorted())
        for file in embedded {
            let bytes = try #require(FileManager.default.contents(atPath: "\(directory)/\(file.name)"))
            #expect(Data(file.contents.utf8) == bytes, "\(file.name) differs from terraform/\(file.name)")
            #expect(file.contents.count > 100, "\(file.name) is empty")
        }
    }

    /// User input reaches only terraform.tfvars.json; the HCL is the same for any input.
    @Test func userInputNeverAppearsInHCL() throws {
        let spec = TerraformSpec(
            clusterName: "zq-cluster", target: .ssh, nodes: 3, highAvailability: true,
            k3sVersion: "v1.35.9+k3s7",
            hosts: [
                SSHHost(user: "alice", host: "zq-host-a.example", port: 2201),
                SSHHost(user: "bob", host: "192.0.2.77", port: 22),
                SSHHost(user: "carol", host: "2001:db8::77", port: 22),
            ],
            sshKeyPath: "/home/alice/.ssh/zq_key", airgapDirectory: "/srv/zq-airgap", kubeconfigPath: Self.kubeconfig)
        let files = try TerraformRenderer.render(spec)
        let inputs = [
            "zq-cluster", "v1.35.9", "alice", "zq-host-a", "2201", "192.0.2.77", "2001:db8::77", "zq_key", "zq-airgap",
            "wf-7",
        ]
        for hcl in files where hcl.name.hasSuffix(".tf") {
            for input in inputs {
                #expect(!hcl.contents.contains(input), "\(input) appears in \(hcl.name)")
            }
        }
        let values = try file("terraform.tfvars.json", files)
        for input in inputs {
            #expect(values.contains(input), "\(input) is missing from terraform.tfvars.json")
        }
        let other = try TerraformRenderer.render(
            TerraformSpec(
                clusterName: "other", target: .ssh, nodes: 3, highAvailability: true,
                hosts: TerraformSpecTests.hosts(3), sshKeyPath: "/k", airgapDirectory: "/a", kubeconfigPath: "/kc"))
        let configuration = files.filter { $0.name.hasSuffix(".tf") }
        #expect(configuration.count == Self.configurationNames.count)
        #expect(configuration == other.filter { $0.name.hasSuffix(".tf") })
        let docker = try TerraformRenderer.render(
            TerraformSpec(clusterName: "other", target: .docker, nodes: 2, kubeconfigPath: "/kc"))
        #expect(configuration == docker.filter { $0.name.hasSuffix(".tf") }, "one configuration for every target")
    }

    @Test func tokenIsAnEphemeralSensitiveVariableWithoutDefault() throws {
        let files = try TerraformRenderer.render(
            TerraformSpec(clusterName: "demo", target: .docker, nodes: 2, kubeconfigPath: Self.kubeconfig))
        let variables = try file("variables.tf", files)
        let block = try #require(
            variables.range(of: "variable \"k3s_token\" {").map { String(variables[$0.lowerBound...].prefix(600)) })
        let body = String(block[..<(block.range(of: "\n}\n")?.lowerBound ?? block.endIndex)])
        #expect(body.contains("sensitive   = true"))
        #expect(body.contains("ephemeral   = true"))
        #expect(!body.contains("default"))
        #expect(try tfvars(files)["k3s_token"] == nil)
    }

    @Test func sshValuesFollowTheSpec() throws {
        let spec = TerraformSpec(
            clusterName: "lab", target: .ssh, nodes: 4, highAvailability: true,
            hosts: [
                SSHHost(user: "a", host: "n1", nodeIP: "10.9.0.1", flannelInterface: "eth1"),
                SSHHost(user: "b", host: "n2", port: 2222), SSHHost(user: "c", host: "10.1.1.3"),
                SSHHost(user: "d", host: "::1", nodeIP: "fd00::4"),
            ], kubeconfigPath: Self.kubeconfig, apiAddress: "10.9.0.1", knownHostsPath: "/w/known_hosts")
        let values = try tfvars(TerraformRenderer.render(spec))
        #expect(values["target"] as? String == "ssh")
        #expect(values["node_count"] as? Int == 4)
        #expect(values["server_count"] as? Int == 3)
        #expect(values["ssh_key_path"] == nil)
        #expect(values["api_address"] as? String == "10.9.0.1")
        #expect(values["known_hosts_path"] as? String == "/w/known_hosts")
        #expect(values["advertise_address"] == nil)
        let hosts = try #require(values["hosts"] as? [[String: Any]])
        #expect(hosts.map { $0["host"] as? String } == ["n1", "n2", "10.1.1.3", "::1"])
        #expect(hosts.map { $0["port"] as? Int } == [22, 2222, 22, 22])
        #expect(hosts.map { $0["node_ip"] as? String } == ["10.9.0.1", nil, nil, "fd00::4"])
        #expect(hosts.map { $0["flannel_iface"] as? String } == ["eth1", nil, nil, nil])
        #expect(hosts.allSatisfy { $0["host_key"] == nil })
        #expect(TerraformRenderer.nodeNames(spec) == ["lab-server-0", "lab-server-1", "lab-server-2", "lab-agent-3"])
        #expect(
            TerraformRenderer.nodeResourceAddresses(spec) == [
                #"terraform_data.ssh_first_server["lab-server-0"]"#, #"terraform_data.ssh_node["lab-server-1"]"#,
                #"terraform_data.ssh_node["lab-server-2"]"#, #"terraform_data.ssh_node["lab-agent-3"]"#,
            ])
        #expect(
            TerraformRenderer.supportResourceAddresses(spec) == [
                "terraform_data.kubeconfig", #"terraform_data.ssh_uninstall["lab-server-0"]"#,
                #"terraform_data.ssh_uninstall["lab-server-1"]"#, #"terraform_data.ssh_uninstall["lab-server-2"]"#,
                #"terraform_data.ssh_uninstall["lab-agent-3"]"#, #"terraform_data.ssh_join_address["lab-server-0"]"#,
            ])
    }

    @Test func dockerPublishesExactlyTheFourNodePortsOnTheAdvertisedAddressAndPinsTheImage() throws {
        let files = try TerraformRenderer.render(
            TerraformSpec(clusterName: "demo", target: .docker, nodes: 3, kubeconfigPath: Self.kubeconfig))
        let values = try tfvars(files)
        #expect(values["node_ports"] as? [Int] == [30080, 30090, 30300, 30466])
        #expect(values["node_count"] as? Int == 3)
        #expect(values["server_count"] as? Int == 1)
        #expect(values["advertise_address"] == nil, "127.0.0.1 by default")
        let docker = try file("docker.tf", files)
        #expect(docker.contains(#"image      = "rancher/k3s:${replace(var.k3s_version, "+", "-")}""#))
        #expect(docker.contains(#"--publish "$PUBLISH_ADDRESS:$port:$port""#))
        #expect(!docker.contains("0.0.0.0"))

        let advertised = try tfvars(
            TerraformRenderer.render(
                TerraformSpec(
                    clusterName: "demo", target: .docker, nodes: 1, kubeconfigPath: Self.kubeconfig,
                    advertiseAddress: "infra-1.lab")))
        #expect(advertised["advertise_address"] as? String == "infra-1.lab")
    }

    @Test func airgapIsAValueAndAddsOneUploadPerSSHHost() throws {
        for target in [K3sTarget.local, .ssh] {
            let spec = TerraformSpec(
                clusterName: "demo", target: target, nodes: 2 - (target == .local ? 1 : 0),
                hosts: target == .ssh ? [SSHHost(user: "u", host: "h1"), SSHHost(user: "u", host: "h2")] : [],
                airgapDirectory: "/opt/k3s", kubeconfigPath: Self.kubeconfig)
            let files = try TerraformRenderer.render(spec)
            #expect(try tfvars(files)["airgap_dir"] as? String == "/opt/k3s")
            let uploads = TerraformRenderer.supportResourceAddresses(spec).filter { $0.contains("ssh_airgap") }
            #expect(uploads.count == (target == .ssh ? 2 : 0))
        }
        // Both install paths are in the configuration; the variable picks one.
        let configuration = TerraformRenderer.configurationFiles
        for name in ["local.tf", "ssh.tf"] {
            let text = try file(name, configuration)
            #expect(text.contains("INSTALL_K3S_SKIP_DOWNLOAD=true"))
            #expect(text.contains("https://get.k3s.io"))
        }
    }

    @Test func sshScriptsRunFromTheHomeDirectoryAndOpenTheFirewall() throws {
        let ssh = try file("ssh.tf", TerraformRenderer.configurationFiles)
        #expect(ssh.contains(#"script_path   = "./.shoal-${var.cluster_name}.sh""#))
        #expect(!ssh.contains("/tmp/"), "no script or staging file in /tmp, which may be noexec")
        #expect(ssh.contains("script_path = self.input.script_path"))
        #expect(ssh.contains("host_key    = self.input.host_key"))
        let main = try file("main.tf", TerraformRenderer.configurationFiles)
        for rule in ["ufw allow 8472/udp", "--add-port=8472/udp", "2379:2380", "tcp=\"6443 $tcp\"", "10250"] {
            #expect(main.contains(rule), "the firewall script lacks \(rule)")
        }
    }

    @Test func localPinsTheVersionThroughTheInstallScriptEnvironment() throws {
        let files = try TerraformRenderer.render(
            TerraformSpec(clusterName: "demo", target: .local, nodes: 1, kubeconfigPath: Self.kubeconfig))
        #expect(try file("local.tf", files).contains("INSTALL_K3S_VERSION = var.k3s_version"))
        #expect(try tfvars(files)["k3s_version"] as? String == TerraformSpec.defaultK3sVersion)
        #expect(TerraformRenderer.nodeNames(
            TerraformSpec(clusterName: "demo", target: .local, nodes: 1, kubeconfigPath: "/k")) == ["demo-server-0"])
    }

    @Test func writeCreatesTheDirectoryAndFiles() throws {
        let directory = try TemporaryDirectory()
        let target = "\(directory.path)/terraform/wf-1"
        let paths = try TerraformRenderer.write(
            TerraformSpec(clusterName: "demo", target: .docker, nodes: 2, kubeconfigPath: Self.kubeconfig), to: target)
        #expect(paths.count == Self.configurationNames.count + 1)
        for path in paths {
            #expect(FileManager.default.fileExists(atPath: path))
            #expect(SecureFile.mode(of: path) == 0o644)
        }
    }

    @Test func generatedTokensAreLongRandomAndAlphanumeric() {
        let tokens = (0..<20).map { _ in TerraformRunner.generateToken() }
        #expect(Set(tokens).count == tokens.count)
        for token in tokens {
            #expect(token.count >= 48)
            #expect(token.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })
            #expect(TerraformRunner.isValidToken(token))
        }
        #expect(!TerraformRunner.isValidToken("short"))
        #expect(!TerraformRunner.isValidToken(String(repeating: "a", count: 40) + ";"))
    }
}

@Suite struct TerraformPlanSummaryTests {
    @Test func parsesThePlanLineAndResourceHeadings() throws {
        let output = """
            Terraform will perform the following actions:

              # terraform_data.agent[0] will be created
              + resource "terraform_data" "agent" {
                }

              # terraform_data.server_init must be replaced
            -/+ resource "terraform_data" "server_init" {
                }

              # terraform_data.old will be destroyed
              # (because terraform_data.old is not in configuration)

            Plan: 2 to add, 1 to change, 3 to destroy.
            """
        let summary = try #require(TerraformPlanSummary.parse(output))
        #expect(summary.add == 2)
        #expect(summary.change == 1)
        #expect(summary.destroy == 3)
        #expect(summary.resources == ["terraform_data.agent[0]", "terraform_data.server_init", "terraform_data.old"])
    }

    @Test func parsesNoChangesAndNothing() {
        let none = TerraformPlanSummary.parse("No changes. Your infrastructure matches the configuration.")
        #expect(none == TerraformPlanSummary(add: 0, change: 0, destroy: 0, resources: []))
        #expect(TerraformPlanSummary.parse("Error: No value for required variable") == nil)
    }
}
