import ShoalSupport

/// What to deploy in the monitoring stack. Every version is a default the user can override; every image is pinned
/// to an explicit tag.
public struct MonitoringStackSpec: Sendable {
    /// The namespace every namespaced object lives in.
    public var namespace: String = "monitoring"
    /// The cluster name, used as `app.kubernetes.io/instance`. A DNS label.
    public var instance: String
    /// Whether Headlamp is part of the stack.
    public var headlamp: Bool = true

    public var prometheusVersion = "v3.14.0"
    public var grafanaVersion = "13.2.0"
    public var headlampVersion = "v0.45.0"
    public var nodeExporterVersion = "v1.12.1"
    public var kubeStateMetricsVersion = "v2.20.0"

    /// Image repositories, without tag; override them to use a registry mirror (air-gapped labs).
    public var prometheusImage = "quay.io/prometheus/prometheus"
    public var grafanaImage = "docker.io/grafana/grafana"
    public var headlampImage = "ghcr.io/headlamp-k8s/headlamp"
    public var nodeExporterImage = "quay.io/prometheus/node-exporter"
    public var kubeStateMetricsImage = "registry.k8s.io/kube-state-metrics/kube-state-metrics"

    /// The Secret holding Grafana's admin user and password. It is created in the cluster, never committed.
    public var grafanaAdminSecretName = "grafana-admin"
    /// The ClusterRole granted to the `headlamp-admin` ServiceAccount whose token logs into Headlamp.
    public var headlampClusterRole = "cluster-admin"
    /// How long Prometheus keeps samples.
    public var prometheusRetention = "15d"
    /// `HOST:PORT` of the shoal coordinator's metrics endpoint: Prometheus scrapes it as the job
    /// `shoal-coordinator` (the shoal dashboard's data). No job when nil.
    public var coordinatorMetrics: String?

    /// - Parameters:
    ///   - instance: the cluster name (a DNS label).
    ///   - headlamp: whether to include Headlamp.
    public init(instance: String, headlamp: Bool = true) {
        self.instance = instance
        self.headlamp = headlamp
    }

    /// Checks the names and versions that end up in the manifests.
    /// - Throws: `ShoalError(.invalidInput)` naming the bad value and what is allowed.
    public func validate() throws {
        for (what, value) in [("namespace", namespace), ("instance", instance)] where !Names.isDNSLabel(value) {
            throw ShoalError(
                .invalidInput,
                "invalid monitoring \(what) '\(value.prefix(80))': use 1-63 lowercase letters, digits and '-'")
        }
        let versions = [
            ("prometheus", prometheusVersion), ("grafana", grafanaVersion), ("headlamp", headlampVersion),
            ("node-exporter", nodeExporterVersion), ("kube-state-metrics", kubeStateMetricsVersion),
        ]
        for (component, version) in versions where !MonitoringStack.isPinnedTag(version) {
            throw ShoalError(
                .invalidInput,
                "invalid \(component) version '\(version.prefix(80))': "
                    + "give an explicit release such as v1.2.3, not 'latest'"
            )
        }
    }
}

/// The monitoring stack's manifests: Prometheus, Grafana, Headlamp, node-exporter and kube-state-metrics.
///
/// NodePorts: Prometheus 30090, Grafana 30300, Headlamp 30466.
public enum MonitoringStack {
    public static let prometheusNodePort = 30090
    public static let grafanaNodePort = 30300
    public static let headlampNodePort = 30466

    /// The Prometheus Service's port, and the port Grafana's datasource uses.
    public static let prometheusPort = 9090
    /// The `part-of` label of every object.
    public static let partOf = "shoal-monitoring"
    /// The Secret keys Grafana reads its admin credentials from.
    public static let grafanaAdminUserKey = "admin-user"
    public static let grafanaAdminPasswordKey = "admin-password"
    /// The ServiceAccount whose token logs into Headlamp.
    public static let headlampAdminServiceAccount = "headlamp-admin"

    /// The stack's files under `monitoring/`: 00-namespace.yaml, 10-prometheus.yaml, 20-grafana.yaml,
    /// 25-headlamp.yaml (only when enabled), 30-node-exporter.yaml and 35-kube-state-metrics.yaml.
    /// - Parameter spec: what to deploy; see `MonitoringStackSpec.validate()`.
    public static func render(_ spec: MonitoringStackSpec) -> [ManifestFile] {
        var files = [
            ManifestFile(path: "monitoring/00-namespace.yaml", contents: YAML.stream([namespace(spec)])),
            ManifestFile(path: "monitoring/10-prometheus.yaml", contents: YAML.stream(prometheus(spec))),
            ManifestFile(path: "monitoring/20-grafana.yaml", contents: YAML.stream(grafana(spec))),
        ]
        if spec.headlamp {
            files.append(ManifestFile(path: "monitoring/25-headlamp.yaml", contents: YAML.stream(headlamp(spec))))
        }
        files.append(ManifestFile(path: "monitoring/30-node-exporter.yaml", contents: YAML.stream(nodeExporter(spec))))
        files.append(
            ManifestFile(path: "monitoring/35-kube-state-metrics.yaml", contents: YAML.stream(kubeStateMetrics(spec))))
        return files
    }

