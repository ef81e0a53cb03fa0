import Foundation
import ShoalSupport
import Testing

/// compose/compose.yaml as shipped, on podman with podman-compose: the image is built from Debian packages and the
/// shoal binary of this build (scripts/build-image.sh), the containers share one network namespace this test makes
/// (an override file sets `network_mode` and maps the service names to its loopback; no engine network is made).
@Suite(.serialized) struct ComposeTests {
    static let services = [
        "keys", "coordinator", "planner", "infra", "argocd", "monitoring", "docs", "validation", "cli",
    ]

    /// Why the test cannot run here, or nil.
    static func missingTools() async -> String? {
        for tool in ["podman", "podman-compose", "runc"] where ProcessRunner.locate(tool) == nil {
            return "\(tool) is not installed"
        }
        if let reason = await networkNamespacesAvailable() { return reason }
        return nil
    }

    /// Why podman cannot run a container here, or nil.
    static func engineUnavailable(environment: [String: String]) async -> String? {
        let result = try? await runDetached(
            "podman", ["run", "--rm", "--network", "none", "--rootfs", "/:O", "/bin/true"], environment: environment,
            timeout: .seconds(60))
        guard let result, result.succeeded else {
            return "podman cannot start a container: \(result?.standardErrorTail(lines: 3) ?? "podman failed")"
        }
        return nil
    }

    /// podman's settings for this machine: runc (crun refuses cgroup v1 layouts like this kernel's) and limits the
    /// kernel lets a container have. An operator's CONTAINERS_CONF wins.
    static func containersConf(in directory: String) throws -> String {
        if let given = ProcessInfo.processInfo.environment["CONTAINERS_CONF"], !given.isEmpty { return given }
        let path = directory + "/containers.conf"
        try SecureFile.write(
            """
            [containers]
            default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
            [engine]
            runtime = "runc"

            """, to: path)
        return path
    }

    static func override(namespace: String) -> String {
        var text =
            "# Test only: every container in the network namespace \(namespace), service names on its loopback.\n"
        text += "services:\n"
        for service in services {
            text += "  \(service):\n"
            text += "    network_mode: \"ns:/run/netns/\(namespace)\"\n"
            text += "    extra_hosts: [\"coordinator:127.0.0.1\", \"monitoring:127.0.0.1\"]\n"
            if service == "coordinator" || service == "monitoring" { text += "    ports: !reset []\n" }
        }
        return text
    }

