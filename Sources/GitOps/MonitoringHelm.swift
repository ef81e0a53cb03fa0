import ShoalSupport

/// The monitoring stack as Helm charts from their registries (`--monitoring-source helm`): one Argo CD Application
/// per chart in `apps/`, each with two sources, the chart at an exact version with its values file
/// (`$values/monitoring/helm/<chart>-values.yaml`) and the GitOps repository itself as the `values` reference.
///
/// The values keep what shoal's checks, runbook and dashboards rely on: the Service names (`prometheus`, `grafana`,
/// `headlamp`, `node-exporter`, `kube-state-metrics`) through `fullnameOverride`, the NodePorts 30090, 30300 and
/// 30466, the Grafana admin Secret shoal creates in the cluster (`admin.existingSecret`), the Prometheus
/// datasource, the dashboards (the shoal dashboard included), the images shoal pins, and the retention and
/// resources of the environment (as `MonitoringKustomize.settings`).
public enum MonitoringHelm {
    /// One chart of the stack.
    public struct Chart: Sendable, Equatable {
        /// The component and the chart's release name: `prometheus`, `grafana` or `headlamp`.
        public var component: String
        public var repository: String
        public var chart: String
        /// The exact chart version.
        public var version: String
        /// The application version the chart carries by default (shoal's values pin the image anyway).
        public var appVersion: String

        /// The Application's name and file.
        public var applicationName: String { "monitoring-\(component)" }
        public var applicationPath: String { "\(ArgoApplications.appsDirectory)/\(applicationName).yaml" }
        /// The values file in the GitOps repository.
        public var valuesPath: String { "\(MonitoringHelm.directory)/\(component)-values.yaml" }
    }

    /// Where the values files live.
    public static let directory = "monitoring/helm"

    public static let prometheus = Chart(
        component: "prometheus", repository: "https://prometheus-community.github.io/helm-charts",
        chart: "prometheus", version: "28.10.0", appVersion: "v3.10.0")
    public static let grafana = Chart(
        component: "grafana", repository: "https://grafana-community.github.io/helm-charts", chart: "grafana",
        version: "11.1.7", appVersion: "12.3.3")
    public static let headlamp = Chart(
        component: "headlamp", repository: "https://kubernetes-sigs.github.io/headlamp", chart: "headlamp",
        version: "0.40.1", appVersion: "0.40.0")

    /// Every chart the stack may use.
    public static let charts = [prometheus, grafana, headlamp]

    /// The charts of a stack (Headlamp only when enabled).
    public static func charts(_ spec: MonitoringStackSpec) -> [Chart] {
        spec.headlamp ? charts : [prometheus, grafana]
    }

    /// The values files and the Applications.
    /// - Parameters:
    ///   - spec: the stack; see `MonitoringStackSpec.validate()`.
    ///   - environment: development, staging or production (retention, resources, Headlamp replicas).
    ///   - repoURL: the GitOps repository's address as the cluster reaches it.
    ///   - targetRevision: the revision the values are read at.
    public static func render(
        _ spec: MonitoringStackSpec, environment: String, repoURL: String, targetRevision: String = "HEAD"
    ) -> (values: [ManifestFile], applications: [ManifestFile]) {
        let settings = MonitoringKustomize.settings(environment)
        var values: [ManifestFile] = []
        var applications: [ManifestFile] = []
        for chart in charts(spec) {
            let document: YAML
            switch chart.component {
            case "prometheus": document = prometheusValues(spec, settings)
            case "grafana": document = grafanaValues(spec)
            default: document = headlampValues(spec, settings)
            }
            let header =
                "# Values of the Helm chart \(chart.chart) \(chart.version) from \(chart.repository), "
                + "rendered by shoal.\n"
            values.append(ManifestFile(path: chart.valuesPath, contents: header + document.body()))
            applications.append(application(chart, spec, repoURL: repoURL, targetRevision: targetRevision))
        }
        return (values, applications)
    }

