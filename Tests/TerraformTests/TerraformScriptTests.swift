import Foundation
import ShoalSupport
import Testing

@testable import Terraform

/// The shell scripts the configuration runs on the nodes and beside terraform, as Terraform renders them
/// (`terraform console`), run by `sh` against stand-ins that record what they were asked: the firewall
/// rules, the discovery of the address the nodes join at, and the reachability check before a join.
@Suite struct TerraformScriptTests {
    let runner = TerraformRunner(commandTimeout: .seconds(120))

    /// The value of `local.NAME` for an ssh spec, read with `terraform console`.
    func rendered(_ name: String, in directory: TemporaryDirectory, servers: Int = 1) async throws -> String {
        let spec = TerraformSpec(
            clusterName: "lab", target: .ssh, nodes: servers == 1 ? 2 : 3, highAvailability: servers > 1,
            hosts: (1...(servers == 1 ? 2 : 3)).map { SSHHost(user: "ubuntu", host: "node\($0).lab") },
            kubeconfigPath: "\(directory.path)/kubeconfig")
        try TerraformRenderer.write(spec, to: "\(directory.path)/tf")
        let initialized = try await runner.initialize(directory: "\(directory.path)/tf")
        try #require(initialized.succeeded, "init: \(initialized.standardErrorTail())")
        let console = try await ProcessRunner(environment: ["CHECKPOINT_DISABLE": "1"]).run(
            "terraform", ["console", "-no-color"], workingDirectory: "\(directory.path)/tf",
            input: Data("base64encode(local.\(name))\n".utf8), timeout: .seconds(60))
        try #require(console.succeeded, "console: \(console.standardErrorTail())")
        let encoded = console.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            .trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        let data = try #require(Data(base64Encoded: encoded), "console printed \(console.standardOutput)")
        return String(decoding: data, as: UTF8.self)
    }

    /// Writes `name` into `bin` as a stand-in that logs "name args" to `calls` and runs `body`.
    func standIn(_ name: String, in bin: String, body: String = "exit 0") throws {
        try SecureFile.write(
            "#!/bin/sh\nprintf '%s\\n' \"\(name) $*\" >> \"$CALLS\"\n\(body)\n", to: "\(bin)/\(name)", mode: 0o755)
    }

    func sh(_ script: String, bin: String, calls: String, environment: [String: String] = [:]) async throws
        -> ProcessResult
    {
        try await ProcessRunner().run(
            "/bin/sh", ["-c", script], environment: ["PATH": "\(bin):/usr/bin:/bin", "CALLS": calls].merging(
                environment, uniquingKeysWith: { $1 }), timeout: .seconds(60))
    }