    @Test(.timeLimit(.minutes(25)))
    func composeRunsAWholeWorkflowWithTwoValidationReplicas() async throws {
        if let reason = await Self.missingTools() {
            unavailable(reason)
            return
        }
        let suffix = uniqueSuffix()
        let directory = NSTemporaryDirectory() + "shoal-compose-\(suffix)"
        try SecureFile.createDirectory(directory, mode: 0o700)
        let namespace = "shoal-ct-\(suffix)"
        let project = "shoalct\(suffix)"
        let image = "localhost/shoal-test-\(suffix):latest"
        let environment = ["CONTAINERS_CONF": try Self.containersConf(in: directory), "SHOAL_IMAGE": image]
        if let reason = await Self.engineUnavailable(environment: environment) {
            unavailable(reason)
            try? FileManager.default.removeItem(atPath: directory)
            return
        }
        let override = directory + "/override.yaml"
        try SecureFile.write(Self.override(namespace: namespace), to: override)
        let compose = [
            "--in-pod", "false", "-p", project, "-f", Package.root + "/compose/compose.yaml", "-f", override,
        ]

        // The image: a cached debootstrap base (minutes the first time) plus this build's binary.
        let built = try await run(
            Package.root + "/scripts/build-image.sh",
            ["--engine", "podman", "--binary", Package.shoal, "--tag", image], environment: environment,
            timeout: .seconds(900))
        guard built.succeeded else { return }
        #expect(built.standardOutput.contains("shoal "), "the image runs shoal: \(built.standardOutput)")

        try await run("ip", ["netns", "add", namespace], timeout: .seconds(10))
        try await run("ip", ["-n", namespace, "link", "set", "lo", "up"], timeout: .seconds(10))
        var failure: (any Error)?
        do {
            try await exercise(compose: compose, project: project, environment: environment)
        } catch {
            failure = error
        }
        // Whatever happened: the containers, volumes, image and namespace go.
        let down = try await run(
            "podman-compose", compose + ["down", "-v", "-t", "5"], environment: environment, timeout: .seconds(180),
            expectSuccess: false)
        if !down.succeeded { print("podman-compose down: \(down.standardErrorTail())") }
        // `down` does not know every scaled replica: remove what carries the project's label.
        let leftovers = try await run(
            "podman", ["ps", "-a", "-q", "--filter", "label=com.docker.compose.project=\(project)"],
            environment: environment, timeout: .seconds(30), expectSuccess: false)
        let ids = leftovers.standardOutput.split(separator: "\n").map(String.init)
        if !ids.isEmpty {
            try await run(
                "podman", ["rm", "-f", "-t", "2", "--depend"] + ids, environment: environment, expectSuccess: false)
        }
        let volumes = try await run(
            "podman", ["volume", "ls", "-q", "--filter", "label=com.docker.compose.project=\(project)"],
            environment: environment, timeout: .seconds(30), expectSuccess: false)
        let volumeNames = volumes.standardOutput.split(separator: "\n").map(String.init)
        if !volumeNames.isEmpty {
            try await run(
                "podman", ["volume", "rm", "-f"] + volumeNames, environment: environment, expectSuccess: false)
        }
        try await run("podman", ["rmi", "-f", image], environment: environment, expectSuccess: false)
        try await run("ip", ["netns", "delete", namespace], timeout: .seconds(10), expectSuccess: false)
        try? FileManager.default.removeItem(atPath: directory)
        if let failure { throw failure }
    }

    private func exercise(compose: [String], project: String, environment: [String: String]) async throws {
        let up = try await run(
            "podman-compose", compose + ["up", "-d", "--scale", "validation=2"], environment: environment,
            timeout: .seconds(300))
        guard up.succeeded else { return }

        // The containers of the project, by service.
        let listed = try await run(
            "podman",
            [
                "ps", "-a", "--filter", "label=com.docker.compose.project=\(project)", "--format",
                "{{.Names}} {{index .Labels \"com.docker.compose.service\"}}",
            ], environment: environment, timeout: .seconds(30))
        var containers: [String: [String]] = [:]
        for line in listed.standardOutput.split(separator: "\n") {
            let parts = line.split(separator: " ").map(String.init)
            if parts.count == 2 { containers[parts[1], default: []].append(parts[0]) }
        }
        #expect(containers["validation"]?.count == 2, "two validation replicas: \(listed.standardOutput)")
        let coordinator = try #require(containers["coordinator"]?.first, "a coordinator: \(listed.standardOutput)")

        // The init service made the keys: readable by the container user only.
        let keys = try await run(
            "podman", ["exec", coordinator, "/bin/ls", "-ln", "/var/lib/shoal/keys", "/var/lib/shoal/keys/allow"],
            environment: environment, timeout: .seconds(30))
        for name in ["coordinator", "planner", "infra", "validation", "cli"] {
            let line = keys.standardOutput.split(separator: "\n").first { $0.hasSuffix(" \(name).key") }
            #expect(line?.hasPrefix("-rw------- 1 10001 10001") == true, "\(name).key: \(keys.standardOutput)")
        }
        let allowList = try await run(
            "podman", ["exec", coordinator, "/bin/ls", "/var/lib/shoal/keys/allow"], environment: environment,
            timeout: .seconds(30))
        #expect(
            Set(allowList.standardOutput.split(separator: "\n").map(String.init))
                == Set([
                    "planner.pub", "infra.pub", "argocd.pub", "monitoring.pub", "docs.pub", "validation.pub",
                    "cli.pub",
                ]), "the allow-list holds the keys the init service made, but the coordinator's")

