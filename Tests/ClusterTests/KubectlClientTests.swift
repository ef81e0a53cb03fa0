import Foundation
import ShoalSupport
import Testing

@testable import Cluster

/// A stand-in `kubectl`: a script that answers each command with a file of its directory (recorded outputs),
/// logs its arguments and keeps what `apply` read from standard input.
struct KubectlReplay {
    let directory: String

    static let script = """
        #!/bin/sh
        # Test stand-in for kubectl: replays recorded output chosen by the command.
        dir=$(dirname "$0")
        printf '%s\\n' "$*" >> "$dir/calls.log"
        case "$*" in
          *" get --raw "*"/proxy/-/ready"*) key=raw-ready ;;
          *" get --raw "*"/proxy/api/v1/targets"*) key=raw-targets ;;
          *" get --raw "*"/proxy/api/health"*) key=raw-health ;;
          *" get --raw "*) key=raw-root ;;
          *" get nodes "*) key=nodes ;;
          *" get pods "*) key=pods ;;
          *" get services "*) key=services ;;
          *" get applications.argoproj.io "*) key=applications ;;
          *" get endpoints "*) key=endpoints ;;
          *" get secret "*) key=secret ;;
          *" apply "*) cat > "$dir/applied.yaml"; key=apply ;;
          *) key=unknown ;;
        esac
        if [ -f "$dir/$key.stderr" ]; then cat "$dir/$key.stderr" >&2; exit 1; fi
        if [ -f "$dir/$key.out" ]; then cat "$dir/$key.out"; exit 0; fi
        echo "error: the server doesn't have a resource type \\"$key\\"" >&2
        exit 1
        """

    init() throws {
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent("shoal-kubectl-\(UUID().uuidString)").path
        try SecureFile.write(Self.script, to: directory + "/kubectl", mode: 0o755)
    }

    var client: KubectlClient {
        KubectlClient(kubeconfig: directory + "/kubeconfig", executable: directory + "/kubectl", timeout: .seconds(10))
    }

    func answer(_ key: String, _ output: String) throws { try SecureFile.write(output, to: "\(directory)/\(key).out") }
    func fail(_ key: String, _ stderr: String) throws { try SecureFile.write(stderr, to: "\(directory)/\(key).stderr") }
    func calls() -> [String] {
        (try? String(contentsOfFile: directory + "/calls.log", encoding: .utf8))?.split(separator: "\n").map(
            String.init) ?? []
    }
    func delete() { try? FileManager.default.removeItem(atPath: directory) }

    /// A recorded YAML object as the JSON kubectl prints for it.
    static func json(fromYAML yaml: String) throws -> String {
        try #require(try ManifestParser.compose(yaml, source: "fixture").first).canonicalText
    }

    /// Objects wrapped in the `List` kubectl prints for `get -o json`.
    static func list(_ items: [String]) -> String {
        "{\"apiVersion\": \"v1\", \"items\": [" + items.joined(separator: ",")
            + "], \"kind\": \"List\", \"metadata\": {\"resourceVersion\": \"\"}}"
    }
}

/// Written for these tests in the shape kubectl prints (no recorded source holds them).
enum WrittenFixtures {
    static let kubeDNSEndpoints = """
        {"apiVersion": "v1", "kind": "Endpoints",
         "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
         "subsets": [{"addresses": [{"ip": "10.42.0.3", "nodeName": "k3s-server-1",
                                     "targetRef": {"kind": "Pod", "name": "coredns-ccb96694c-8xk2p", "namespace": "kube-system"}}],
                      "ports": [{"name": "dns-tcp", "port": 53, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}]}
        """
    static let emptyEndpoints = """
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kube-dns", "namespace": "kube-system"}}
        """
    static let monitoringServices = KubectlReplay.list([
        """
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "grafana", "namespace": "monitoring"},
         "spec": {"type": "NodePort", "selector": {"app.kubernetes.io/name": "grafana"},
                  "ports": [{"name": "http", "port": 3000, "protocol": "TCP", "targetPort": "http", "nodePort": 30300}]}}
        """,
        """
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "prometheus", "namespace": "monitoring"},
         "spec": {"type": "NodePort", "selector": {"app.kubernetes.io/name": "prometheus"},
                  "ports": [{"name": "http", "port": 9090, "protocol": "TCP", "targetPort": 9090, "nodePort": 30090}]}}
        """,
    ])
    /// kubectl's message when `get --raw` receives a 503.
    static let serviceUnavailable =
        "Error from server (ServiceUnavailable): the server is currently unable to handle the request\n"
}

