import Foundation
import ShoalSupport
import Testing

@testable import Cluster

/// The recorded fixtures beside the package (`../shared/fixtures`).
enum Fixtures {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // ClusterTests, Tests, package root
        return url.deletingLastPathComponent().appendingPathComponent("shared/fixtures").path
    }()

    static func text(_ relative: String) throws -> String {
        let path = root + "/" + relative
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ShoalError(.notFound, "fixture \(path) is missing")
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Whether an external tool is there; a missing tool fails under CI and is skipped loudly otherwise.
func requireTool(_ name: String) -> Bool {
    if ProcessRunner.locate(name) != nil { return true }
    if ProcessInfo.processInfo.environment["CI"] != nil {
        Issue.record("\(name) is required when CI is set, but it is not on PATH")
    } else {
        print("SKIPPED: \(name) is not installed; this test needs it (set CI=1 to make this a failure)")
    }
    return false
}

/// A real git repository in a temporary directory.
struct TemporaryGitRepository {
    let path: String
    let runner = ProcessRunner(defaultTimeout: .seconds(60))

    init() async throws {
        path =
            FileManager.default.temporaryDirectory.appendingPathComponent("shoal-cluster-test-\(UUID().uuidString)")
            .path
        try SecureFile.createDirectory(path)
        try await git(["init", "--quiet", "--initial-branch", "main"])
        try await git(["config", "user.email", "tests@shoal.invalid"])
        try await git(["config", "user.name", "shoal tests"])
        try await git(["config", "commit.gpgsign", "false"])
    }

    func git(_ arguments: [String]) async throws {
        let result = try await runner.run("git", ["-C", path] + arguments)
        guard result.succeeded else {
            throw ShoalError(
                .commandFailed, "git \(arguments.joined(separator: " ")) failed", cause: result.standardError)
        }
    }

    /// Writes the files and commits them.
    func commit(_ files: [String: String], message: String = "update") async throws {
        for (name, contents) in files { try SecureFile.write(contents, to: path + "/" + name) }
        try await git(["add", "--all"])
        try await git(["commit", "--quiet", "-m", message])
    }

    func remove(_ name: String) async throws {
        try await git(["rm", "--quiet", name])
        try await git(["commit", "--quiet", "-m", "remove \(name)"])
    }

    func delete() { try? FileManager.default.removeItem(atPath: path) }
}

/// A GitSource over files in memory, for tests that are about the model and not about git.
struct InMemoryGitSource: GitSource {
    var repositories: [String: [String: String]]

    func files(repoURL: String, revision: String, path: String) async throws -> [(path: String, contents: String)] {
        guard let files = repositories[repoURL] else {
            throw ShoalError(.unreachable, "repository \(repoURL) not found")
        }
        return files.filter { $0.key.hasPrefix(path + "/") }.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 }
    }
}

/// A small monitoring stack written for these tests: Prometheus (with RBAC and a scrape configuration using
/// static, node, endpointslice and pod discovery), Grafana reading a Secret created outside git, and Headlamp.
enum Stack {
    static let namespace = """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: monitoring
        """

    static let prometheus = """
        apiVersion: v1
        kind: ServiceAccount
        metadata:
          name: prometheus
          namespace: monitoring
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata:
          name: prometheus
        rules:
        - apiGroups: [""]
          resources: [nodes, nodes/metrics, services, pods]
          verbs: [get, list, watch]
        - apiGroups: [discovery.k8s.io]
          resources: [endpointslices]
          verbs: [get, list, watch]
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRoleBinding
        metadata:
          name: prometheus
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: prometheus}
        subjects: [{kind: ServiceAccount, name: prometheus, namespace: monitoring}]
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: prometheus-config
          namespace: monitoring
        data:
          prometheus.yml: |
            global:
              scrape_interval: 30s
            scrape_configs:
            - job_name: prometheus
              static_configs:
              - targets: ["localhost:9090"]
            - job_name: kubernetes-apiservers
              scheme: https
              kubernetes_sd_configs:
              - role: endpointslice
                namespaces: {names: [default]}
              relabel_configs:
              - source_labels: [__meta_kubernetes_service_name, __meta_kubernetes_endpointslice_port_name]
                action: keep
                regex: kubernetes;https
            - job_name: kubernetes-nodes
              scheme: https
              kubernetes_sd_configs:
              - role: node
              relabel_configs:
              - action: labelmap
                regex: __meta_kubernetes_node_label_(.+)
            - job_name: kubernetes-pods
              kubernetes_sd_configs:
              - role: pod
              relabel_configs:
              - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
                action: keep
                regex: "true"
              - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
                action: replace
                regex: '([^:]+)(?::\\d+)?;(\\d+)'
                replacement: $1:$2
                target_label: __address__
            - job_name: grafana
              static_configs:
              - targets: ["grafana.monitoring.svc:3000"]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: prometheus
          namespace: monitoring
          labels: {app.kubernetes.io/name: prometheus}
        spec:
          replicas: 1
          selector:
            matchLabels: {app.kubernetes.io/name: prometheus}
          template:
            metadata:
              labels: {app.kubernetes.io/name: prometheus}
            spec:
              serviceAccountName: prometheus
              containers:
              - name: prometheus
                image: prom/prometheus:v3.1.0
                args: [--config.file=/etc/prometheus/prometheus.yml]
                ports: [{name: http, containerPort: 9090}]
                resources:
                  requests: {cpu: 200m, memory: 512Mi}
                volumeMounts: [{name: config, mountPath: /etc/prometheus}]
              volumes:
              - name: config
                configMap: {name: prometheus-config}
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: prometheus
          namespace: monitoring
        spec:
          type: NodePort
          selector: {app.kubernetes.io/name: prometheus}
          ports: [{name: http, port: 9090, targetPort: http, nodePort: 30090}]
        """

