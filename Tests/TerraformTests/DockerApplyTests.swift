import Foundation
import ShoalSupport
import Testing

@testable import Terraform

/// Runs `terraform apply` and `destroy` on the docker target against a stand-in `docker` on
/// PATH that records its arguments and keeps containers and networks as files. This exercises
/// the provisioner scripts themselves: argument building, how the token travels, the kubeconfig
/// copy and its mode, and the clean-up on destroy.
@Suite struct DockerApplyTests {
    static let fakeKubeconfig = """
        apiVersion: v1
        clusters:
        - cluster:
            server: https://127.0.0.1:6443
          name: default
        kind: Config

        """

    /// The stand-in: state lives in $FAKE_DOCKER_STATE; every call is appended to `calls`, one
    /// line per call with arguments separated by US (0x1f).
    static let fakeDocker = #"""
        #!/bin/sh
        state="$FAKE_DOCKER_STATE"
        # One write per call: provisioners run in parallel and must not interleave their lines.
        line=""
        for a in "$@"; do line="$line$a$(printf '\037')"; done
        printf '%s\n' "$line" >> "$state/calls"
        for last in "$@"; do :; done
        case "$1" in
        network)
          case "$2" in
          inspect) [ -f "$state/network-$last" ] ;;
          create) touch "$state/network-$last" ;;
          rm) rm "$state/network-$last" ;;
          esac
          exit $? ;;
        container)
          [ -f "$state/container-$last" ] || exit 1
          if [ "$3" = --format ]; then cat "$state/container-$last"; fi
          exit 0 ;;
        run)
          name=""; label=""; previous=""
          for a in "$@"; do
            case "$previous" in
            --name) name="$a" ;;
            --label) label="${a#io.shoal.cluster=}" ;;
            esac
            previous="$a"
          done
          echo "$label" > "$state/container-$name"
          if [ -n "${K3S_TOKEN:-}" ]; then printf '%s' "$K3S_TOKEN" > "$state/token-$name"; fi
          if [ "$name" = "${FAKE_DOCKER_FAIL_RUN:-}" ]; then echo "docker: started, then failed" >&2; exit 125; fi
          echo 0123456789abcdef ;;
        exec)
          [ -f "$state/container-$2" ] || exit 1
          if [ "$3" = cat ]; then cat "$state/kubeconfig"; fi ;;
        rm)
          rm "$state/container-$last" ;;
        esac
        """#

    @Test func applyStartsTheContainersAndDestroyRemovesThem() async throws {
        guard terraformAvailable() else { return }
        let work = try TemporaryDirectory()
        let bin = "\(work.path)/bin"
        let state = "\(work.path)/docker-state"
        let directory = "\(work.path)/terraform"
        let kubeconfig = "\(work.path)/out/kubeconfigs/demo/kubeconfig"
        try SecureFile.write(Self.fakeDocker, to: "\(bin)/docker", mode: 0o755)
        try SecureFile.write(Self.fakeKubeconfig, to: "\(state)/kubeconfig")

        let spec = TerraformSpec(
            clusterName: "demo", target: .docker, nodes: 4, highAvailability: true, kubeconfigPath: kubeconfig)
        try TerraformRenderer.write(spec, to: directory)
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let runner = TerraformRunner(
            processRunner: ProcessRunner(environment: ["PATH": "\(bin):\(path)", "FAKE_DOCKER_STATE": state]),
            commandTimeout: .seconds(120))
        let token = TerraformRunner.generateToken()

        let initialized = try await runner.initialize(directory: directory)
        try #require(initialized.succeeded, "init: \(initialized.standardErrorTail())")
        let (plan, _) = try await runner.plan(directory: directory, token: token)
        try #require(plan.succeeded, "plan: \(plan.standardErrorTail(lines: 20))")
        let applied = try await runner.apply(directory: directory, token: token)
        try #require(applied.succeeded, "apply: \(applied.standardOutput)\n\(applied.standardErrorTail(lines: 20))")
        #expect(!applied.standardOutput.contains(token) && !applied.standardError.contains(token))

        // The kubeconfig is the server's, private to the operator.
        #expect(FileManager.default.contents(atPath: kubeconfig) == Data(Self.fakeKubeconfig.utf8))
        #expect(SecureFile.mode(of: kubeconfig) == 0o600)

        // Four containers; the token reached each through the environment only.
        let runs = try calls(state).filter { $0.first == "run" }
        #expect(runs.count == 4)
        for run in runs {
            #expect(!run.contains { $0.contains(token) }, "the token is on a docker command line")
            #expect(zip(run, run.dropFirst()).contains { $0 == "--env" && $1 == "K3S_TOKEN" })
            #expect(run.contains("rancher/k3s:v1.36.3-k3s1"))
        }
        for name in TerraformRenderer.nodeNames(spec) {
            #expect(FileManager.default.contents(atPath: "\(state)/token-\(name)") == Data(token.utf8))
        }
        let first = try #require(runs.first { $0.contains("demo-server-0") })
        let published = zip(first, first.dropFirst()).filter { $0.0 == "--publish" }.map(\.1)
        #expect(
            published.sorted() == ["127.0.0.1:30080:30080", "127.0.0.1:30090:30090", "127.0.0.1:30300:30300",
                "127.0.0.1:30466:30466", "127.0.0.1:6443:6443"])
        #expect(first.contains("--cluster-init"))
        for joining in runs where !joining.contains("demo-server-0") {
            #expect(!joining.contains("--publish") && !joining.contains("--cluster-init"))
            let server = zip(joining, joining.dropFirst()).first { $0.0 == "--server" }?.1
            #expect(server == "https://demo-server-0:6443")
        }
        #expect(runs.filter { $0.contains("agent") }.count == 1)

        // Neither the state nor any other file holds the token.
        for file in allFiles(under: directory) {
            #expect(!file.data.contains(token), "the token is written in \(file.path)")
        }

        let destroyed = try await runner.destroy(directory: directory, token: token)
        try #require(destroyed.succeeded, "destroy: \(destroyed.standardErrorTail(lines: 20))")
        let left = try FileManager.default.contentsOfDirectory(atPath: state)
            .filter { $0.hasPrefix("container-") || $0.hasPrefix("network-") }
        #expect(left.isEmpty, "left behind: \(left)")
        #expect(!FileManager.default.fileExists(atPath: kubeconfig))
    }

    /// With an advertised address, the API and the NodePorts are published there (not on 127.0.0.1), the servers
    /// carry it as a TLS SAN, and the kubeconfig names it: other hosts can use both. The address is from the
    /// documentation range and nothing connects to it: the docker here is the stand-in.
    @Test func anAdvertisedAddressIsWherePortsArePublishedAndWhatTheKubeconfigNames() async throws {
        guard terraformAvailable() else { return }
        guard ProcessRunner.locate("kubectl") != nil else {
            if ProcessInfo.processInfo.environment["CI"] != nil {
                Issue.record("kubectl is required when CI is set (it rewrites the kubeconfig's server)")
            } else {
                print("SKIPPED \(#function): kubectl is not installed")
            }
            return
        }
        let work = try TemporaryDirectory()
        let bin = "\(work.path)/bin"
        let state = "\(work.path)/docker-state"
        let directory = "\(work.path)/terraform"
        let kubeconfig = "\(work.path)/kubeconfig"
        try SecureFile.write(Self.fakeDocker, to: "\(bin)/docker", mode: 0o755)
        try SecureFile.write(Self.fakeKubeconfig, to: "\(state)/kubeconfig")
        let spec = TerraformSpec(
            clusterName: "demo", target: .docker, nodes: 2, kubeconfigPath: kubeconfig, advertiseAddress: "192.0.2.10")
        try TerraformRenderer.write(spec, to: directory)
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let runner = TerraformRunner(
            processRunner: ProcessRunner(environment: ["PATH": "\(bin):\(path)", "FAKE_DOCKER_STATE": state]),
            commandTimeout: .seconds(120))
        _ = try await runner.initialize(directory: directory)
        let applied = try await runner.apply(directory: directory, token: TerraformRunner.generateToken())
        try #require(applied.succeeded, "apply: \(applied.standardOutput)\n\(applied.standardErrorTail(lines: 20))")

        let runs = try calls(state).filter { $0.first == "run" }
        let first = try #require(runs.first { $0.contains("demo-server-0") })
        let published = zip(first, first.dropFirst()).filter { $0.0 == "--publish" }.map(\.1)
        #expect(
            published.sorted() == ["192.0.2.10:30080:30080", "192.0.2.10:30090:30090", "192.0.2.10:30300:30300",
                "192.0.2.10:30466:30466", "192.0.2.10:6443:6443"])
        let sans = zip(first, first.dropFirst()).filter { $0.0 == "--tls-san" }.map(\.1)
        #expect(sans == ["127.0.0.1", "192.0.2.10"])
        let agent = try #require(runs.first { $0.contains("demo-agent-1") })
        #expect(!agent.contains("--publish") && !agent.contains("--tls-san"))

        let written = try String(contentsOfFile: kubeconfig, encoding: .utf8)
        #expect(written.contains("server: https://192.0.2.10:6443"))
        #expect(!written.contains("127.0.0.1"))
        #expect(SecureFile.mode(of: kubeconfig) == 0o600)
        let output = try await ProcessRunner().run(
            "terraform", ["output", "-raw", "api_endpoint"], workingDirectory: directory,
            environment: ["CHECKPOINT_DISABLE": "1"])
        #expect(output.standardOutput == "https://192.0.2.10:6443")
    }

    /// A node whose start failed half way (its container exists, its resource is tainted) is removed by destroy
    /// all the same: Terraform skips a tainted resource's destroy provisioners, so removal is the job of the
    /// node's uninstall resource, which is never tainted.
    @Test func destroyRemovesTheContainerOfANodeWhoseStartFailed() async throws {
        guard terraformAvailable() else { return }
        let work = try TemporaryDirectory()
        let bin = "\(work.path)/bin"
        let state = "\(work.path)/docker-state"
        let directory = "\(work.path)/terraform"
        try SecureFile.write(Self.fakeDocker, to: "\(bin)/docker", mode: 0o755)
        try SecureFile.write(Self.fakeKubeconfig, to: "\(state)/kubeconfig")
        try TerraformRenderer.write(
            TerraformSpec(clusterName: "demo", target: .docker, nodes: 2, kubeconfigPath: "\(work.path)/kubeconfig"),
            to: directory)
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let runner = TerraformRunner(
            processRunner: ProcessRunner(
                environment: [
                    "PATH": "\(bin):\(path)", "FAKE_DOCKER_STATE": state, "FAKE_DOCKER_FAIL_RUN": "demo-agent-1",
                ]),
            commandTimeout: .seconds(120))
        _ = try await runner.initialize(directory: directory)
        let token = TerraformRunner.generateToken()
        let applied = try await runner.apply(directory: directory, token: token)
        #expect(!applied.succeeded)
        #expect(FileManager.default.fileExists(atPath: "\(state)/container-demo-agent-1"))

        let destroyed = try await runner.destroy(directory: directory, token: token)
        try #require(destroyed.succeeded, "destroy: \(destroyed.standardErrorTail(lines: 20))")
        let left = try FileManager.default.contentsOfDirectory(atPath: state)
            .filter { $0.hasPrefix("container-") || $0.hasPrefix("network-") }
        #expect(left.isEmpty, "left behind: \(left)")
    }

    /// A container of the same name that belongs to something else is not replaced.
    @Test func applyRefusesAForeignContainerOfTheSameName() async throws {
        guard terraformAvailable() else { return }
        let work = try TemporaryDirectory()
        let bin = "\(work.path)/bin"
        let state = "\(work.path)/docker-state"
        let directory = "\(work.path)/terraform"
        try SecureFile.write(Self.fakeDocker, to: "\(bin)/docker", mode: 0o755)
        try SecureFile.write(Self.fakeKubeconfig, to: "\(state)/kubeconfig")
        try SecureFile.write("someone-else\n", to: "\(state)/container-demo-server-0")

        try TerraformRenderer.write(
            TerraformSpec(clusterName: "demo", target: .docker, nodes: 1, kubeconfigPath: "\(work.path)/kubeconfig"),
            to: directory)
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let runner = TerraformRunner(
            processRunner: ProcessRunner(environment: ["PATH": "\(bin):\(path)", "FAKE_DOCKER_STATE": state]))
        _ = try await runner.initialize(directory: directory)
        let applied = try await runner.apply(directory: directory, token: TerraformRunner.generateToken())
        #expect(!applied.succeeded)
        #expect(try calls(state).contains { $0.first == "run" } == false)
        #expect(try String(contentsOfFile: "\(state)/container-demo-server-0", encoding: .utf8) == "someone-else\n")
    }

    private func calls(_ state: String) throws -> [[String]] {
        try String(contentsOfFile: "\(state)/calls", encoding: .utf8)
            .split(separator: "\n")
            .map { $0.split(separator: "\u{1F}", omittingEmptySubsequences: false).dropLast().map(String.init) }
    }
}
