import Foundation

extension MonitoringStack {
    /// The provisioned datasource's uid, which every dashboard panel names.
    static let datasourceUID = "prometheus"
    static let grafanaPort = 3000
    static let dashboardsPath = "/etc/grafana/dashboards"

    /// The URL Grafana reaches Prometheus at: the Service's name and namespace, resolved by cluster DNS.
    /// `<service>.<namespace>.svc` works whatever the cluster domain is.
    public static func prometheusURL(_ spec: MonitoringStackSpec) -> String {
        "http://prometheus.\(spec.namespace).svc:\(prometheusPort)"
    }

    static func grafanaDatasources(_ spec: MonitoringStackSpec) -> String {
        let document: YAML = [
            "apiVersion": 1,
            "datasources": [
                [
                    "name": "Prometheus",
                    "uid": .string(datasourceUID),
                    "type": "prometheus",
                    "access": "proxy",
                    "url": .string(prometheusURL(spec)),
                    "isDefault": true,
                    "editable": false,
                    "jsonData": ["timeInterval": "30s", "httpMethod": "POST"],
                ]
            ],
        ]
        return document.body()
    }

    static func grafanaDashboardProviders() -> String {
        let document: YAML = [
            "apiVersion": 1,
            "providers": [
                [
                    "name": "shoal",
                    "orgId": 1,
                    "folder": "Shoal",
                    "type": "file",
                    "disableDeletion": true,
                    "allowUiUpdates": false,
                    "options": ["path": .string(dashboardsPath)],
                ]
            ],
        ]
        return document.body()
    }

    /// The dashboards as (file name, JSON).
    static func grafanaDashboards(_ spec: MonitoringStackSpec) -> [(file: String, json: String)] {
        [
            ("cluster-overview.json", Dashboard.clusterOverview(spec.instance).json()),
            ("nodes.json", Dashboard.nodes(spec.instance).json()),
            (shoalDashboardFile, shoalDashboard()),
        ]
    }

    static func grafana(_ spec: MonitoringStackSpec) -> [YAML] {
        let name = "grafana"
        let datasources = grafanaDatasources(spec)
        let providers = grafanaDashboardProviders()
        let dashboards = grafanaDashboards(spec)
        let digestInput = datasources + providers + dashboards.map(\.json).joined()
        func secretEnv(_ variable: String, _ key: String) -> YAML {
            [
                "name": .string(variable),
                "valueFrom": ["secretKeyRef": ["name": .string(spec.grafanaAdminSecretName), "key": .string(key)]],
            ]
        }
        func env(_ variable: String, _ value: String) -> YAML { ["name": .string(variable), "value": .string(value)] }
        let container: YAML = [
            "name": "grafana",
            "image": .string("\(spec.grafanaImage):\(spec.grafanaVersion)"),
            "imagePullPolicy": "IfNotPresent",
            "env": [
                secretEnv("GF_SECURITY_ADMIN_USER", grafanaAdminUserKey),
                secretEnv("GF_SECURITY_ADMIN_PASSWORD", grafanaAdminPasswordKey),
                env("GF_AUTH_ANONYMOUS_ENABLED", "false"),
                env("GF_USERS_ALLOW_SIGN_UP", "false"),
                env("GF_ANALYTICS_REPORTING_ENABLED", "false"),
                env("GF_ANALYTICS_CHECK_FOR_UPDATES", "false"),
                env("GF_PATHS_DATA", "/var/lib/grafana"),
            ],
            "ports": [["name": "http", "containerPort": .int(grafanaPort), "protocol": "TCP"]],
            "readinessProbe": httpProbe(path: "/api/health", port: "http", initialDelay: 10),
            "livenessProbe": httpProbe(path: "/api/health", port: "http", initialDelay: 60, failures: 6),
            "resources": resources(cpu: "100m", memory: "128Mi", cpuLimit: "500m", memoryLimit: "512Mi"),
            // Grafana writes below its data directory and its own install tree.
            "securityContext": containerSecurity(readOnlyRoot: false),
            "volumeMounts": [
                ["name": "storage", "mountPath": "/var/lib/grafana"],
                ["name": "datasources", "mountPath": "/etc/grafana/provisioning/datasources", "readOnly": true],
                ["name": "dashboard-providers", "mountPath": "/etc/grafana/provisioning/dashboards", "readOnly": true],
                ["name": "dashboards", "mountPath": .string(dashboardsPath), "readOnly": true],
            ],
        ]
        return [
            serviceAccount(name, spec, component: name, automount: false),
            [
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata("grafana-datasources", spec, component: name),
                "data": ["datasources.yaml": .block(datasources)],
            ],
            [
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata("grafana-dashboard-providers", spec, component: name),
                "data": ["dashboards.yaml": .block(providers)],
            ],
            [
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata("grafana-dashboards", spec, component: name),
                "data": .pairs(dashboards.map { ($0.file, .block($0.json)) }),
            ],
            [
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": metadata(name, spec, component: name, version: spec.grafanaVersion),
                "spec": [
                    "replicas": 1,
                    "revisionHistoryLimit": 3,
                    "selector": ["matchLabels": selectorLabels(name, spec)],
                    "template": [
                        "metadata": [
                            "labels": labels(name, spec, version: spec.grafanaVersion),
                            "annotations": ["checksum/config": .string(digest(digestInput))],
                        ],
                        "spec": [
                            "serviceAccountName": .string(name),
                            "automountServiceAccountToken": false,
                            "securityContext": podSecurity(user: 472, group: 472),
                            "containers": [container],
                            "volumes": [
                                ["name": "storage", "emptyDir": [:]],
                                ["name": "datasources", "configMap": ["name": "grafana-datasources"]],
                                ["name": "dashboard-providers", "configMap": ["name": "grafana-dashboard-providers"]],
                                ["name": "dashboards", "configMap": ["name": "grafana-dashboards"]],
                            ],
                        ],
                    ],
                ],
            ],
            nodePortService(name, spec, port: grafanaPort, targetPort: "http", nodePort: grafanaNodePort),
        ]
    }
}

