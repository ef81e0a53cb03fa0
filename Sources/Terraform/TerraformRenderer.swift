import Foundation
import ShoalSupport

/// One generated file of a Terraform configuration.
public struct TerraformFile: Sendable, Equatable {
    /// A bare file name such as `main.tf`.
    public var name: String
    public var contents: String

    public init(name: String, contents: String) {
        self.name = name
        self.contents = contents
    }
}

/// Writes the Terraform configuration that provisions K3s for a `TerraformSpec`.
///
/// The HCL depends only on the target and on whether an air-gap directory is used; every value
/// (cluster name, hosts, version, paths) goes into `terraform.tfvars.json`, where Terraform's own
/// variable validation checks it a second time. Only the built-in `terraform_data` resource is
/// used, so `terraform init` needs no network.
public enum TerraformRenderer {
    /// Renders `versions.tf`, `variables.tf`, `main.tf`, `outputs.tf` and `terraform.tfvars.json`.
    /// - Parameters:
    ///   - spec: what to provision; validated first.
    /// - Returns: the files, sorted by name.
    /// - Throws: `ShoalError(.invalidInput)` from `spec.validate()`.
    public static func render(_ spec: TerraformSpec) throws -> [TerraformFile] {
        try spec.validate()
        let airgap = spec.airgapDirectory != nil
        return [
            TerraformFile(name: "main.tf", contents: mainTF(target: spec.target, airgap: airgap)),
            TerraformFile(name: "outputs.tf", contents: HCL.outputs),
            TerraformFile(name: "terraform.tfvars.json", contents: try tfvars(spec)),
            TerraformFile(name: "variables.tf", contents: variablesTF(target: spec.target, airgap: airgap)),
            TerraformFile(name: "versions.tf", contents: HCL.versions),
        ]
    }

    /// Renders the files and writes them into `directory` (created if needed, mode 0644: they
    /// hold no secret). Files Terraform keeps there (state, `.terraform`) are left alone.
    /// - Returns: the paths written.
    /// - Throws: `ShoalError(.invalidInput)` for a bad spec, `ShoalError(.io)` when writing fails.
    @discardableResult
    public static func write(_ spec: TerraformSpec, to directory: String) throws -> [String] {
        let files = try render(spec)
        try SecureFile.createDirectory(directory)
        return try files.map { file in
            let path = "\(directory)/\(file.name)"
            try SecureFile.write(file.contents, to: path, mode: 0o644)
            return path
        }
    }

    /// Kubernetes node names, in node order: `<cluster>-server-<i>` for the servers, then
    /// `<cluster>-agent-<i>` (the index counts all nodes, so names never repeat).
    public static func nodeNames(_ spec: TerraformSpec) -> [String] {
        let count = spec.target == .local ? 1 : max(spec.nodes, 0)
        return (0..<count).map { index in
            "\(spec.clusterName)-\(index < spec.serverCount ? "server" : "agent")-\(index)"
        }
    }

    /// Addresses of the resources that stand for nodes, in node order, as `terraform plan` prints
    /// them: `terraform_data.server_init`, `terraform_data.server_join[0]`, `terraform_data.agent[0]`...
    public static func nodeResourceAddresses(_ spec: TerraformSpec) -> [String] {
        let count = nodeNames(spec).count
        let servers = min(spec.serverCount, count)
        return ["terraform_data.server_init"]
            + (0..<max(servers - 1, 0)).map { "terraform_data.server_join[\($0)]" }
            + (0..<max(count - servers, 0)).map { "terraform_data.agent[\($0)]" }
    }

    /// Addresses of the other resources of the plan: the kubeconfig copy, and the docker network.
    public static func supportResourceAddresses(_ spec: TerraformSpec) -> [String] {
        spec.target == .docker
            ? ["terraform_data.kubeconfig", "terraform_data.network"] : ["terraform_data.kubeconfig"]
    }

    // MARK: - Files

    static func mainTF(target: K3sTarget, airgap: Bool) -> String {
        switch target {
        case .local:
            guard airgap else { return HCL.localMain }
            return replacing(HCL.localInstallOnline, with: HCL.localInstallAirgap, in: HCL.localMain)
        case .ssh:
            guard airgap else { return HCL.sshMain }
            let text = replacing(HCL.sshPreambleOnline, with: HCL.sshPreambleAirgap, in: HCL.sshMain)
            return replacing(HCL.sshTokenUpload, with: HCL.sshTokenUpload + HCL.sshAirgapUpload, in: text)
        case .docker:
            return HCL.dockerMain
        }
    }

    static func variablesTF(target: K3sTarget, airgap: Bool) -> String {
        var text = HCL.variablesCommon
        switch target {
        case .local: break
        case .ssh: text += HCL.variablesSSH
        case .docker: text += HCL.variablesDocker
        }
        if airgap { text += HCL.variablesAirgap }
        return text
    }

    /// Every value the HCL reads, and only those (Terraform warns about undeclared ones).
    static func tfvars(_ spec: TerraformSpec) throws -> String {
        var values: [String: Any] = [
            "cluster_name": spec.clusterName,
            "k3s_version": spec.k3sVersion,
            "kubeconfig_path": spec.kubeconfigPath,
        ]
        switch spec.target {
        case .local:
            break
        case .ssh:
            values["server_count"] = spec.serverCount
            values["hosts"] = spec.hosts.map { ["user": $0.user, "host": $0.host, "port": $0.port] as [String: Any] }
            if let key = spec.sshKeyPath { values["ssh_key_path"] = key }
        case .docker:
            values["server_count"] = spec.serverCount
            values["node_count"] = spec.nodes
            values["node_ports"] = TerraformSpec.dockerNodePorts
        }
        if let airgap = spec.airgapDirectory { values["airgap_dir"] = airgap }
        do {
            let data = try JSONSerialization.data(
                withJSONObject: values, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            return String(decoding: data, as: UTF8.self) + "\n"
        } catch {
            throw ShoalError(.io, "cannot encode terraform.tfvars.json", cause: "\(error)")
        }
    }

    /// Replaces a fragment the templates are known to contain; a miss is a bug in the templates,
    /// which the tests catch by running `terraform validate` on every variant.
    private static func replacing(_ fragment: String, with replacement: String, in text: String) -> String {
        precondition(text.contains(fragment), "HCL template fragment not found")
        return text.replacingOccurrences(of: fragment, with: replacement)
    }
}
