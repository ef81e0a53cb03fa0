import Foundation
import ShoalSupport
import Testing

@testable import Cluster

/// The installation steps of `ClusterClient`: the simulated cluster answers as the API server would, and the
/// kubectl client runs the documented commands and maps their errors.
@Suite struct ClusterOperationsTests {
    static let argoRelease = "https://raw.githubusercontent.com/argoproj/argo-cd/v3.5.1/manifests/install.yaml"

    func k3s() -> SimulatedClusterClient {
        SimulatedCluster.provision(name: "ops", nodes: 1, k3sVersion: "v1.36.3+k3s1").client(
            gitSource: InMemoryGitSource(repositories: [:]))
    }

    @Test func aNamespaceIsCreatedOnceThenReportedAsExisting() async throws {
        let client = k3s()
        #expect(try await client.createNamespace("argocd"))
        #expect(try await !client.createNamespace("argocd"))
        #expect(try await !client.createNamespace("kube-system"))
        await #expect(throws: ShoalError.self) { try await client.createNamespace("Not_A_Label") }
    }

    @Test func theArgoCDReleaseManifestInstallsTheModelsArgoCD() async throws {
        let client = k3s()
        _ = try await client.createNamespace("argocd")
        try await client.apply(location: Self.argoRelease, namespace: "argocd", serverSide: true)
        #expect(await client.cluster.argoCDVersion == "v3.5.1")
        let password = try await client.secretData(namespace: "argocd", name: "argocd-initial-admin-secret")["password"]
        #expect(password?.isEmpty == false)
        try await client.rolloutStatus(
            kind: "deployment", name: "argocd-server", namespace: "argocd", timeout: .seconds(1))
        try await client.rolloutStatus(
            kind: "statefulset", name: "argocd-application-controller", namespace: "argocd", timeout: .seconds(1))
        try await client.rolloutRestart(kind: "deployment", name: "argocd-server", namespace: "argocd")

        let error = await #expect(throws: ShoalError.self) {
            try await client.apply(location: "https://example.com/other.yaml", namespace: nil, serverSide: true)
        }
        #expect(error?.code == .unreachable)
        let missing = await #expect(throws: ShoalError.self) {
            try await client.rolloutStatus(kind: "deployment", name: "nope", namespace: "argocd", timeout: .seconds(1))
        }
        #expect(missing?.code == .notFound)
    }

    @Test func aLocalManifestFileIsParsedAndApplied() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("shoal-ops-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let client = k3s()
        try SecureFile.write(Stack.namespace + "\n---\n" + Stack.grafanaAdminSecret, to: directory + "/stack.yaml")
        try await client.apply(location: directory + "/stack.yaml", namespace: nil, serverSide: true)
        #expect(try await client.secretData(namespace: "monitoring", name: "grafana-admin")["admin-user"] == "admin")

        try SecureFile.write("kind: [unclosed", to: directory + "/broken.yaml")
        let broken = await #expect(throws: ShoalError.self) {
            try await client.apply(location: directory + "/broken.yaml", namespace: nil, serverSide: true)
        }
        #expect(broken?.message.contains("broken.yaml") == true)
        let absent = await #expect(throws: ShoalError.self) {
            try await client.apply(location: directory + "/absent.yaml", namespace: nil, serverSide: true)
        }
        #expect(absent?.code == .notFound)
    }

    @Test func anAirGappedArgoCDManifestInstallsTheVersionItsImageNames() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("shoal-ops-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let manifest = """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: argocd-server, labels: {app.kubernetes.io/name: argocd-server}}
            spec:
              selector: {matchLabels: {app.kubernetes.io/name: argocd-server}}
              template:
                metadata: {labels: {app.kubernetes.io/name: argocd-server}}
                spec:
                  containers:
                  - {name: argocd-server, image: "quay.io/argoproj/argocd:v3.4.2"}
            """
        try SecureFile.write(manifest, to: directory + "/install.yaml")
        let client = k3s()
        _ = try await client.createNamespace("argocd")
        try await client.apply(location: directory + "/install.yaml", namespace: "argocd", serverSide: true)
        #expect(await client.cluster.argoCDVersion == "v3.4.2")
        try await client.rolloutStatus(
            kind: "deployment", name: "argocd-server", namespace: "argocd", timeout: .seconds(1))
    }

    @Test func patchesMergeLikeTheAPIServer() async throws {
        let client = k3s()
        _ = try await client.createNamespace("argocd")
        try await client.apply(location: Self.argoRelease, namespace: "argocd", serverSide: true)
        try await client.patch(
            kind: "configmap", name: "argocd-cmd-params-cm", namespace: "argocd", type: .merge,
            patch: #"{"data":{"server.insecure":"true"}}"#)
        #expect(
            try await client.configMapData(namespace: "argocd", name: "argocd-cmd-params-cm")["server.insecure"]
                == "true")

        // Strategic merge keeps the https port and changes only port 80.
        try await client.patch(
            kind: "service", name: "argocd-server", namespace: "argocd", type: .strategic,
            patch: #"{"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":30080}]}}"#)
        let service = try #require(try await client.services(namespace: "argocd").first { $0.name == "argocd-server" })
        #expect(service.ports.map(\.port) == [80, 443])
        #expect(service.ports.first?.nodePort == 30080)

        try await client.patch(
            kind: "configmap", name: "coredns", namespace: "kube-system", type: .merge,
            patch: #"{"data":{"NodeHosts":"172.17.0.1 host.k3d.internal\n"}}"#)
        let coredns = try await client.configMapData(namespace: "kube-system", name: "coredns")
        #expect(coredns["NodeHosts"] == "172.17.0.1 host.k3d.internal\n")
        #expect(coredns["Corefile"]?.isEmpty == false, "a merge patch keeps the other keys")

        let error = await #expect(throws: ShoalError.self) {
            try await client.patch(kind: "configmap", name: "absent", namespace: "argocd", type: .merge, patch: "{}")
        }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains(#"configmaps "absent" not found"#) == true)
    }

    @Test func aRolloutWhoseSecretIsMissingEndsWithItsReason() async throws {
        var cluster = SimulatedCluster.provision(name: "ops", nodes: 1, k3sVersion: "v1.36.3+k3s1")
        try cluster.apply(yaml: Stack.namespace, source: "test")
        try cluster.apply(yaml: Stack.grafana, source: "monitoring/20-grafana.yaml")
        let client = cluster.client(gitSource: InMemoryGitSource(repositories: [:]))
        let error = await #expect(throws: ShoalError.self) {
            try await client.rolloutStatus(
                kind: "deployment", name: "grafana", namespace: "monitoring", timeout: .seconds(5))
        }
        #expect(error?.code == .timeout)
        #expect(error?.cause?.contains("0 of 1 updated replicas are available") == true)
        #expect(error?.cause?.contains("CreateContainerConfigError") == true)
    }

    @Test func aRewrittenRepositoryIsReadWhereItIsServedUnderItsOwnURL() async throws {
        let served = InMemoryGitSource(repositories: ["http://127.0.0.1:4242/wf": Stack.files])
        let source = RewritingGitSource(
            rewrites: ["http://host.k3d.internal:4242/wf": "http://127.0.0.1:4242/wf"], base: served)
        #expect(source.rewritten("http://host.k3d.internal:4242/wf.git") == "http://127.0.0.1:4242/wf")
        #expect(source.rewritten("http://host.k3d.internal:4242/wf/") == "http://127.0.0.1:4242/wf")
        #expect(source.rewritten("http://elsewhere/wf") == "http://elsewhere/wf")

        var cluster = try Stack.cluster(repoURL: "http://host.k3d.internal:4242/wf")
        cluster.registerApplication(name: "other", repoURL: "http://elsewhere/x", path: "monitoring")
        let client = cluster.client(gitSource: source)
        let apps = try await client.applications(namespace: "argocd")
        let monitoring = try #require(apps.first { $0.name == "monitoring" })
        #expect(monitoring.healthy)
        #expect(monitoring.repoURL == "http://host.k3d.internal:4242/wf", "the Application keeps its real repoURL")
        #expect(apps.first { $0.name == "other" }?.healthy == false)
    }
}

/// The kubectl commands behind the installation steps, against a stand-in that records them.
@Suite struct KubectlOperationsTests {
    @Test func theStepsRunTheDocumentedCommands() async throws {
        let kubectl = try KubectlReplay()
        defer { kubectl.delete() }
        try kubectl.answer("unknown", "ok\n")
        try kubectl.answer("apply", "ok\n")
        let client = kubectl.client
        #expect(try await client.createNamespace("argocd"))
        try await client.apply(location: ClusterOperationsTests.argoRelease, namespace: "argocd", serverSide: true)
        try await client.patch(
            kind: "configmap", name: "argocd-cmd-params-cm", namespace: "argocd", type: .merge, patch: "{}")
        try await client.rolloutRestart(kind: "deployment", name: "argocd-server", namespace: "argocd")
        try await client.rolloutStatus(
            kind: "deployment", name: "argocd-server", namespace: "argocd", timeout: .milliseconds(1500))
        let calls = kubectl.calls().map {
            $0.replacingOccurrences(of: "--kubeconfig \(kubectl.directory)/kubeconfig ", with: "")
        }
        #expect(
            calls == [
                "--request-timeout 10s create namespace argocd",
                "--request-timeout 120s apply --server-side --force-conflicts -n argocd -f "
                    + ClusterOperationsTests.argoRelease,
                "--request-timeout 10s patch configmap argocd-cmd-params-cm -n argocd --type merge -p {}",
                "--request-timeout 10s rollout restart deployment/argocd-server -n argocd",
                "--request-timeout 12s rollout status deployment/argocd-server -n argocd --timeout=2s",
            ])
    }

    @Test func alreadyExistsAndRolloutTimeoutsAreRecognised() async throws {
        let kubectl = try KubectlReplay()
        defer { kubectl.delete() }
        try kubectl.fail("unknown", "Error from server (AlreadyExists): namespaces \"argocd\" already exists\n")
        #expect(try await !kubectl.client.createNamespace("argocd"))
        try kubectl.fail(
            "unknown",
            "Waiting for deployment \"argocd-server\" rollout to finish: 0 of 1 updated replicas are available...\n"
                + "error: timed out waiting for the condition\n")
        let error = await #expect(throws: ShoalError.self) {
            try await kubectl.client.rolloutStatus(
                kind: "deployment", name: "argocd-server", namespace: "argocd", timeout: .seconds(1))
        }
        #expect(error?.code == .timeout)
        try kubectl.fail("unknown", try Fixtures.text("kubernetes/kubectl-error-k3s-connection-refused.txt"))
        let refused = await #expect(throws: ShoalError.self) { try await kubectl.client.createNamespace("argocd") }
        #expect(refused?.code == .unreachable)
    }
}
