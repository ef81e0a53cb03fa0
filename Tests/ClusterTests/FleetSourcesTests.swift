import Foundation
import ShoalSupport
import Testing

@testable import Cluster

/// A repository in memory whose head the test moves.
final class MemoryGitSource: GitSource, @unchecked Sendable {  // every field is guarded by `lock`
    private let lock = NSLock()
    private var state: (head: String, files: [String: String])
    private var fileReads = 0

    /// How many times files were read.
    var reads: Int { lock.withLock { fileReads } }

    init(_ files: [String: String]) { state = ("1" + String(repeating: "0", count: 39), files) }

    func commit(_ changes: [String: String?]) {
        lock.withLock {
            for (path, text) in changes { state.files[path] = text }
            let next = (Int(state.head.prefix(1)) ?? 1) + 1
            state.head = String(next) + String(repeating: "0", count: 39)
        }
    }

    func revision(repoURL: String, revision: String) async throws -> String? { lock.withLock { state.head } }

    func files(repoURL: String, revision: String, path: String) async throws -> [(path: String, contents: String)] {
        let files = lock.withLock {
            fileReads += 1
            return state.files
        }
        let prefix = path.isEmpty || path == "." ? "" : path + "/"
        return files.filter { $0.key.hasPrefix(prefix) }.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 }
    }
}

@Suite struct FleetSourcesTests {
    static func argocdDirectory(version: String) -> [String: String] {
        [
            "argocd/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            namespace: argocd
            resources:
              - https://raw.githubusercontent.com/argoproj/argo-cd/\(version)/manifests/install.yaml
            patches:
              - path: argocd-cmd-params-cm.yaml
              - path: argocd-server-service.yaml
            """,
            "argocd/argocd-cmd-params-cm.yaml": """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: argocd-cmd-params-cm}
            data: {server.insecure: "true"}
            """,
            "argocd/argocd-server-service.yaml": """
            apiVersion: v1
            kind: Service
            metadata: {name: argocd-server}
            spec:
              type: NodePort
              ports: [{name: http, port: 80, protocol: TCP, nodePort: 30080}]
            """,
        ]
    }

    static let overlays: [String: String] = [
        "web/base/kustomization.yaml": "resources: [deployment.yaml]\n",
        "web/base/deployment.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web, labels: {app: web}}
        spec:
          replicas: 1
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers: [{name: web, image: "nginx:1.27.4", resources: {requests: {cpu: 10m, memory: 16Mi}}}]
        """,
        "web/overlays/production/kustomization.yaml": """
        resources: [../../base]
        namespace: web
        replicas: [{name: web, count: 3}]
        """,
    ]

    func argocdCluster(_ source: MemoryGitSource) -> SimulatedClusterClient {
        var cluster = SimulatedCluster.provision(name: "lab", nodes: 1, k3sVersion: "v1.33.1+k3s1")
        cluster.installArgoCD(version: "v3.5.1", adminPassword: "test-password-123")
        cluster.registerApplication(
            name: "argocd", repoURL: "mem://repo", path: "argocd", destinationNamespace: "argocd")
        return cluster.client(gitSource: source)
    }