    /// `apps/monitoring-<component>.yaml`.
    static func application(_ chart: Chart, _ spec: MonitoringStackSpec, repoURL: String, targetRevision: String)
        -> ManifestFile
    {
        var app = ApplicationSpec(
            name: chart.applicationName, repoURL: repoURL, path: "", destinationNamespace: spec.namespace)
        app.labels = ["app.kubernetes.io/instance": spec.instance]
        // node-exporter reads the host's /proc, /sys and root file system over the host network.
        app.namespaceLabels = ["pod-security.kubernetes.io/enforce": "privileged"]
        let sources: YAML = [
            [
                "repoURL": .string(chart.repository),
                "chart": .string(chart.chart),
                "targetRevision": .string(chart.version),
                "helm": [
                    "releaseName": .string(chart.component), "valueFiles": [.string("$values/\(chart.valuesPath)")],
                ],
            ],
            ["repoURL": .string(repoURL), "targetRevision": .string(targetRevision), "ref": "values"],
        ]
        return ManifestFile(
            path: chart.applicationPath, contents: ArgoApplications.document(app, sources: sources).document())
    }

    static func prometheusValues(_ spec: MonitoringStackSpec, _ settings: MonitoringKustomize.Settings) -> YAML {
        var extra: [YAML] = []
        if let target = spec.coordinatorMetrics {
            extra.append([
                "job_name": .string(MonitoringStack.coordinatorJob), "scrape_interval": "15s",
                "static_configs": [["targets": [.string(target)]]],
            ])
        }
        var pairs: [(String, YAML)] = [
            (
                "server",
                [
                    "fullnameOverride": "prometheus",
                    "image": ["repository": .string(spec.prometheusImage), "tag": .string(spec.prometheusVersion)],
                    "retention": .string(settings.retention),
                    "global": ["external_labels": ["cluster": .string(spec.instance)]],
                    "persistentVolume": ["enabled": false],
                    "resources": MonitoringStack.resources(
                        cpu: settings.requests.cpu, memory: settings.requests.memory, cpuLimit: settings.limits.cpu,
                        memoryLimit: settings.limits.memory),
                    "service": [
                        "type": "NodePort", "servicePort": .int(MonitoringStack.prometheusPort),
                        "nodePort": .int(MonitoringStack.prometheusNodePort),
                    ],
                ]
            ),
            ("alertmanager", ["enabled": false]),
            ("prometheus-pushgateway", ["enabled": false]),
            (
                "prometheus-node-exporter",
                [
                    "fullnameOverride": "node-exporter",
                    "image": [
                        "registry": .string(registry(of: spec.nodeExporterImage)),
                        "repository": .string(path(of: spec.nodeExporterImage)),
                        "tag": .string(spec.nodeExporterVersion),
                    ],
                ]
            ),
            (
                "kube-state-metrics",
                [
                    "fullnameOverride": "kube-state-metrics",
                    "image": [
                        "registry": .string(registry(of: spec.kubeStateMetricsImage)),
                        "repository": .string(path(of: spec.kubeStateMetricsImage)),
                        "tag": .string(spec.kubeStateMetricsVersion),
                    ],
                ]
            ),
        ]
        if !extra.isEmpty {
            // The chart takes extra scrape jobs as a YAML string.
            pairs.append(("extraScrapeConfigs", .block(YAML.list(extra).body())))
        }
        return .pairs(pairs)
    }

