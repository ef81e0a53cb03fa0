extension MonitoringStack {
    static let headlampPort = 4466
    static let nodeExporterPort = 9100
    static let kubeStateMetricsPort = 8080
    static let kubeStateMetricsTelemetryPort = 8081

    /// What kube-state-metrics reports on; its ClusterRole grants list and watch on exactly these. Secrets and
    /// ConfigMaps are left out so that it cannot read them.
    static let kubeStateMetricsResources: [(group: String, resource: String)] = [
        ("", "namespaces"), ("", "nodes"), ("", "pods"), ("", "services"), ("", "persistentvolumeclaims"),
        ("", "persistentvolumes"), ("", "resourcequotas"), ("", "limitranges"),
        ("apps", "deployments"), ("apps", "daemonsets"), ("apps", "statefulsets"), ("apps", "replicasets"),
        ("batch", "jobs"), ("batch", "cronjobs"), ("autoscaling", "horizontalpodautoscalers"),
        ("policy", "poddisruptionbudgets"), ("networking.k8s.io", "ingresses"), ("storage.k8s.io", "storageclasses"),
    ]

    static func headlamp(_ spec: MonitoringStackSpec) -> [YAML] {
        let name = "headlamp"
        let podSpec: YAML = [
            // In-cluster mode reads the API server address and CA from the mounted ServiceAccount; every request
            // is made with the token the user logs in with.
            "serviceAccountName": .string(name),
            "securityContext": podSecurity(user: 100, group: 101),
            "containers": [
                [
                    "name": "headlamp",
                    "image": .string("\(spec.headlampImage):\(spec.headlampVersion)"),
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["-in-cluster", "-plugins-dir=/headlamp/plugins"],
                    "ports": [["name": "http", "containerPort": .int(headlampPort), "protocol": "TCP"]],
                    "readinessProbe": httpProbe(path: "/", port: "http", initialDelay: 5),
                    "livenessProbe": httpProbe(path: "/", port: "http", initialDelay: 30),
                    "resources": resources(cpu: "50m", memory: "64Mi", cpuLimit: "500m", memoryLimit: "256Mi"),
                    "securityContext": containerSecurity(readOnlyRoot: false),
                ]
            ],
        ]
        return [
            serviceAccount(name, spec, component: name, automount: true),
            // The account whose token logs into Headlamp: `kubectl -n <namespace> create token headlamp-admin`.
            serviceAccount(headlampAdminServiceAccount, spec, component: name, automount: false),
            clusterRoleBinding(
                headlampAdminServiceAccount, role: spec.headlampClusterRole, account: headlampAdminServiceAccount, spec
            ),
            [
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": metadata(name, spec, component: name, version: spec.headlampVersion),
                "spec": [
                    "replicas": 1,
                    "revisionHistoryLimit": 3,
                    "selector": ["matchLabels": selectorLabels(name, spec)],
                    "template": [
                        "metadata": ["labels": labels(name, spec, version: spec.headlampVersion)],
                        "spec": podSpec,
                    ],
                ],
            ],
            nodePortService(name, spec, port: 80, targetPort: "http", nodePort: headlampNodePort),
        ]
    }

    static func nodeExporter(_ spec: MonitoringStackSpec) -> [YAML] {
        let name = "node-exporter"
        let container: YAML = [
            "name": "node-exporter",
            "image": .string("\(spec.nodeExporterImage):\(spec.nodeExporterVersion)"),
            "imagePullPolicy": "IfNotPresent",
            "args": [
                "--path.procfs=/host/proc",
                "--path.sysfs=/host/sys",
                "--path.rootfs=/host/root",
                .string("--web.listen-address=:\(nodeExporterPort)"),
                "--collector.filesystem.mount-points-exclude=^/(dev|proc|sys|run/k3s/.+|var/lib/kubelet/.+)($|/)",
            ],
            "ports": [["name": "metrics", "containerPort": .int(nodeExporterPort), "protocol": "TCP"]],
            "readinessProbe": httpProbe(path: "/", port: "metrics", initialDelay: 5),
            "livenessProbe": httpProbe(path: "/", port: "metrics", initialDelay: 15),
            "resources": resources(cpu: "50m", memory: "32Mi", cpuLimit: "250m", memoryLimit: "128Mi"),
            "securityContext": containerSecurity(),
            "volumeMounts": [
                ["name": "proc", "mountPath": "/host/proc", "readOnly": true],
                ["name": "sys", "mountPath": "/host/sys", "readOnly": true],
                ["name": "root", "mountPath": "/host/root", "readOnly": true, "mountPropagation": "HostToContainer"],
            ],
        ]
        return [
            serviceAccount(name, spec, component: name, automount: false),
            [
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": metadata(name, spec, component: name, version: spec.nodeExporterVersion),
                "spec": [
                    "revisionHistoryLimit": 3,
                    "selector": ["matchLabels": selectorLabels(name, spec)],
                    "updateStrategy": ["type": "RollingUpdate", "rollingUpdate": ["maxUnavailable": 1]],
                    "template": [
                        "metadata": ["labels": labels(name, spec, version: spec.nodeExporterVersion)],
                        "spec": [
                            "serviceAccountName": .string(name),
                            "automountServiceAccountToken": false,
                            "hostNetwork": true,
                            "hostPID": true,
                            "dnsPolicy": "ClusterFirstWithHostNet",
                            "securityContext": podSecurity(user: 65534, group: 65534),
                            // Every node, servers included (tainted servers in HA clusters too).
                            "tolerations": [["operator": "Exists"]],
                            "containers": [container],
                            "volumes": [
                                ["name": "proc", "hostPath": ["path": "/proc"]],
                                ["name": "sys", "hostPath": ["path": "/sys"]],
                                ["name": "root", "hostPath": ["path": "/"]],
                            ],
                        ],
                    ],
                ],
            ],
            [
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata(name, spec, component: name),
                "spec": [
                    "clusterIP": "None",
                    "selector": selectorLabels(name, spec),
                    "ports": [
                        [
                            "name": "metrics", "protocol": "TCP", "port": .int(nodeExporterPort),
                            "targetPort": "metrics",
                        ]
                    ],
                ],
            ],
        ]
    }

    static func kubeStateMetrics(_ spec: MonitoringStackSpec) -> [YAML] {
        let name = "kube-state-metrics"
        var groups: [String: [String]] = [:]
        for entry in kubeStateMetricsResources { groups[entry.group, default: []].append(entry.resource) }
        let rules: [YAML] = groups.keys.sorted().map { group in
            [
                "apiGroups": [.string(group)],
                "resources": .list(groups[group]!.map { .string($0) }),
                "verbs": ["list", "watch"],
            ]
        }
        let resourceList = kubeStateMetricsResources.map(\.resource).sorted().joined(separator: ",")
        let container: YAML = [
            "name": "kube-state-metrics",
            "image": .string("\(spec.kubeStateMetricsImage):\(spec.kubeStateMetricsVersion)"),
            "imagePullPolicy": "IfNotPresent",
            "args": [
                .string("--resources=\(resourceList)"),
                .string("--port=\(kubeStateMetricsPort)"),
                .string("--telemetry-port=\(kubeStateMetricsTelemetryPort)"),
            ],
            "ports": [
                ["name": "http-metrics", "containerPort": .int(kubeStateMetricsPort), "protocol": "TCP"],
                ["name": "telemetry", "containerPort": .int(kubeStateMetricsTelemetryPort), "protocol": "TCP"],
            ],
            "livenessProbe": httpProbe(path: "/livez", port: "http-metrics", initialDelay: 5),
            "readinessProbe": httpProbe(path: "/readyz", port: "telemetry", initialDelay: 5),
            "resources": resources(cpu: "50m", memory: "64Mi", cpuLimit: "250m", memoryLimit: "256Mi"),
            "securityContext": containerSecurity(),
        ]
        return [
            serviceAccount(name, spec, component: name, automount: true),
            [
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": metadata(name, spec, component: name, namespaced: false),
                "rules": .list(rules),
            ],
            clusterRoleBinding(name, role: name, account: name, spec),
            [
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": metadata(name, spec, component: name, version: spec.kubeStateMetricsVersion),
                "spec": [
                    "replicas": 1,
                    "revisionHistoryLimit": 3,
                    "selector": ["matchLabels": selectorLabels(name, spec)],
                    "template": [
                        "metadata": ["labels": labels(name, spec, version: spec.kubeStateMetricsVersion)],
                        "spec": [
                            "serviceAccountName": .string(name),
                            "securityContext": podSecurity(user: 65534, group: 65534),
                            "containers": [container],
                        ],
                    ],
                ],
            ],
            [
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata(name, spec, component: name),
                "spec": [
                    "selector": selectorLabels(name, spec),
                    "ports": [
                        [
                            "name": "http-metrics", "protocol": "TCP", "port": .int(kubeStateMetricsPort),
                            "targetPort": "http-metrics",
                        ],
                        [
                            "name": "telemetry", "protocol": "TCP", "port": .int(kubeStateMetricsTelemetryPort),
                            "targetPort": "telemetry",
                        ],
                    ],
                ],
            ],
        ]
    }
}
