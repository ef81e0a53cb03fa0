import Foundation
import ShoalSupport
import Testing

/// The README's multi-host recipe, as written, on three lab hosts: network namespaces joined by a bridge in a fourth
/// one, private addresses inside them only, each host with its own home directory, host name (a UTS namespace) and
/// /etc/hosts (`ip netns exec` mounts /etc/netns/NAME/hosts). `scp` is a stand-in that copies between the homes.
@Suite(.serialized) struct MultiHostTests {
    static let hosts = ["coordinator.lab", "agents.lab", "laptop.lab"]
    static let subnet = "10.231.7"

    /// The README block after the recipe marker, as (host, script) sections split at `# on HOST` lines.
    static func recipe() throws -> [(host: String, script: String)] {
        let readme = try String(contentsOfFile: Package.root + "/README.md", encoding: .utf8)
        guard let marker = readme.range(of: "<!-- multi-host recipe:"),
            let open = readme.range(of: "```sh\n", range: marker.upperBound..<readme.endIndex),
            let close = readme.range(of: "\n```", range: open.upperBound..<readme.endIndex)
        else { throw ShoalError(.invalidInput, "README.md has no multi-host recipe block") }
        var sections: [(host: String, script: String)] = []
        for line in readme[open.upperBound..<close.lowerBound].split(separator: "\n", omittingEmptySubsequences: false)
        {
            if line.hasPrefix("# on ") {
                let host = String(line.dropFirst(5).prefix { $0 != ":" && $0 != " " })
                sections.append((host, ""))
            } else if !sections.isEmpty {
                sections[sections.count - 1].script += line + "\n"
            }
        }
        return sections
    }

    static let scpStandIn = """
        #!/usr/bin/env bash
        # Test stand-in for scp between this test's lab hosts: HOST:PATH is PATH under that host's home.
        set -euo pipefail
        args=()
        for arg in "$@"; do
            case "$arg" in
                *.lab:*) host="${arg%%:*}"; path="${arg#*:}"; args+=("$LAB_ROOT/$host/${path:-.}") ;;
                *) args+=("$arg") ;;
            esac
        done
        exec cp "${args[@]}"

        """

    @Test(.timeLimit(.minutes(10)))
    func theReadmeRecipeRunsOnThreeHosts() async throws {
        if let reason = await networkNamespacesAvailable() {
            unavailable(reason)
            return
        }
        for tool in ["unshare", "nohup", "bash"] where ProcessRunner.locate(tool) == nil {
            unavailable("\(tool) is not installed")
            return
        }
        let sections = try Self.recipe()
        #expect(Set(sections.map(\.host)) == Set(Self.hosts), "the recipe's hosts: \(sections.map(\.host))")

        let suffix = uniqueSuffix()
        let root = NSTemporaryDirectory() + "shoal-lab-\(suffix)"
        let bin = root + "/bin"
        try SecureFile.createDirectory(bin, mode: 0o755)
        try FileManager.default.createSymbolicLink(atPath: bin + "/shoal", withDestinationPath: Package.shoal)
        try SecureFile.write(Self.scpStandIn, to: bin + "/scp", mode: 0o755)
        let namespaces = Dictionary(
            uniqueKeysWithValues: Self.hosts.enumerated().map { ($1, "shoal-lab-\(suffix)-\($0)") })
        let bridge = "shoal-lab-\(suffix)-sw"
        var failure: (any Error)?
        do {
            try await setUpNetwork(namespaces: namespaces, bridge: bridge, root: root)
            try await exercise(sections: sections, namespaces: namespaces, root: root, bin: bin)
        } catch {
            failure = error
        }
        for namespace in namespaces.values { await stopEverything(in: namespace) }
        for namespace in Array(namespaces.values) + [bridge] {
            try await run("ip", ["netns", "delete", namespace], timeout: .seconds(10), expectSuccess: false)
            try? FileManager.default.removeItem(atPath: "/etc/netns/\(namespace)")
        }
        rmdir("/etc/netns")  // only when empty: other namespaces' files stay
        try? FileManager.default.removeItem(atPath: root)
        if let failure { throw failure }
    }