/// A Grafana dashboard built from panels and PromQL queries.
struct Dashboard {
    struct Panel {
        var title: String
        var kind: String  // "stat" or "timeseries"
        var unit: String
        var queries: [(expr: String, legend: String)]
        var width: Int
        var height: Int
    }

    var uid: String
    var title: String
    var instance: String
    var panels: [Panel]
    var variables: [[String: Any]] = []

    /// Every PromQL expression of the dashboard, for syntax checks.
    var expressions: [String] { panels.flatMap { $0.queries.map(\.expr) } }

    static func stat(_ title: String, _ expr: String, unit: String = "short") -> Panel {
        Panel(title: title, kind: "stat", unit: unit, queries: [(expr, "")], width: 4, height: 4)
    }

    static func series(_ title: String, _ expr: String, legend: String, unit: String) -> Panel {
        Panel(title: title, kind: "timeseries", unit: unit, queries: [(expr, legend)], width: 12, height: 8)
    }

    static func clusterOverview(_ instance: String) -> Dashboard {
        Dashboard(
            uid: "shoal-cluster-overview",
            title: "Cluster overview",
            instance: instance,
            panels: [
                stat("Nodes", "count(kube_node_info)"),
                stat("Nodes ready", "sum(kube_node_status_condition{condition=\"Ready\",status=\"true\"})"),
                stat("Running pods", "sum(kube_pod_status_phase{phase=\"Running\"})"),
                stat("Pods not ready", "sum(kube_pod_status_ready{condition=\"false\"})"),
                stat("Scrape targets up", "sum(up) / count(up)", unit: "percentunit"),
                stat("Deployments unavailable", "sum(kube_deployment_status_replicas_unavailable)"),
                series(
                    "CPU by namespace",
                    "sum by (namespace) (rate(container_cpu_usage_seconds_total{container!=\"\"}[5m]))",
                    legend: "{{namespace}}", unit: "short"),
                series(
                    "Memory by namespace",
                    "sum by (namespace) (container_memory_working_set_bytes{container!=\"\"})",
                    legend: "{{namespace}}", unit: "bytes"),
                series(
                    "Container restarts (1h)",
                    "sum by (namespace) (increase(kube_pod_container_status_restarts_total[1h]))",
                    legend: "{{namespace}}", unit: "short"),
                series(
                    "API server requests by code",
                    "sum by (code) (rate(apiserver_request_total[5m]))",
                    legend: "{{code}}", unit: "reqps"),
            ])
    }

