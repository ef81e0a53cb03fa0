import Foundation
import ShoalSupport
import Testing

@testable import Terraform

/// One configuration of the matrix run through the real terraform CLI.
struct PlanCase: Sendable, CustomTestStringConvertible {
    var target: K3sTarget
    var nodes: Int
    var highAvailability = false
    var airgap = false
    /// --advertise-address (every target), and for ssh --api-address and a node IP and flannel interface
    /// on every host.
    var addresses = false

    var testDescription: String {
        "\(target.rawValue) -n \(nodes)\(highAvailability ? " --ha" : "")\(airgap ? " --airgap-dir" : "")"
            + (addresses ? " --advertise-address" : "")
    }

    func spec(kubeconfig: String) -> TerraformSpec {
        TerraformSpec(
            clusterName: "shoal-\(target.rawValue)-\(nodes)", target: target, nodes: nodes,
            highAvailability: highAvailability,
            hosts: target == .ssh
                ? (0..<nodes).map { index in
                    SSHHost(
                        user: "ubuntu", host: "192.0.2.\(index + 10)", port: 22,
                        nodeIP: addresses ? "10.10.0.\(index + 10)" : nil, flannelInterface: addresses ? "ens4" : nil,
                        hostKey: addresses ? PlanCase.hostKey : nil)
                } : [],
            sshKeyPath: target == .ssh && nodes.isMultiple(of: 2) ? "/home/ubuntu/.ssh/id_ed25519" : nil,
            airgapDirectory: airgap ? "/opt/k3s-airgap" : nil, kubeconfigPath: kubeconfig,
            advertiseAddress: addresses ? "198.51.100.7" : nil,
            apiAddress: addresses && target == .ssh ? "10.10.0.10" : nil)
    }

    static let hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFu7Y1hbcygRPveywY8ye0HIRRORtN2O5sj/mi8hzZ+Z"

    /// Every target with 1 to 5 nodes (local: 1), the highly available variants, and air-gap.
    static let all: [PlanCase] =
        [PlanCase(target: .local, nodes: 1), PlanCase(target: .local, nodes: 1, airgap: true)]
        + (1...5).map { PlanCase(target: .ssh, nodes: $0) }
        + (1...5).map { PlanCase(target: .docker, nodes: $0) }
        + (3...5).map { PlanCase(target: .ssh, nodes: $0, highAvailability: true) }
        + (3...5).map { PlanCase(target: .docker, nodes: $0, highAvailability: true) }
        + [PlanCase(target: .ssh, nodes: 4, highAvailability: true, airgap: true)]
        + [K3sTarget.local, .ssh, .docker].map { PlanCase(target: $0, nodes: $0 == .local ? 1 : 3, addresses: true) }
}

@Suite struct TerraformCLITests {
    let runner = TerraformRunner(commandTimeout: .seconds(120))

    /// fmt -check, init -backend=false, validate and plan all pass, and the plan creates one
    /// resource per node plus the support resources, with the node names as an output.
    @Test(arguments: PlanCase.all)
    func planCreatesOneResourcePerNode(_ planCase: PlanCase) async throws {
        guard terraformAvailable() else { return }
        let directory = try TemporaryDirectory()
        let spec = planCase.spec(kubeconfig: "\(directory.path)/kubeconfig")
        try TerraformRenderer.write(spec, to: directory.path)

        let fmt = try await runner.fmtCheck(directory: directory.path)
        #expect(fmt.succeeded, "terraform fmt -check: \(fmt.standardOutput)\(fmt.standardErrorTail())")
        let initialized = try await runner.initialize(directory: directory.path)
        try #require(initialized.succeeded, "terraform init: \(initialized.standardErrorTail())")
        let validated = try await runner.validate(directory: directory.path)
        #expect(validated.succeeded, "terraform validate: \(validated.standardOutput)\(validated.standardErrorTail())")

        let (plan, summary) = try await runner.plan(directory: directory.path, token: TerraformRunner.generateToken())
        try #require(plan.succeeded, "terraform plan: \(plan.standardErrorTail(lines: 20))")
        let parsed = try #require(summary)
        let nodes = TerraformRenderer.nodeResourceAddresses(spec)
        let support = TerraformRenderer.supportResourceAddresses(spec)
        #expect(nodes.count == planCase.nodes)
        #expect(parsed.add == nodes.count + support.count)
        #expect(parsed.change == 0 && parsed.destroy == 0)
        #expect(parsed.resources.sorted() == (nodes + support).sorted())
        for name in TerraformRenderer.nodeNames(spec) {
            #expect(plan.standardOutput.contains("\"\(name)\""), "node \(name) is not in the plan")
        }
        if planCase.target == .docker {
            #expect(plan.standardOutput.contains("\"rancher/k3s:v1.36.3-k3s1\""))
        }
        let endpoint = planCase.addresses ? "198.51.100.7" : planCase.target == .ssh ? "192.0.2.10" : "127.0.0.1"
        #expect(plan.standardOutput.contains("api_endpoint    = \"https://\(endpoint):6443\""))
        #expect(FileManager.default.fileExists(atPath: "\(directory.path)/\(TerraformRunner.planFile)"))
    }