    private func setUpNetwork(namespaces: [String: String], bridge: String, root: String) async throws {
        try await run("ip", ["netns", "add", bridge], timeout: .seconds(10))
        try await run("ip", ["-n", bridge, "link", "add", "br0", "type", "bridge"], timeout: .seconds(10))
        try await run("ip", ["-n", bridge, "link", "set", "br0", "up"], timeout: .seconds(10))
        var hostsFile = "127.0.0.1 localhost\n"
        for (index, host) in Self.hosts.enumerated() { hostsFile += "\(Self.subnet).\(index + 1) \(host)\n" }
        for (index, host) in Self.hosts.enumerated() {
            let namespace = namespaces[host]!
            try await run("ip", ["netns", "add", namespace], timeout: .seconds(10))
            try await run(
                "ip",
                [
                    "-n", namespace, "link", "add", "eth0", "type", "veth", "peer", "name", "port\(index)", "netns",
                    bridge,
                ],
                timeout: .seconds(10))
            try await run(
                "ip", ["-n", bridge, "link", "set", "port\(index)", "master", "br0", "up"], timeout: .seconds(10))
            try await run(
                "ip", ["-n", namespace, "addr", "add", "\(Self.subnet).\(index + 1)/24", "dev", "eth0"],
                timeout: .seconds(10))
            try await run("ip", ["-n", namespace, "link", "set", "eth0", "up"], timeout: .seconds(10))
            try await run("ip", ["-n", namespace, "link", "set", "lo", "up"], timeout: .seconds(10))
            try SecureFile.createDirectory("/etc/netns/\(namespace)", mode: 0o755)
            try SecureFile.write(hostsFile, to: "/etc/netns/\(namespace)/hosts")
            try SecureFile.createDirectory("\(root)/\(host)", mode: 0o700)
        }
    }

    /// Runs `script` on `host`: in its namespace, with its host name, home and PATH.
    private func onHost(
        _ host: String, _ script: String, namespaces: [String: String], root: String, bin: String,
        timeout: Duration = .seconds(60)
    ) async throws -> CommandResult {
        let environment = [
            "HOME": "\(root)/\(host)",
            "PATH": "\(bin):" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
            "LAB_ROOT": root, "SHOAL_KEY": "", "SHOAL_COORDINATOR_KEY": "",
        ]
        let wrapped = "hostname \(host) && cd \"$HOME\" && unset SHOAL_KEY SHOAL_COORDINATOR_KEY && set -e\n" + script
        return try await run(
            "ip", ["netns", "exec", namespaces[host]!, "unshare", "--uts", "bash", "-c", wrapped],
            environment: environment, timeout: timeout)
    }

    private func exercise(
        sections: [(host: String, script: String)], namespaces: [String: String], root: String, bin: String
    ) async throws {
        var last: CommandResult?
        for section in sections {
            let result = try await onHost(
                section.host, section.script, namespaces: namespaces, root: root, bin: bin, timeout: .seconds(240))
            guard result.succeeded else { return }
            last = result
        }
        let output = try #require(last).standardOutput

        // The workflow ran on the three hosts and scored 100 with validation on the laptop.
        #expect(output.contains("succeeded"), "\(output)")
        #expect(output.contains("Health: score 100/100"), "\(output)")
        let workflow = try #require(
            output.split(separator: "\n").first { $0.hasPrefix("workflow ") && $0.hasSuffix(" submitted") }
                .map { String($0.split(separator: " ")[1]) }, "a workflow id: \(output)")
        let validationLines = output.split(separator: "\n").filter { $0.contains(" ok    validate/") }
        #expect(!validationLines.isEmpty, "validation steps ran: \(output)")
        for line in validationLines {
            #expect(line.contains("laptop.lab"), "validation on the laptop: \(line)")
        }
        let client = "export SHOAL_KEY=~/.shoal/keys/alice.key SHOAL_COORDINATOR_KEY=~/coordinator.pub\n"
        let status = try await onHost(
            "laptop.lab", client + "shoal status \(workflow) --coordinator tcp://coordinator.lab:7401",
            namespaces: namespaces, root: root, bin: bin)
        #expect(status.standardOutput.contains("workflow \(workflow): succeeded"), "\(status.standardOutput)")
        for (step, agent) in [("plan", "planner-1"), ("provision", "infra-1"), ("monitoring", "monitoring-1")] {
            let line = status.standardOutput.split(separator: "\n").first { $0.hasPrefix("  \(step) ") }
            #expect(line?.contains(agent) == true, "\(step) on \(agent): \(status.standardOutput)")
        }
        let agents = try await onHost(
            "laptop.lab", client + "shoal agents --coordinator tcp://coordinator.lab:7401",
            namespaces: namespaces, root: root, bin: bin)
        for (id, host) in [
            ("planner-1", "agents.lab"), ("infra-1", "agents.lab"), ("argocd-1", "agents.lab"),
            ("monitoring-1", "agents.lab"), ("docs-1", "agents.lab"), ("validation-a", "laptop.lab"),
            ("validation-b", "laptop.lab"),
        ] {
            let line = agents.standardOutput.split(separator: "\n").first { $0.hasPrefix(id + " ") }
            #expect(line?.contains(host) == true, "\(id) on \(host): \(agents.standardOutput)")
        }