@Suite struct KubectlClientTests {
    let expectation = HealthExpectation(nodes: 1)

    @Test func recordedK3sNodeIsReadyAndItsDiskPressureIsReported() async throws {
        let kubectl = try KubectlReplay()
        defer { kubectl.delete() }
        try kubectl.answer(
            "nodes", KubectlReplay.json(fromYAML: Fixtures.text("kubernetes/k3s-nodes-k3d-v1.20.6-diskpressure.yaml")))
        let nodes = try await kubectl.client.nodes()
        let node = try #require(nodes.first)
        #expect(nodes.count == 1)
        #expect(node.ready)
        #expect(node.kubeletVersion == "v1.20.6+k3s1")
        #expect(node.roles == ["control-plane", "master"])
        #expect(node.problems.contains("DiskPressure"))
        #expect(node.allocatableCPUMillicores > 0 && node.allocatableMemoryBytes > 0)
        let check = await HealthChecks.run(.nodes, client: kubectl.client, expectation: expectation)
        #expect(check.passed)
        #expect(check.details.first?.contains("DiskPressure") == true)
        let call = try #require(kubectl.calls().first)
        #expect(call.hasPrefix("--kubeconfig \(kubectl.directory)/kubeconfig --request-timeout 10s get nodes -o json"))
    }

    @Test func recordedNotReadyNodeFailsTheNodesCheck() async throws {
        let kubectl = try KubectlReplay()
        defer { kubectl.delete() }
        try kubectl.answer("nodes", Fixtures.text("kubernetes/kind-nodes-v1.36.1-unreachable-unschedulable.json"))
        let nodes = try await kubectl.client.nodes()
        #expect(nodes.map(\.ready) == [true, true, true, false])
        #expect(nodes.first { $0.name == "k8rs-worker" }?.unschedulable == true)
        #expect(nodes.last?.problems.first?.contains("NodeStatusUnknown") == true)
        #expect(nodes.first?.allocatableMemoryBytes == 24_277_416 * 1024)
        let check = await HealthChecks.run(.nodes, client: kubectl.client, expectation: HealthExpectation(nodes: 4))
        #expect(!check.passed)
        #expect(check.message == "3 of 4 planned nodes Ready (4 registered)")
        #expect(check.remedy?.contains("k8rs-worker3") == true)
    }

    @Test func recordedPodsGiveTheRightSystemPodVerdicts() async throws {
        let kubectl = try KubectlReplay()
        defer { kubectl.delete() }
        try kubectl.answer("pods", Fixtures.text("kubernetes/kind-pods-kube-system.json"))
        let pods = try await kubectl.client.pods(namespace: "kube-system")
        #expect(pods.count == 14)
        #expect(pods.filter { $0.name.hasPrefix("coredns-") }.allSatisfy { $0.healthy })
        // A kind cluster is not K3s: CoreDNS is there, the K3s add-ons are not.
        let check = await HealthChecks.run(.systemPods, client: kubectl.client, expectation: expectation)
        #expect(!check.passed)
        #expect(check.message.contains("metrics-server: no pod"))
        #expect(!check.message.contains("CoreDNS"))
        #expect(kubectl.calls().first?.contains("get pods --namespace kube-system -o json") == true)
    }

    @Test func crashLoopingAndUnschedulablePodsAreDecodedWithTheirReasons() async throws {
        let kubectl = try KubectlReplay()
        defer { kubectl.delete() }
        let crash = try Fixtures.text("kubernetes/kind-pod-crashloopbackoff.json")
        let pending = try Fixtures.text("kubernetes/kind-pod-pending-unschedulable.json")
        try kubectl.answer("pods", KubectlReplay.list([crash, pending]))
        try kubectl.answer("nodes", Fixtures.text("kubernetes/kind-nodes-v1.36.1-unreachable-unschedulable.json"))
        let pods = try await kubectl.client.pods(namespace: nil)
        #expect(pods[0].phase == "Running")
        #expect(!pods[0].ready)
        #expect(pods[0].reason == "CrashLoopBackOff")
        #expect(pods[0].restarts == 10)
        #expect(pods[1].phase == "Pending")
        #expect(pods[1].reason == "Unschedulable")
        #expect(kubectl.calls().first?.contains("get pods --all-namespaces -o json") == true)
        let capacity = await HealthChecks.run(.capacity, client: kubectl.client, expectation: expectation)
        #expect(!capacity.passed)
        #expect(capacity.details.contains { $0.hasPrefix("unschedulable: default/") })

        let gke = try KubectlReplay.json(
            fromYAML: Fixtures.text("kubernetes/gke-pods-default-crashloop-pending-failed.yaml"))
        try kubectl.answer("pods", gke)
        let gkePods = try await kubectl.client.pods(namespace: "default")
        let cart = try #require(gkePods.first { $0.name.hasPrefix("cartservice-") && $0.reason == "CrashLoopBackOff" })
        #expect(cart.restarts == 896)
        #expect(gkePods.contains { $0.phase == "Failed" && $0.reason == "OutOfcpu" })
    }