    static func nodes(_ instance: String) -> Dashboard {
        let selector = "node=~\"$node\""
        let devices = "device!~\"lo|veth.*|cni.*|flannel.*\""
        let filesystems = "fstype!~\"tmpfs|overlay|squashfs\""
        var dashboard = Dashboard(
            uid: "shoal-nodes",
            title: "Nodes",
            instance: instance,
            panels: [
                series(
                    "CPU busy",
                    "1 - avg by (node) (rate(node_cpu_seconds_total{mode=\"idle\",\(selector)}[5m]))",
                    legend: "{{node}}", unit: "percentunit"),
                series(
                    "Memory used",
                    "1 - node_memory_MemAvailable_bytes{\(selector)} / node_memory_MemTotal_bytes",
                    legend: "{{node}}", unit: "percentunit"),
                series("Load (1m)", "node_load1{\(selector)}", legend: "{{node}}", unit: "short"),
                series(
                    "Disk space used",
                    // One-to-one matching filters the sizes by the selected file systems.
                    "1 - node_filesystem_avail_bytes{\(selector),\(filesystems)} / node_filesystem_size_bytes",
                    legend: "{{node}} {{mountpoint}}", unit: "percentunit"),
                series(
                    "Network received",
                    "sum by (node) (rate(node_network_receive_bytes_total{\(selector),\(devices)}[5m]))",
                    legend: "{{node}}", unit: "Bps"),
                series(
                    "Network sent",
                    "sum by (node) (rate(node_network_transmit_bytes_total{\(selector),\(devices)}[5m]))",
                    legend: "{{node}}", unit: "Bps"),
            ])
        dashboard.variables = [
            [
                "name": "node",
                "label": "Node",
                "type": "query",
                "datasource": datasource,
                "query": ["query": "label_values(node_uname_info, node)", "refId": "node"],
                "definition": "label_values(node_uname_info, node)",
                "refresh": 2,
                "includeAll": true,
                "multi": true,
                "sort": 1,
            ]
        ]
        return dashboard
    }

    static var datasource: [String: Any] { ["type": "prometheus", "uid": MonitoringStack.datasourceUID] }

    func json() -> String {
        var x = 0
        var y = 0
        var rowHeight = 0
        var panelObjects: [[String: Any]] = []
        for (index, panel) in panels.enumerated() {
            if x + panel.width > 24 {
                x = 0
                y += rowHeight
                rowHeight = 0
            }
            let targets: [[String: Any]] = panel.queries.enumerated().map { offset, query in
                [
                    "refId": String(UnicodeScalar(UInt8(65 + offset))),
                    "datasource": Dashboard.datasource,
                    "expr": query.expr,
                    "legendFormat": query.legend.isEmpty ? "__auto" : query.legend,
                ]
            }
            panelObjects.append([
                "id": index + 1,
                "type": panel.kind,
                "title": panel.title,
                "datasource": Dashboard.datasource,
                "gridPos": ["x": x, "y": y, "w": panel.width, "h": panel.height],
                "fieldConfig": ["defaults": ["unit": panel.unit], "overrides": [Any]()],
                "targets": targets,
            ])
            x += panel.width
            rowHeight = max(rowHeight, panel.height)
        }
        let object: [String: Any] = [
            "uid": uid,
            "title": title,
            "tags": ["shoal", instance],
            "editable": false,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "30s",
            "time": ["from": "now-1h", "to": "now"],
            "timezone": "browser",
            "templating": ["list": variables],
            "panels": panelObjects,
        ]
        // Only strings, numbers, arrays and dictionaries go in, which JSONSerialization always accepts.
        let data = try! JSONSerialization.data(
            withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