    /// The token reaches terraform only through the environment: it is in no file of the
    /// directory after init and plan (the saved plan included, read back by `terraform show`),
    /// and not in terraform's output.
    @Test func tokenAppearsInNoWrittenFile() async throws {
        guard terraformAvailable() else { return }
        let directory = try TemporaryDirectory()
        let spec = PlanCase(target: .ssh, nodes: 4, highAvailability: true, airgap: true)
            .spec(kubeconfig: "\(directory.path)/kubeconfig")
        try TerraformRenderer.write(spec, to: directory.path)
        let token = TerraformRunner.generateToken()
        _ = try await runner.initialize(directory: directory.path)
        let (plan, _) = try await runner.plan(directory: directory.path, token: token)
        try #require(plan.succeeded, "terraform plan: \(plan.standardErrorTail(lines: 20))")

        let files = allFiles(under: directory.path)
        #expect(files.contains { $0.path.hasSuffix("/\(TerraformRunner.planFile)") })
        for file in files {
            #expect(!file.data.contains(token), "the token is written in \(file.path)")
        }
        #expect(!plan.standardOutput.contains(token) && !plan.standardError.contains(token))
        let shown = try await ProcessRunner().run(
            "terraform", ["show", "-json", "-no-color", TerraformRunner.planFile], workingDirectory: directory.path,
            environment: ["CHECKPOINT_DISABLE": "1"])
        try #require(shown.succeeded, "terraform show: \(shown.standardErrorTail())")
        #expect(shown.standardOutput.contains("terraform_data"))
        #expect(!shown.standardOutput.contains(token))
    }

    /// The token variable has no default, so a plan without TF_VAR_k3s_token fails.
    @Test func planWithoutTheTokenInTheEnvironmentFails() async throws {
        guard terraformAvailable() else { return }
        let directory = try TemporaryDirectory()
        try TerraformRenderer.write(
            PlanCase(target: .docker, nodes: 1).spec(kubeconfig: "\(directory.path)/kubeconfig"), to: directory.path)
        let processes = ProcessRunner(environment: ["CHECKPOINT_DISABLE": "1"])
        _ = try await processes.run(
            "terraform", ["init", "-backend=false", "-input=false"], workingDirectory: directory.path)
        let plan = try await processes.run(
            "terraform", ["plan", "-input=false", "-no-color"], workingDirectory: directory.path,
            environment: ["TF_VAR_k3s_token": ""])
        #expect(!plan.succeeded)
        #expect(plan.standardError.contains("k3s_token"))
    }

    /// Terraform's own variable validation refuses hostile values even if terraform.tfvars.json
    /// is edited by hand after shoal wrote it.
    @Test(arguments: [
        ("hosts", #"[{"user": "ubuntu", "host": "a;rm -rf /", "port": 22}]"#, "Each host must be"),
        ("hosts", #"[{"user": "$(id)", "host": "h1", "port": 22}]"#, "Each user must be"),
        ("cluster_name", #""../x""#, "The cluster name must be"),
        ("k3s_version", #""v1.36.3+k3s1'; reboot; '""#, "The K3s version must"),
        ("kubeconfig_path", #""relative""#, "The kubeconfig path must"),
        ("advertise_address", #""a;id""#, "The advertise address must"),
        ("api_address", #""$(reboot)""#, "The API address must"),
        ("hosts", #"[{"user": "u", "host": "h1", "port": 22, "node_ip": "1.2.3.4'; reboot; '"}]"#, "Each node IP"),
        ("hosts", #"[{"user": "u", "host": "h1", "port": 22, "flannel_iface": "eth0 x"}]"#, "Each flannel"),
        ("hosts", #"[{"user": "u", "host": "h1", "port": 22, "host_key": "ssh-ed25519 A'B"}]"#, "Each host key"),
        ("target", #""kvm""#, "The target must be"),
    ])
    func terraformRefusesHostileValuesInTfvars(key: String, json: String, message: String) async throws {
        guard terraformAvailable() else { return }
        let directory = try TemporaryDirectory()
        try TerraformRenderer.write(
            PlanCase(target: .ssh, nodes: 1).spec(kubeconfig: "\(directory.path)/kubeconfig"), to: directory.path)
        let path = "\(directory.path)/terraform.tfvars.json"
        var values = try #require(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        values[key] = try JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed)
        try JSONSerialization.data(withJSONObject: values).write(to: URL(fileURLWithPath: path))

        _ = try await runner.initialize(directory: directory.path)
        let (plan, summary) = try await runner.plan(directory: directory.path, token: TerraformRunner.generateToken())
        #expect(!plan.succeeded)
        #expect(summary == nil)
        #expect(plan.standardError.contains(message), "\(plan.standardErrorTail())")
    }

    @Test func runnerRefusesAMalformedTokenBeforeRunningTerraform() async throws {
        let directory = try TemporaryDirectory()
        await #expect {
            _ = try await runner.plan(directory: directory.path, token: "not a token; echo")
        } throws: { error in
            (error as? ShoalError)?.code == .invalidInput && !"\(error)".contains("echo")
        }
    }

    @Test func runnerReportsAMissingExecutableOrDirectory() async throws {
        #expect(!TerraformRunner.isInstalled(executable: "shoal-no-such-terraform"))
        let directory = try TemporaryDirectory()
        let missing = TerraformRunner(executable: "shoal-no-such-terraform")
        await #expect {
            _ = try await missing.initialize(directory: directory.path)
        } throws: { error in
            (error as? ShoalError)?.code == .executableNotFound
        }
        await #expect {
            _ = try await runner.validate(directory: "\(directory.path)/absent")
        } throws: { error in
            (error as? ShoalError)?.code == .notFound
        }
    }

    @Test func aFailingCommandIsDataNotAnError() async throws {
        guard terraformAvailable() else { return }
        let directory = try TemporaryDirectory()
        try SecureFile.write("resource {\n", to: "\(directory.path)/main.tf")
        let result = try await runner.validate(directory: directory.path)
        #expect(!result.succeeded)
        #expect(result.standardError.contains("Error"))
    }
}