    @Test func recordedApplicationsGiveTheRightVerdicts() async throws {
        let kubectl = try KubectlReplay()
        defer { kubectl.delete() }
        let healthy = try KubectlReplay.json(
            fromYAML: Fixtures.text("argocd/application-synced-healthy-operationstate-succeeded.yaml"))
        try kubectl.answer("applications", KubectlReplay.list([healthy]))
        let apps = try await kubectl.client.applications(namespace: "argocd")
        #expect(apps.count == 1)
        #expect(apps[0].syncStatus == "Synced" && apps[0].healthStatus == "Healthy")
        let argo = HealthExpectation(nodes: 1, argocd: true, monitoring: true, headlamp: false)
        #expect(await HealthChecks.run(.applications, client: kubectl.client, expectation: argo).passed)

        let comparison = try KubectlReplay.json(
            fromYAML: Fixtures.text("argocd/application-comparisonerror-sync-unknown.yaml"))
        let degraded = try KubectlReplay.json(
            fromYAML: Fixtures.text("argocd/application-health-degraded-minimal.yaml"))
        let outOfSync = try Fixtures.text(
            "argocd/application-status-outofsync-comparisonerror-handwritten-testdata.json")
        try kubectl.answer("applications", KubectlReplay.list([healthy, comparison, degraded, outOfSync]))
        let all = try await kubectl.client.applications(namespace: "argocd")
        #expect(all.map(\.syncStatus) == ["Synced", "Unknown", "Unknown", "OutOfSync"])
        #expect(all.map(\.healthStatus) == ["Healthy", "Healthy", "Degraded", "Healthy"])
        #expect(all[1].conditions.first?.type == "ComparisonError")
        #expect(all[1].repoURL == "https://github.com/noam-codefresh/git-source.git")
        let check = await HealthChecks.run(.applications, client: kubectl.client, expectation: argo)
        #expect(!check.passed)
        #expect(check.message.hasPrefix("3 of 4 Applications not Synced and Healthy"))
        #expect(check.details.contains { $0.contains("app path does not exist") })
    }

    @Test func recordedErrorsBecomeDistinctCodes() async throws {
        let kubectl = try KubectlReplay()
        defer { kubectl.delete() }
        try kubectl.fail("nodes", Fixtures.text("kubernetes/kubectl-error-forbidden-list-nodes.txt"))
        await #expect { try await kubectl.client.nodes() } throws: { ($0 as? ShoalError)?.code == .forbidden }
        let forbidden = await HealthChecks.run(.nodes, client: kubectl.client, expectation: expectation)
        #expect(!forbidden.passed)
        #expect(forbidden.message.contains("forbidden"))
        #expect(forbidden.remedy?.contains("admin kubeconfig") == true)

        try kubectl.fail("nodes", Fixtures.text("kubernetes/kubectl-error-forbidden-list-nodes-user-elided.txt"))
        await #expect { try await kubectl.client.nodes() } throws: { ($0 as? ShoalError)?.code == .forbidden }

        try kubectl.fail("pods", Fixtures.text("kubernetes/kubectl-error-k3s-connection-refused.txt"))
        await #expect { try await kubectl.client.pods(namespace: nil) } throws: { error in
            (error as? ShoalError)?.code == .unreachable && "\(error)".contains("127.0.0.1:6443")
        }
        let refused = await HealthChecks.run(.systemPods, client: kubectl.client, expectation: expectation)
        #expect(!refused.passed)
        #expect(refused.remedy?.contains("API server does not answer") == true)