    static func grafanaValues(_ spec: MonitoringStackSpec) -> YAML {
        let dashboards = MonitoringStack.grafanaDashboards(spec)
        let provider: YAML = [
            "providers": [
                [
                    "name": "shoal", "orgId": 1, "folder": "Shoal", "type": "file", "disableDeletion": true,
                    "allowUiUpdates": false, "options": ["path": "/var/lib/grafana/dashboards/shoal"],
                ]
            ]
        ]
        let datasource: YAML = [
            "apiVersion": 1,
            "datasources": [
                [
                    "name": "Prometheus", "uid": .string(MonitoringStack.datasourceUID), "type": "prometheus",
                    "access": "proxy", "url": .string(MonitoringStack.prometheusURL(spec)), "isDefault": true,
                    "editable": false, "jsonData": ["timeInterval": "30s", "httpMethod": "POST"],
                ]
            ],
        ]
        let named: [(String, YAML)] = dashboards.map { dashboard in
            (String(dashboard.file.dropLast(".json".count)), ["json": .block(dashboard.json)])
        }
        return [
            "fullnameOverride": "grafana",
            "image": [
                "registry": .string(registry(of: spec.grafanaImage)),
                "repository": .string(path(of: spec.grafanaImage)),
                "tag": .string(spec.grafanaVersion),
            ],
            "admin": [
                "existingSecret": .string(spec.grafanaAdminSecretName),
                "userKey": .string(MonitoringStack.grafanaAdminUserKey),
                "passwordKey": .string(MonitoringStack.grafanaAdminPasswordKey),
            ],
            "service": [
                "type": "NodePort", "port": .int(MonitoringStack.grafanaPort),
                "nodePort": .int(MonitoringStack.grafanaNodePort),
            ],
            "datasources": ["datasources.yaml": datasource],
            "dashboardProviders": ["dashboardproviders.yaml": provider],
            "dashboards": ["shoal": .pairs(named)],
            "resources": MonitoringStack.resources(cpu: "100m", memory: "128Mi", cpuLimit: "1", memoryLimit: "512Mi"),
        ]
    }

    static func headlampValues(_ spec: MonitoringStackSpec, _ settings: MonitoringKustomize.Settings) -> YAML {
        [
            "fullnameOverride": "headlamp",
            "replicaCount": .int(settings.headlampReplicas),
            "image": [
                "registry": .string(registry(of: spec.headlampImage)),
                "repository": .string(path(of: spec.headlampImage)),
                "tag": .string(spec.headlampVersion),
            ],
            "service": ["type": "NodePort", "port": 80, "nodePort": .int(MonitoringStack.headlampNodePort)],
            // The account whose token logs into Headlamp: `kubectl -n <namespace> create token headlamp-admin`.
            "serviceAccount": ["create": true, "name": .string(MonitoringStack.headlampAdminServiceAccount)],
            "clusterRoleBinding": ["create": true, "clusterRoleName": .string(spec.headlampClusterRole)],
            "resources": MonitoringStack.resources(cpu: "50m", memory: "64Mi", cpuLimit: "500m", memoryLimit: "256Mi"),
        ]
    }

    static func registry(of image: String) -> String {
        image.split(separator: "/", maxSplits: 1).first.map(String.init) ?? image
    }

    static func path(of image: String) -> String {
        image.split(separator: "/", maxSplits: 1).dropFirst().first.map(String.init) ?? image
    }

    // MARK: - The demo model

    /// What the simulated Argo CD deploys for a monitoring chart it knows: the same workloads shoal's own
    /// manifests define, configured from the values (charts are not fetched in demo mode).
    /// - Parameters:
    ///   - component: `prometheus`, `grafana` or `headlamp`.
    ///   - spec: the stack as the values and the Application describe it.
    /// - Returns: the manifests as a YAML stream, or nil for a chart that is not modelled.
    public static func model(component: String, spec: MonitoringStackSpec) -> String? {
        switch component {
        case "prometheus":
            YAML.stream(
                MonitoringStack.prometheus(spec) + MonitoringStack.nodeExporter(spec)
                    + MonitoringStack.kubeStateMetrics(spec))
        case "grafana": YAML.stream(MonitoringStack.grafana(spec))
        case "headlamp": YAML.stream(MonitoringStack.headlamp(spec))
        default: nil
        }
    }
}