        // From the laptop: validate on the validation agents, a step's log, then destroy on the infra agent that
        // holds the Terraform state; afterwards every host sees the workflow destroyed.
        let coordinator = " --coordinator tcp://coordinator.lab:7401"
        let validate = try await onHost(
            "laptop.lab", client + "shoal validate \(workflow)" + coordinator, namespaces: namespaces, root: root,
            bin: bin, timeout: .seconds(120))
        #expect(validate.succeeded, "validate: \(validate.standardOutput)\n\(validate.standardError)")
        #expect(validate.standardOutput.contains("100/100"), "\(validate.standardOutput)")
        let logs = try await onHost(
            "laptop.lab", client + "shoal logs \(workflow) provision" + coordinator, namespaces: namespaces,
            root: root, bin: bin)
        #expect(logs.succeeded && !logs.standardOutput.isEmpty, "logs: \(logs.standardOutput)\n\(logs.standardError)")
        let destroy = try await onHost(
            "laptop.lab", client + "shoal destroy \(workflow)" + coordinator, namespaces: namespaces, root: root,
            bin: bin, timeout: .seconds(120))
        #expect(destroy.succeeded, "destroy: \(destroy.standardOutput)\n\(destroy.standardError)")
        // agents.lab asks with a key of its own (any allowed key may read).
        let agentsClient = "export SHOAL_KEY=~/.shoal/keys/docs-1.key SHOAL_COORDINATOR_KEY=~/coordinator.pub\n"
        for (host, keys) in [("laptop.lab", client), ("agents.lab", agentsClient)] {
            let after = try await onHost(
                host, keys + "shoal list" + coordinator, namespaces: namespaces, root: root, bin: bin)
            let line = after.standardOutput.split(separator: "\n").first { $0.hasPrefix(workflow + " ") }
            #expect(line?.contains("destroyed") == true, "list on \(host): \(after.standardOutput)")
        }

        // No host hands another one its loopback as an address (a URL or host:port): not on screen, not in any
        // file of the three hosts (logs, journal, output tree, work and state directories).
        for (text, what) in [
            (output, "create"), (status.standardOutput, "status"), (validate.standardOutput, "validate"),
            (destroy.standardOutput, "destroy"),
        ] {
            #expect(!Self.namesLoopback(Data(text.utf8)), "\(what) names 127.0.0.1: \(text)")
        }
        var offending: [String] = []
        for host in Self.hosts {
            for (path, data) in filesUnder("\(root)/\(host)") where Self.namesLoopback(data) {
                offending.append(String(path.dropFirst(root.count + 1)))
            }
        }
        #expect(offending.isEmpty, "files that name 127.0.0.1 as an address: \(offending.sorted())")
    }

    /// Whether `data` names 127.0.0.1 as an address: in a URL (`//127.0.0.1`) or with a port (`127.0.0.1:`).
    static func namesLoopback(_ data: Data) -> Bool {
        data.range(of: Data("//127.0.0.1".utf8)) != nil || data.range(of: Data("127.0.0.1:".utf8)) != nil
    }

    /// Every regular file under `directory` (logs, journal, work directories, keys), with its bytes.
    private func filesUnder(_ directory: String) -> [(String, Data)] {
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return [] }
        var files: [(String, Data)] = []
        while let relative = enumerator.nextObject() as? String {
            let path = "\(directory)/\(relative)"
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                let data = FileManager.default.contents(atPath: path)
            else { continue }
            files.append((path, data))
        }
        return files
    }

    /// SIGTERM to every process of the namespace, SIGKILL to those left after ten seconds.
    private func stopEverything(in namespace: String) async {
        func pids() async -> [Int32] {
            let listed = try? await runDetached("ip", ["netns", "pids", namespace], timeout: .seconds(10))
            return (listed?.standardOutput ?? "").split(separator: "\n").compactMap { Int32($0) }
        }
        for pid in await pids() { kill(pid, SIGTERM) }
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, !(await pids()).isEmpty {
            try? await Task.sleep(for: .milliseconds(100))
        }
        for pid in await pids() { kill(pid, SIGKILL) }
    }
}