        try kubectl.fail("secret", Fixtures.text("kubernetes/kubectl-error-notfound-argocd-initial-admin-secret.txt"))
        await #expect {
            try await kubectl.client.secretData(namespace: "argocd", name: "argocd-initial-admin-secret")
        } throws: {
            ($0 as? ShoalError)?.code == .notFound
        }
    }

    @Test func secretsAreDecoded() async throws {
        let kubectl = try KubectlReplay()
        defer { kubectl.delete() }
        try kubectl.answer(
            "secret",
            #"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "argocd-initial-admin-secret", "namespace": "argocd"}, "type": "Opaque", "data": {"password": "cGFzc3dvcmQxMjM="}}"#
        )
        #expect(
            try await kubectl.client.secretData(namespace: "argocd", name: "argocd-initial-admin-secret") == [
                "password": "password123"
            ])
    }

    @Test func prometheusAndGrafanaAnswersGiveTheRightVerdicts() async throws {
        let kubectl = try KubectlReplay()
        defer { kubectl.delete() }
        let monitoring = HealthExpectation(nodes: 1, argocd: false, monitoring: true, headlamp: false)
        try kubectl.answer("services", WrittenFixtures.monitoringServices)
        try kubectl.answer("raw-ready", Fixtures.text("prometheus/ready-200.txt"))
        try kubectl.answer("raw-targets", Fixtures.text("prometheus/api-v1-targets-openapi-golden-example.json"))
        try kubectl.answer("raw-health", Fixtures.text("grafana/api-health-200-docs-example.json"))
        let prometheus = await HealthChecks.run(.prometheus, client: kubectl.client, expectation: monitoring)
        #expect(prometheus.passed, "\(prometheus.message)")
        #expect(prometheus.details == ["alertmanager demo.prometheus.io:9093: up"])
        #expect(
            kubectl.calls().contains {
                $0.contains("get --raw /api/v1/namespaces/monitoring/services/prometheus:9090/proxy/-/ready")
            })
        let grafana = await HealthChecks.run(.grafana, client: kubectl.client, expectation: monitoring)
        #expect(grafana.passed)
        #expect(grafana.message.contains("5.1.3"))

        try kubectl.answer("raw-health", Fixtures.text("grafana/api-health-200-hideversion-testdata.json"))
        #expect(await HealthChecks.run(.grafana, client: kubectl.client, expectation: monitoring).passed)

        try kubectl.answer(
            "raw-targets", Fixtures.text("prometheus/api-v1-targets-docs-example-active-and-dropped.json"))
        #expect(await HealthChecks.run(.prometheus, client: kubectl.client, expectation: monitoring).passed)

        try kubectl.fail("raw-ready", WrittenFixtures.serviceUnavailable)
        let notReady = await HealthChecks.run(.prometheus, client: kubectl.client, expectation: monitoring)
        #expect(!notReady.passed)
        #expect(notReady.message.contains("answered 503"))
        try kubectl.fail("raw-health", WrittenFixtures.serviceUnavailable)
        #expect(await HealthChecks.run(.grafana, client: kubectl.client, expectation: monitoring).passed == false)
    }

    @Test func dnsCheckReadsTheKubeDNSEndpoints() async throws {
        let kubectl = try KubectlReplay()
        defer { kubectl.delete() }
        try kubectl.answer("endpoints", WrittenFixtures.kubeDNSEndpoints)
        let passed = await HealthChecks.run(.dns, client: kubectl.client, expectation: expectation)
        #expect(passed.passed)
        #expect(passed.details == ["endpoint 10.42.0.3"])
        try kubectl.answer("endpoints", WrittenFixtures.emptyEndpoints)
        #expect(await HealthChecks.run(.dns, client: kubectl.client, expectation: expectation).passed == false)
    }

    @Test func applyPassesTheManifestsOnStandardInputServerSide() async throws {
        let kubectl = try KubectlReplay()
        defer { kubectl.delete() }
        try kubectl.answer("apply", "namespace/monitoring serverside-applied\n")
        try await kubectl.client.apply(manifests: Stack.namespace, serverSide: true)
        #expect(kubectl.calls().last?.hasSuffix("apply -f - --server-side --force-conflicts") == true)
        #expect(try String(contentsOfFile: kubectl.directory + "/applied.yaml", encoding: .utf8) == Stack.namespace)
    }

    @Test func aKubectlThatHangsIsStoppedAtItsTimeout() async throws {
        let kubectl = try KubectlReplay()
        defer { kubectl.delete() }
        try SecureFile.write("#!/bin/sh\nexec sleep 120\n", to: kubectl.directory + "/kubectl", mode: 0o755)
        let client = KubectlClient(
            kubeconfig: "/dev/null", executable: kubectl.directory + "/kubectl", timeout: .milliseconds(300))
        let started = ContinuousClock.now
        await #expect { try await client.nodes() } throws: { ($0 as? ShoalError)?.code == .timeout }
        // Stopped long before the command would end by itself (a loaded machine may be seconds late, not minutes).
        #expect(ContinuousClock.now - started < .seconds(60))
    }
}