    func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test func firewallRulesAreOpenedWhereUfwOrFirewalldIsActive() async throws {
        guard terraformAvailable() else { return }
        let directory = try TemporaryDirectory()
        let script = try await rendered("firewall_script", in: directory)
        let bin = "\(directory.path)/bin"
        let calls = "\(directory.path)/calls"
        try standIn("ufw", in: bin, body: #"if [ "$1" = status ]; then echo "Status: active"; fi"#)
        try standIn("firewall-cmd", in: bin, body: #"if [ "$1" = --state ]; then echo running; fi"#)

        let server = try await sh("SUDO=\"\"\n\(script)\nopen_k3s_ports server true", bin: bin, calls: calls)
        try #require(server.succeeded, "\(server.standardError)")
        let opened = lines(calls)
        for port in ["6443", "10250", "2379:2380", "30080", "30090", "30300", "30466"] {
            #expect(opened.contains("ufw allow \(port)/tcp"), "ufw: \(port) not opened")
            let firewalld = "firewall-cmd --permanent --add-port=\(port.replacingOccurrences(of: ":", with: "-"))/tcp"
            #expect(opened.contains(firewalld), "firewalld: \(port) not opened")
        }
        #expect(opened.contains("ufw allow 8472/udp"))
        #expect(opened.contains("firewall-cmd --permanent --add-port=8472/udp"))
        #expect(opened.contains("ufw allow from 10.42.0.0/16 to any"))
        #expect(opened.contains("firewall-cmd --permanent --zone=trusted --add-source=10.43.0.0/16"))
        #expect(opened.last == "firewall-cmd --reload")
        #expect(server.standardOutput.contains("opened the K3s ports in ufw"))

        // An agent opens neither the API nor etcd.
        try? FileManager.default.removeItem(atPath: calls)
        let agent = try await sh("SUDO=\"\"\n\(script)\nopen_k3s_ports agent true", bin: bin, calls: calls)
        try #require(agent.succeeded)
        #expect(!lines(calls).contains { $0.contains("6443") || $0.contains("2379") })
        #expect(lines(calls).contains("ufw allow 10250/tcp"))

        // Inactive ufw and stopped firewalld are left alone.
        try? FileManager.default.removeItem(atPath: calls)
        try standIn("ufw", in: bin, body: #"if [ "$1" = status ]; then echo "Status: inactive"; fi"#)
        try standIn("firewall-cmd", in: bin, body: #"if [ "$1" = --state ]; then echo "not running"; exit 252; fi"#)
        let idle = try await sh("SUDO=\"\"\n\(script)\nopen_k3s_ports server false", bin: bin, calls: calls)
        try #require(idle.succeeded)
        #expect(lines(calls) == ["ufw status", "firewall-cmd --state"])
    }

    /// Without --api-address the join address is the InternalIP the first server registered with, read over ssh
    /// with the pinned known_hosts; the remote half runs `k3s kubectl` on the server.
    @Test func theJoinAddressIsTheFirstServersInternalIP() async throws {
        guard terraformAvailable() else { return }
        let directory = try TemporaryDirectory()
        let script = try await rendered("ssh_join_address_script", in: directory)
        let bin = "\(directory.path)/bin"
        let calls = "\(directory.path)/calls"
        // The stand-in ssh runs the remote script it is given on stdin ("sh -s NAME"), as the host would.
        try standIn("ssh", in: bin, body: #"for last in "$@"; do :; done; sh -s "$last""#)
        try standIn("k3s", in: bin, body: #"echo "10.20.0.11 fd00::11""#)
        try standIn("sudo", in: bin, body: #"[ "$1" = -n ] && shift; exec "$@""#)
        let file = "\(directory.path)/join-address"
        var environment = [
            "ADDRESS_FILE": file, "API_ADDRESS": "", "NODE_NAME": "lab-server-0", "SSH_USER": "ubuntu",
            "SSH_HOST": "node1.lab", "SSH_PORT": "2222", "SSH_KEY": "/keys/id", "KNOWN_HOSTS": "/w/known_hosts",
        ]
        let found = try await sh(script, bin: bin, calls: calls, environment: environment)
        try #require(found.succeeded, "\(found.standardError)")
        #expect(lines(file) == ["10.20.0.11"])
        let ssh = try #require(lines(calls).first { $0.hasPrefix("ssh ") })
        #expect(ssh.contains("-p 2222") && ssh.contains("-i /keys/id"))
        #expect(ssh.contains("StrictHostKeyChecking=yes") && ssh.contains("UserKnownHostsFile=/w/known_hosts"))
        #expect(ssh.hasSuffix("ubuntu@node1.lab sh -s lab-server-0"))
        let k3s = try #require(lines(calls).first { $0.hasPrefix("k3s ") })
        #expect(k3s.hasPrefix("k3s kubectl get node lab-server-0 -o jsonpath="))
        #expect(k3s.contains(#"?(@.type=="InternalIP")"#))

        // --api-address wins, and nothing is asked over ssh.
        try? FileManager.default.removeItem(atPath: calls)
        environment["API_ADDRESS"] = "192.168.50.10"
        let given = try await sh(script, bin: bin, calls: calls, environment: environment)
        try #require(given.succeeded)
        #expect(lines(file) == ["192.168.50.10"])
        #expect(lines(calls).isEmpty)

        // An answer that is no address fails, pointing to --api-address.
        environment["API_ADDRESS"] = ""
        try standIn("k3s", in: bin, body: #"echo 'Error from server (NotFound): nodes "x" not found' >&2"#)
        let failed = try await sh(script, bin: bin, calls: calls, environment: environment)
        #expect(!failed.succeeded)
        #expect(failed.standardError.contains("could not read the InternalIP of lab-server-0 from node1.lab"))
        #expect(failed.standardError.contains("--api-address"))
    }

    /// A joining node checks that it reaches the first server's API before it installs K3s.
    @Test func aJoiningNodeThatCannotReachTheFirstServerStopsWithItsName() async throws {
        guard terraformAvailable() else { return }
        let directory = try TemporaryDirectory()
        let script = try await rendered("ssh_join_check_script", in: directory)
        let bin = "\(directory.path)/bin"
        let calls = "\(directory.path)/calls"
        let stage = "\(directory.path)/stage"
        try SecureFile.write("fd00::11\n", to: "\(stage)/join-address")
        try standIn("curl", in: bin)
        let reached = try await sh(
            "set -eu\nstage='\(stage)'\n\(script)\necho \"$url\"", bin: bin, calls: calls)
        try #require(reached.succeeded, "\(reached.standardError)")
        #expect(reached.standardOutput == "https://[fd00::11]:6443\n")
        #expect(lines(calls) == ["curl -ks --max-time 10 -o /dev/null https://[fd00::11]:6443/ping"])

        try SecureFile.write("10.20.0.11\n", to: "\(stage)/join-address")
        try standIn("curl", in: bin, body: "exit 28")
        let unreachable = try await sh(
            "set -eu\nstage='\(stage)'\n\(script)\necho installed", bin: bin, calls: calls)
        #expect(!unreachable.succeeded)
        #expect(!unreachable.standardOutput.contains("installed"))
        #expect(unreachable.standardError.contains("cannot reach the first server at https://10.20.0.11:6443"))
        #expect(unreachable.standardError.contains("--api-address"))
    }
}