    static let grafana = """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: grafana
          namespace: monitoring
        spec:
          selector:
            matchLabels: {app.kubernetes.io/name: grafana}
          template:
            metadata:
              labels: {app.kubernetes.io/name: grafana}
            spec:
              containers:
              - name: grafana
                image: grafana/grafana:11.4.0
                ports: [{name: http, containerPort: 3000}]
                env:
                - name: GF_SECURITY_ADMIN_PASSWORD
                  valueFrom:
                    secretKeyRef: {name: grafana-admin, key: admin-password}
                resources:
                  requests: {cpu: 100m, memory: 256Mi}
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: grafana
          namespace: monitoring
        spec:
          type: NodePort
          selector: {app.kubernetes.io/name: grafana}
          ports: [{name: http, port: 3000, targetPort: http, nodePort: 30300}]
        """

    static let headlamp = """
        apiVersion: v1
        kind: ServiceAccount
        metadata: {name: headlamp, namespace: monitoring}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: headlamp, namespace: monitoring}
        spec:
          selector:
            matchLabels: {app.kubernetes.io/name: headlamp}
          template:
            metadata:
              labels: {app.kubernetes.io/name: headlamp}
            spec:
              serviceAccountName: headlamp
              containers:
              - name: headlamp
                image: ghcr.io/headlamp-k8s/headlamp:v0.27.0
                ports: [{name: http, containerPort: 4466}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: headlamp, namespace: monitoring}
        spec:
          type: NodePort
          selector: {app.kubernetes.io/name: headlamp}
          ports: [{name: http, port: 80, targetPort: http, nodePort: 30466}]
        """

    static let files: [String: String] = [
        "monitoring/00-namespace.yaml": namespace,
        "monitoring/10-prometheus.yaml": prometheus,
        "monitoring/20-grafana.yaml": grafana,
        "monitoring/25-headlamp.yaml": headlamp,
    ]

    /// The Secret the monitoring step creates directly in the cluster (never in git).
    static let grafanaAdminSecret = """
        apiVersion: v1
        kind: Secret
        metadata: {name: grafana-admin, namespace: monitoring}
        type: Opaque
        stringData: {admin-user: admin, admin-password: not-a-real-password}
        """

    /// K3s with Argo CD, the grafana-admin Secret, and the monitoring Application pointing at `repoURL`.
    static func cluster(repoURL: String, nodes: Int = 2, withGrafanaSecret: Bool = true) throws -> SimulatedCluster {
        var cluster = SimulatedCluster.provision(name: "demo", nodes: nodes, servers: 1, k3sVersion: "v1.31.4+k3s1")
        cluster.installArgoCD(version: "v2.13.3")
        if withGrafanaSecret {
            try cluster.apply(yaml: namespace, source: "monitoring-step")
            try cluster.apply(yaml: grafanaAdminSecret, source: "monitoring-step")
        }
        cluster.registerApplication(
            name: "monitoring", repoURL: repoURL, path: "monitoring", destinationNamespace: "monitoring")
        return cluster
    }

    static let expectation = HealthExpectation(nodes: 2, argocd: true, monitoring: true, headlamp: true)
}
