import ShoalSupport

/// The monitoring stack as a Kustomize base with one overlay per environment (`--monitoring-source kustomize`):
/// `monitoring/base/` holds the same manifests as the plain directory, and `monitoring/overlays/<environment>/`
/// changes what should differ between environments.
///
/// | | development | staging | production |
/// |---|---|---|---|
/// | Prometheus retention | 3d | 7d | 30d |
/// | Prometheus requests / limits | 100m, 256Mi / 1, 1Gi | 200m, 512Mi / 1, 2Gi | 500m, 1Gi / 2, 3Gi |
/// | Headlamp replicas | 1 | 1 | 2 |
public enum MonitoringKustomize {
    /// The environments an overlay exists for.
    public static let environments = ["development", "staging", "production"]

    /// The Application path for an environment.
    public static func overlayPath(_ environment: String) -> String { "monitoring/overlays/\(environment)" }

    /// What differs per environment.
    public struct Settings: Sendable, Equatable {
        public var retention: String
        public var requests: (cpu: String, memory: String)
        public var limits: (cpu: String, memory: String)
        public var headlampReplicas: Int

        public static func == (left: Settings, right: Settings) -> Bool {
            left.retention == right.retention && left.requests == right.requests && left.limits == right.limits
                && left.headlampReplicas == right.headlampReplicas
        }
    }

    public static func settings(_ environment: String) -> Settings {
        switch environment {
        case "production":
            Settings(retention: "30d", requests: ("500m", "1Gi"), limits: ("2", "3Gi"), headlampReplicas: 2)
        case "staging":
            Settings(retention: "7d", requests: ("200m", "512Mi"), limits: ("1", "2Gi"), headlampReplicas: 1)
        default:
            Settings(retention: "3d", requests: ("100m", "256Mi"), limits: ("1", "1Gi"), headlampReplicas: 1)
        }
    }

    /// The base and the three overlays.
    /// - Parameter spec: the stack; see `MonitoringStackSpec.validate()`.
    public static func render(_ spec: MonitoringStackSpec) -> [ManifestFile] {
        let plain = MonitoringStack.render(spec)
        var files = plain.map {
            ManifestFile(path: $0.path.replacingOccurrences(of: "monitoring/", with: "monitoring/base/"), contents: $0.contents)
        }
        let base: YAML = [
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": .list(plain.map { .string(String($0.path.dropFirst("monitoring/".count))) }),
        ]
        files.append(ManifestFile(path: "monitoring/base/kustomization.yaml", contents: base.document()))
        for environment in environments {
            let settings = settings(environment)
            var overlay: [(String, YAML)] = [
                ("apiVersion", "kustomize.config.k8s.io/v1beta1"),
                ("kind", "Kustomization"),
                ("resources", ["../../base"]),
                ("patches", [["path": "prometheus.yaml"]]),
            ]
            if spec.headlamp {
                overlay.append(("replicas", [["name": "headlamp", "count": .int(settings.headlampReplicas)]]))
            }
            var retained = spec
            retained.prometheusRetention = settings.retention
            let patch: YAML = [
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": ["name": "prometheus", "namespace": .string(spec.namespace)],
                "spec": [
                    "template": [
                        "spec": [
                            "containers": [
                                [
                                    "name": "prometheus",
                                    "args": MonitoringStack.prometheusArguments(retained),
                                    "resources": MonitoringStack.resources(
                                        cpu: settings.requests.cpu, memory: settings.requests.memory,
                                        cpuLimit: settings.limits.cpu, memoryLimit: settings.limits.memory),
                                ]
                            ]
                        ]
                    ]
                ],
            ]
            let directory = overlayPath(environment)
            files.append(ManifestFile(path: "\(directory)/kustomization.yaml", contents: YAML.pairs(overlay).document()))
            files.append(ManifestFile(path: "\(directory)/prometheus.yaml", contents: patch.document()))
        }
        return files
    }
}