        // Every agent registers: seven, the two validation replicas with ids of their own.
        let agentsCommand = [
            "exec", coordinator, "/usr/local/bin/shoal", "agents", "--coordinator", "tcp://127.0.0.1:7401", "--key",
            "/var/lib/shoal/keys/cli.key",
        ]
        let agents = try await poll(until: .now + .seconds(120)) { () -> String? in
            let result = try await runDetached(
                "podman", agentsCommand, environment: environment, timeout: .seconds(20))
            let lines = result.standardOutput.split(separator: "\n").dropFirst()
            return result.succeeded && lines.count >= 7 ? result.standardOutput : nil
        }
        let table = try #require(agents, "seven agents registered within two minutes")
        let validationIDs = Set(
            table.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
                .filter { $0.hasPrefix("validation-") })
        #expect(validationIDs.count == 2, "two validation agents with distinct ids: \(table)")
        for id in ["planner-1", "infra-1", "argocd-1", "monitoring-1", "docs-1"] {
            #expect(table.contains(id), "\(id) registered: \(table)")
        }

        // Healthchecks, as the engine runs them.
        for (service, names) in containers where service != "keys" && service != "cli" {
            for name in names {
                let health = try await poll(until: .now + .seconds(60), every: .seconds(2)) { () -> CommandResult? in
                    let result = try await runDetached(
                        "podman", ["healthcheck", "run", name], environment: environment, timeout: .seconds(30))
                    return result.succeeded ? result : nil
                }
                #expect(health != nil, "the healthcheck of \(name) passes")
            }
        }

        // A whole demo workflow from the cli service.
        let create = try await run(
            "podman-compose",
            compose + [
                "--profile", "cli", "run", "-T", "--rm", "cli", "create", "-n", "1", "--coordinator",
                "tcp://coordinator:7401",
            ],
            environment: environment, timeout: .seconds(300))
        #expect(create.standardOutput.contains("succeeded"), "\(create.standardOutput)")
        #expect(
            create.standardOutput.contains("Health: score 100/100"), "validation scores 100: \(create.standardOutput)")
        for id in validationIDs {
            #expect(create.standardOutput.contains("ok    validate/"), "validation steps ran")
            #expect(create.standardOutput.contains(id), "the replica \(id) took steps: \(create.standardOutput)")
        }
        let workflow = try #require(
            create.standardOutput.split(separator: "\n").first {
                $0.hasPrefix("workflow ") && $0.hasSuffix(" submitted")
            }
            .map { String($0.split(separator: " ")[1]) }, "a workflow id: \(create.standardOutput)")
        let status = try await run(
            "podman-compose",
            compose + [
                "--profile", "cli", "run", "--rm", "cli", "status", workflow, "--coordinator", "tcp://coordinator:7401",
            ],
            environment: environment, timeout: .seconds(120))
        #expect(status.standardOutput.contains("succeeded"), "\(status.standardOutput)")

        // The journal and the Terraform files live on volumes owned by the container user.
        let journal = try await run(
            "podman", ["exec", coordinator, "/bin/ls", "-ln", "/var/lib/shoal/journal"], environment: environment,
            timeout: .seconds(30))
        #expect(journal.standardOutput.contains("10001 10001"), "\(journal.standardOutput)")
        #expect(journal.standardOutput.contains("journal.sqlite"), "\(journal.standardOutput)")
        let infra = try #require(containers["infra"]?.first)
        let work = try await run(
            "podman", ["exec", infra, "/usr/bin/find", "/var/lib/shoal/work", "-name", "main.tf"],
            environment: environment, timeout: .seconds(30))
        #expect(
            work.standardOutput.contains("/\(workflow)/"), "Terraform files in the work volume: \(work.standardOutput)")
        let mounts = try await run(
            "podman", ["inspect", "--format", "{{range .Mounts}}{{.Name}}={{.Destination}} {{end}}", infra],
            environment: environment, timeout: .seconds(30))
        #expect(mounts.standardOutput.contains("\(project)_infra-work=/var/lib/shoal/work"), "\(mounts.standardOutput)")

        // No engine network: only the namespace this test made.
        let networks = try await run(
            "podman", ["network", "ls", "--format", "{{.Name}}"], environment: environment, timeout: .seconds(30))
        #expect(!networks.standardOutput.contains(project), "no network for the project: \(networks.standardOutput)")
    }
}