    @Test(arguments: [true, false]) func aVersionBumpCommittedToArgocdRollsTheSimulatedArgoCD(kubectl: Bool) async throws {
        if kubectl && !requireTool("kubectl") { return }
        let source = MemoryGitSource(Self.argocdDirectory(version: "v3.5.1"))
        let manifests = try await SimulatedKustomize.render(
            tree: try await source.files(repoURL: "", revision: "", path: ""), directory: "argocd", useKubectl: kubectl)
        let params = try #require(manifests.first { $0.kind == "ConfigMap" && $0.name == "argocd-cmd-params-cm" })
        #expect(params.body["data", "server.insecure"]?.string == "true")
        #expect(params.namespace == "argocd")
        let service = try #require(manifests.first { $0.kind == "Service" && $0.name == "argocd-server" })
        #expect(service.body["spec", "ports"]?.array?.first { $0["port"]?.int == 80 }?["nodePort"]?.int == 30080)
        #expect(!manifests.contains { $0.name == "argocd-initial-admin-secret" }, "the server makes it, not git")

        guard kubectl == SimulatedKustomize.kubectlAvailable else { return }
        let client = argocdCluster(source)
        let app = try #require(try await client.applications(namespace: "argocd").first)
        #expect(app.healthy, "\(app.conditions)")
        source.commit(["argocd/kustomization.yaml": Self.argocdDirectory(version: "v3.6.0")["argocd/kustomization.yaml"]])
        let after = try #require(try await client.applications(namespace: "argocd").first)
        #expect(after.healthy, "\(after.conditions)")
        #expect(await client.cluster.argoCDVersion == "v3.6.0")
        let pods = try await client.pods(namespace: "argocd").filter { $0.name.hasPrefix("argocd-server-") }
        #expect(!pods.isEmpty && pods.allSatisfy { $0.healthy })
        let server = await client.cluster.objects["Deployment/argocd/argocd-server"]
        #expect(server?.body["spec", "template", "spec", "containers"]?.array?.first?["image"]?.string
            == "quay.io/argoproj/argocd:v3.6.0")
        // The initial admin password stays: the install from git does not carry it.
        #expect(try await client.secretData(namespace: "argocd", name: "argocd-initial-admin-secret")["password"]
            == "test-password-123")
    }

    @Test(arguments: [true, false]) func anOverlayBuildsAndABrokenOneFailsTheSyncNamingTheFile(kubectl: Bool)
        async throws
    {
        if kubectl && !requireTool("kubectl") { return }
        let tree = Self.overlays.map { ($0.key, $0.value) }
        let manifests = try await SimulatedKustomize.render(
            tree: tree, directory: "web/overlays/production", useKubectl: kubectl)
        #expect(manifests.count == 1)
        #expect(manifests.first?.body["spec", "replicas"]?.int == 3)
        #expect(manifests.first?.namespace == "web")

        var broken = Self.overlays
        broken["web/overlays/production/kustomization.yaml"] = "resources: [../../missing]\n"
        await #expect(throws: ShoalError.self) {
            _ = try await SimulatedKustomize.render(
                tree: broken.map { ($0.key, $0.value) }, directory: "web/overlays/production", useKubectl: kubectl)
        }
        do {
            _ = try await SimulatedKustomize.render(
                tree: broken.map { ($0.key, $0.value) }, directory: "web/overlays/production", useKubectl: kubectl)
        } catch let error as ShoalError {
            #expect(error.description.contains("web/overlays/production/kustomization.yaml"), "\(error)")
        }
    }

    @Test func aBrokenOverlayShowsAsAFailedSyncOfItsApplication() async throws {
        var files = Self.overlays
        files["web/overlays/production/kustomization.yaml"] = "resources: [../../missing]\n"
        var cluster = SimulatedCluster.provision(name: "lab", nodes: 1, k3sVersion: "v1.33.1+k3s1")
        cluster.installArgoCD(version: "v3.5.1", adminPassword: "test-password-123")
        cluster.registerApplication(
            name: "web", repoURL: "mem://repo", path: "web/overlays/production", destinationNamespace: "web")
        let app = try #require(
            try await cluster.client(gitSource: MemoryGitSource(files)).applications(namespace: "argocd").first)
        #expect(!app.healthy)
        #expect(app.conditions.contains { $0.message.contains("web/overlays/production/kustomization.yaml") })
    }

    @Test func theRefreshAnnotationIsConsumedAndRemovedObjectsGoWithTheirApplication() async throws {
        let files = [
            "apps/web.yaml": """
            apiVersion: argoproj.io/v1alpha1
            kind: Application
            metadata: {name: web, namespace: argocd, finalizers: [resources-finalizer.argocd.argoproj.io]}
            spec:
              project: default
              source: {repoURL: "mem://repo", path: web/overlays/production, targetRevision: HEAD}
              destination: {server: "https://kubernetes.default.svc", namespace: web}
              syncPolicy: {syncOptions: [CreateNamespace=true]}
            """
        ].merging(Self.overlays) { first, _ in first }
        let source = MemoryGitSource(files)
        var cluster = SimulatedCluster.provision(name: "lab", nodes: 1, k3sVersion: "v1.33.1+k3s1")
        cluster.installArgoCD(version: "v3.5.1", adminPassword: "test-password-123")
        cluster.registerApplication(name: "root", repoURL: "mem://repo", path: "apps", destinationNamespace: "argocd")
        let client = cluster.client(gitSource: source)
        let lines = await ApplicationRefresh.request(client)
        #expect(lines.count == 2 && lines.allSatisfy { $0.hasPrefix("refresh requested") }, "\(lines)")
        let apps = try await client.applications(namespace: "argocd")
        #expect(apps.allSatisfy { $0.healthy }, "\(apps)")
        let state = await client.cluster
        #expect(state.objects.values.allSatisfy { $0.body["metadata", "annotations", ApplicationRefresh.annotation] == nil })
        #expect(state.objects["Deployment/web/web"] != nil)

        source.commit(["apps/web.yaml": nil])
        _ = try await client.applications(namespace: "argocd")
        let pruned = await client.cluster
        #expect(pruned.objects["Application/argocd/web"] == nil)
        #expect(pruned.objects["Deployment/web/web"] == nil, "the resources finalizer deletes its resources")
    }

    @Test func aRefreshAtASyncedCommitReappliesWhatWasRenderedAndOnlyANewCommitIsReadAgain() async throws {
        let files = [
            "apps/web.yaml": """
            apiVersion: argoproj.io/v1alpha1
            kind: Application
            metadata: {name: web, namespace: argocd}
            spec:
              project: default
              source: {repoURL: "mem://repo", path: web/overlays/production, targetRevision: HEAD}
              destination: {server: "https://kubernetes.default.svc", namespace: web}
              syncPolicy: {syncOptions: [CreateNamespace=true]}
            """
        ].merging(Self.overlays) { first, _ in first }
        let source = MemoryGitSource(files)
        var cluster = SimulatedCluster.provision(name: "lab", nodes: 1, k3sVersion: "v1.33.1+k3s1")
        cluster.installArgoCD(version: "v3.5.1", adminPassword: "test-password-123")
        cluster.registerApplication(name: "root", repoURL: "mem://repo", path: "apps", destinationNamespace: "argocd")
        let client = cluster.client(gitSource: source)
        #expect(try await client.applications(namespace: "argocd").allSatisfy(\.healthy))
        let reads = source.reads
        #expect(reads > 0)
        func replicas() async -> Int? { await client.cluster.objects["Deployment/web/web"]?.body["spec", "replicas"]?.int }
        #expect(await replicas() == 3)

        // Drift, then a refresh at the same commit: the rendered manifests are applied again, nothing is read.
        try await client.patch(
            kind: "deployment", name: "web", namespace: "web", type: .merge, patch: #"{"spec":{"replicas":1}}"#)
        #expect(await replicas() == 1)
        _ = await ApplicationRefresh.request(client)
        #expect(try await client.applications(namespace: "argocd").allSatisfy(\.healthy))
        #expect(await replicas() == 3)
        #expect(source.reads == reads)

        // A settled model is read without a sync; a new commit is synced at the next read.
        for _ in 0..<3 { _ = try await client.pods(namespace: "web") }
        #expect(source.reads == reads)
        source.commit([
            "web/overlays/production/kustomization.yaml": "resources: [../../base]\nnamespace: web\nreplicas: [{name: web, count: 2}]\n"
        ])
        #expect(try await client.pods(namespace: "web").count == 2)
        #expect(source.reads > reads)
        #expect(await replicas() == 2)
    }

    @Test func aChartApplicationIsCheckedAgainstTheCatalogAndItsValuesFile() async throws {
        func application(_ name: String, chart: String, version: String, values: String) -> String {
            """
            apiVersion: argoproj.io/v1alpha1
            kind: Application
            metadata: {name: \(name), namespace: argocd}
            spec:
              project: default
              sources:
                - repoURL: https://stefanprodan.github.io/podinfo
                  chart: \(chart)
                  targetRevision: "\(version)"
                  helm: {valueFiles: ["$values/\(values)"]}
                - {repoURL: "mem://repo", targetRevision: HEAD, ref: values}
              destination: {server: "https://kubernetes.default.svc", namespace: \(name)}
            """
        }
        let files = [
            "apps/good.yaml": application("good", chart: "podinfo", version: "6.7.1", values: "values/good.yaml"),
            "apps/old.yaml": application("old", chart: "podinfo", version: "0.0.1", values: "values/good.yaml"),
            "apps/novalues.yaml": application("novalues", chart: "podinfo", version: "6.7.1", values: "values/x.yaml"),
            "apps/other.yaml": application("other", chart: "nginx", version: "1.0.0", values: "values/good.yaml"),
            "values/good.yaml": "replicaCount: 2\n",
        ]
        var cluster = SimulatedCluster.provision(name: "lab", nodes: 1, k3sVersion: "v1.33.1+k3s1")
        cluster.installArgoCD(version: "v3.5.1", adminPassword: "test-password-123")
        cluster.registerApplication(name: "root", repoURL: "mem://repo", path: "apps", destinationNamespace: "argocd")
        let apps = try await cluster.client(gitSource: MemoryGitSource(files)).applications(namespace: "argocd")
        func status(_ name: String) -> ApplicationStatus? { apps.first { $0.name == name } }
        #expect(status("good")?.healthy == true, "\(String(describing: status("good")))")
        for (name, reason) in [
            ("old", "version 0.0.1 not found"), ("novalues", "values file values/x.yaml does not exist"),
            ("other", "chart nginx is not in repository"),
        ] {
            let app = try #require(status(name))
            #expect(!app.healthy)
            let messages = app.conditions.map(\.message).joined()
            #expect(messages.contains(reason) && messages.contains("apps/\(name).yaml"), "\(messages)")
        }
    }
}
