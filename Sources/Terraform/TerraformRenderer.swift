import Foundation
import ShoalSupport

/// One file of a Terraform configuration.
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
/// The `.tf` files are the same for every spec: they are the files of the repository's `terraform/`
/// directory, compiled into this module by the EmbedTerraform build plugin, and the target, node count, high
/// availability, air-gap, addresses and versions are Terraform variables that conditionals, `for_each` and
/// `count` act on. Every value goes into `terraform.tfvars.json`, where Terraform's own variable validation
/// checks it a second time. Only the built-in `terraform_data` resource is used, so `terraform init` needs no
/// network.
public enum TerraformRenderer {
    /// The name of the values file shoal writes beside the `.tf` files.
    public static let valuesFile = "terraform.tfvars.json"

    /// The configuration's `.tf` files, as the repository's `terraform/` directory holds them.
    public static var configurationFiles: [TerraformFile] {
        EmbeddedTerraform.files.map { file in
            TerraformFile(
                name: file.name,
                contents: String(decoding: Data(base64Encoded: file.base64) ?? Data(), as: UTF8.self))
        }
    }

    /// Renders the `.tf` files and `terraform.tfvars.json`.
    /// - Parameters:
    ///   - spec: what to provision; validated first.
    /// - Returns: the files, sorted by name.
    /// - Throws: `ShoalError(.invalidInput)` from `spec.validate()`.
    public static func render(_ spec: TerraformSpec) throws -> [TerraformFile] {
        try spec.validate()
        let files = configurationFiles + [TerraformFile(name: valuesFile, contents: try tfvars(spec))]
        return files.sorted { $0.name < $1.name }
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
    /// them: the first server (`terraform_data.<target>_first_server["<name>"]`, or `local_server`), then
    /// the joining nodes (`terraform_data.<target>_node["<name>"]`).
    public static func nodeResourceAddresses(_ spec: TerraformSpec) -> [String] {
        let names = nodeNames(spec)
        guard let first = names.first else { return [] }
        let prefix = spec.target.rawValue
        if spec.target == .local { return ["terraform_data.local_server[\"\(first)\"]"] }
        return ["terraform_data.\(prefix)_first_server[\"\(first)\"]"]
            + names.dropFirst().map { "terraform_data.\(prefix)_node[\"\($0)\"]" }
    }

    /// Addresses of the other resources of the plan: the kubeconfig copy; one uninstaller per node (it runs on
    /// destroy, also after an install that failed); the docker network; for ssh, the join address (when nodes
    /// join) and one air-gap upload per host.
    public static func supportResourceAddresses(_ spec: TerraformSpec) -> [String] {
        let names = nodeNames(spec)
        var addresses = ["terraform_data.kubeconfig"]
        addresses += names.map { "terraform_data.\(spec.target.rawValue)_uninstall[\"\($0)\"]" }
        switch spec.target {
        case .local:
            break
        case .docker:
            addresses.append("terraform_data.docker_network[0]")
        case .ssh:
            if names.count > 1, let first = names.first {
                addresses.append("terraform_data.ssh_join_address[\"\(first)\"]")
            }
            if spec.airgapDirectory != nil {
                addresses += names.map { "terraform_data.ssh_airgap[\"\($0)\"]" }
            }
        }
        return addresses
    }

    // MARK: - Values

    /// Every value the configuration reads that differs from its default; nothing else (Terraform warns
    /// about undeclared ones).
    static func tfvars(_ spec: TerraformSpec) throws -> String {
        var values: [String: Any] = [
            "target": spec.target.rawValue,
            "cluster_name": spec.clusterName,
            "k3s_version": spec.k3sVersion,
            "kubeconfig_path": spec.kubeconfigPath,
            "node_count": nodeNames(spec).count,
            "server_count": spec.serverCount,
            "node_ports": TerraformSpec.dockerNodePorts,
        ]
        if spec.target == .ssh {
            values["hosts"] = spec.hosts.map { host -> [String: Any] in
                var entry: [String: Any] = ["user": host.user, "host": host.host, "port": host.port]
                if let nodeIP = host.nodeIP { entry["node_ip"] = nodeIP }
                if let interface = host.flannelInterface { entry["flannel_iface"] = interface }
                if let key = host.hostKey { entry["host_key"] = key }
                return entry
            }
        }
        if let key = spec.sshKeyPath { values["ssh_key_path"] = key }
        if let knownHosts = spec.knownHostsPath { values["known_hosts_path"] = knownHosts }
        if let address = spec.apiAddress { values["api_address"] = address }
        if let address = spec.advertiseAddress { values["advertise_address"] = address }
        if let airgap = spec.airgapDirectory { values["airgap_dir"] = airgap }
        do {
            let data = try JSONSerialization.data(
                withJSONObject: values, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            return String(decoding: data, as: UTF8.self) + "\n"
        } catch {
            throw ShoalError(.io, "cannot encode terraform.tfvars.json", cause: "\(error)")
        }
    }
}