    /// The Grafana admin Secret, to apply to the cluster and NEVER commit to git.
    /// - Parameters:
    ///   - spec: the stack (namespace, instance and Secret name).
    ///   - password: the generated admin password.
    public static func grafanaAdminSecret(_ spec: MonitoringStackSpec, password: String) -> String {
        let secret: YAML = [
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata(spec.grafanaAdminSecretName, spec, component: "grafana"),
            "type": "Opaque",
            "stringData": .pairs([
                (grafanaAdminUserKey, YAML.string("admin")), (grafanaAdminPasswordKey, .string(password)),
            ]),
        ]
        return secret.document()
    }

    /// kubectl arguments (without `kubectl` and `--kubeconfig`) that print a Headlamp login token.
    public static func headlampTokenCommand(_ spec: MonitoringStackSpec, duration: String = "24h") -> [String] {
        ["-n", spec.namespace, "create", "token", headlampAdminServiceAccount, "--duration", duration]
    }

    /// Whether an image tag is an explicit release: not empty, not `latest`, and containing a digit.
    public static func isPinnedTag(_ tag: String) -> Bool {
        guard !tag.isEmpty, tag.lowercased() != "latest", tag.utf8.count <= 128 else { return false }
        let allowed = tag.unicodeScalars.allSatisfy {
            switch $0 {
            case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-", "+": true
            default: false
            }
        }
        return allowed && tag.contains(where: \.isNumber)
    }

    // MARK: - Shared pieces

    static func labels(_ name: String, _ spec: MonitoringStackSpec, version: String? = nil) -> YAML {
        var values = [
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/instance": spec.instance,
            "app.kubernetes.io/part-of": partOf,
            "app.kubernetes.io/managed-by": "shoal",
        ]
        if let version { values["app.kubernetes.io/version"] = version }
        return .strings(values)
    }

    /// The labels a selector uses: stable across upgrades, so no version.
    static func selectorLabels(_ name: String, _ spec: MonitoringStackSpec) -> YAML {
        .strings(["app.kubernetes.io/name": name, "app.kubernetes.io/instance": spec.instance])
    }

    static func metadata(
        _ name: String, _ spec: MonitoringStackSpec, component: String, namespaced: Bool = true,
        version: String? = nil
    ) -> YAML {
        var pairs: [(String, YAML)] = [("name", .string(name))]
        if namespaced { pairs.append(("namespace", .string(spec.namespace))) }
        pairs.append(("labels", labels(component, spec, version: version)))
        return .pairs(pairs)
    }

    static func namespace(_ spec: MonitoringStackSpec) -> YAML {
        var labels = [
            "app.kubernetes.io/name": "monitoring",
            "app.kubernetes.io/instance": spec.instance,
            "app.kubernetes.io/part-of": partOf,
            "app.kubernetes.io/managed-by": "shoal",
        ]
        // node-exporter reads the host's /proc, /sys and root file system over the host network.
        labels["pod-security.kubernetes.io/enforce"] = "privileged"
        return [
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": ["name": .string(spec.namespace), "labels": .strings(labels)],
        ]
    }

    static func serviceAccount(_ name: String, _ spec: MonitoringStackSpec, component: String, automount: Bool)
        -> YAML
    {
        [
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(name, spec, component: component),
            "automountServiceAccountToken": .bool(automount),
        ]
    }

    static func clusterRoleBinding(_ name: String, role: String, account: String, _ spec: MonitoringStackSpec)
        -> YAML
    {
        [
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": metadata(name, spec, component: name, namespaced: false),
            "roleRef": ["apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": .string(role)],
            "subjects": [["kind": "ServiceAccount", "name": .string(account), "namespace": .string(spec.namespace)]],
        ]
    }

    static func resources(cpu: String, memory: String, cpuLimit: String, memoryLimit: String) -> YAML {
        [
            "requests": ["cpu": .string(cpu), "memory": .string(memory)],
            "limits": ["cpu": .string(cpuLimit), "memory": .string(memoryLimit)],
        ]
    }

    static func httpProbe(path: String, port: String, initialDelay: Int, period: Int = 10, failures: Int = 3)
        -> YAML
    {
        [
            "httpGet": ["path": .string(path), "port": .string(port)],
            "initialDelaySeconds": .int(initialDelay),
            "periodSeconds": .int(period),
            "timeoutSeconds": 5,
            "failureThreshold": .int(failures),
        ]
    }

    /// Container hardening shared by every workload.
    static func containerSecurity(readOnlyRoot: Bool = true) -> YAML {
        [
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": .bool(readOnlyRoot),
            "capabilities": ["drop": ["ALL"]],
        ]
    }

    static func podSecurity(user: Int, group: Int) -> YAML {
        [
            "runAsNonRoot": true,
            "runAsUser": .int(user),
            "runAsGroup": .int(group),
            "fsGroup": .int(group),
            "seccompProfile": ["type": "RuntimeDefault"],
        ]
    }

    static func nodePortService(
        _ name: String, _ spec: MonitoringStackSpec, port: Int, targetPort: String, nodePort: Int
    ) -> YAML {
        [
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(name, spec, component: name),
            "spec": [
                "type": "NodePort",
                "selector": selectorLabels(name, spec),
                "ports": [
                    [
                        "name": "http", "protocol": "TCP", "port": .int(port), "targetPort": .string(targetPort),
                        "nodePort": .int(nodePort),
                    ]
                ],
            ],
        ]
    }

    /// A short stable digest of a configuration, put on a pod template so that a changed ConfigMap rolls the pods.
    static func digest(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
