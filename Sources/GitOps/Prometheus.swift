extension MonitoringStack {
    static let serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// Prometheus's own configuration file (`prometheus.yml`).
    ///
    /// K3s runs the scheduler, the controller manager and kube-proxy inside the k3s process with their metrics bound
    /// to 127.0.0.1, and its embedded etcd exposes no metrics by default, so there is no job for them: it would
    /// always be down. The kubelet (nodes, cAdvisor) is scraped directly on port 10250 with the in-cluster CA, which
    /// on K3s also signs the kubelet serving certificates.
    /// The scrape job of the shoal coordinator's metrics (`MonitoringStackSpec.coordinatorMetrics`).
    public static let coordinatorJob = "shoal-coordinator"

    public static func prometheusConfig(_ spec: MonitoringStackSpec) -> String {
        let inCluster: [(String, YAML)] = [
            ("scheme", "https"),
            ("tls_config", ["ca_file": .string("\(serviceAccountDir)/ca.crt")]),
            ("authorization", ["credentials_file": .string("\(serviceAccountDir)/token")]),
        ]
        func job(_ name: String, _ pairs: [(String, YAML)]) -> YAML { .pairs([("job_name", .string(name))] + pairs) }
        func endpointSlices(in namespace: String) -> YAML {
            [["role": "endpointslice", "namespaces": ["names": [.string(namespace)]]]]
        }
        func keepService(_ service: String, port: String) -> YAML {
            [
                "source_labels": ["__meta_kubernetes_service_name", "__meta_kubernetes_endpointslice_port_name"],
                "action": "keep",
                "regex": .string("\(service);\(port)"),
            ]
        }
        let nodeLabels: YAML = ["action": "labelmap", "regex": "__meta_kubernetes_node_label_(.+)"]
        let podNode: YAML = ["source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"]
        let nodeName: YAML = ["source_labels": ["__meta_kubernetes_node_name"], "target_label": "node"]

        var jobs: [YAML] = [
            job("prometheus", [("static_configs", [["targets": .list([.string("localhost:\(prometheusPort)")])]])]),
            job(
                "kubernetes-apiservers",
                [("kubernetes_sd_configs", endpointSlices(in: "default"))] + inCluster + [
                    ("relabel_configs", [keepService("kubernetes", port: "https")])
                ]),
            job(
                "kubernetes-nodes",
                [("kubernetes_sd_configs", [["role": "node"]])] + inCluster + [
                    ("relabel_configs", [nodeLabels, nodeName])
                ]),
            job(
                "kubernetes-cadvisor",
                [("kubernetes_sd_configs", [["role": "node"]]), ("metrics_path", "/metrics/cadvisor")] + inCluster + [
                    ("relabel_configs", [nodeLabels, nodeName])
                ]),
            job(
                "kubernetes-pods",
                [
                    ("kubernetes_sd_configs", [["role": "pod"]]),
                    (
                        "relabel_configs",
                        [
                            [
                                "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                                "action": "keep", "regex": "true",
                            ],
                            [
                                "source_labels": ["__meta_kubernetes_pod_phase"],
                                "action": "drop", "regex": "Pending|Succeeded|Failed",
                            ],
                            [
                                "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scheme"],
                                "action": "replace", "regex": "(https?)", "target_label": "__scheme__",
                            ],
                            [
                                "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
                                "action": "replace", "regex": "(.+)", "target_label": "__metrics_path__",
                            ],
                            [
                                "source_labels": [
                                    "__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port",
                                ],
                                "action": "replace", "regex": "([^:]+)(?::\\d+)?;(\\d+)",
                                "replacement": "$1:$2", "target_label": "__address__",
                            ],
                            ["source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"],
                            ["source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"],
                            podNode,
                        ]
                    ),
                ]),
            job(
                "node-exporter",
                [
                    ("kubernetes_sd_configs", endpointSlices(in: spec.namespace)),
                    ("relabel_configs", [keepService("node-exporter", port: "metrics"), podNode]),
                ]),
            job(
                "kube-state-metrics",
                [
                    // kube-state-metrics reports the namespace and pod of the objects it describes.
                    ("honor_labels", true),
                    ("kubernetes_sd_configs", endpointSlices(in: spec.namespace)),
                    ("relabel_configs", [keepService("kube-state-metrics", port: "http-metrics")]),
                ]),
        ]
        if let target = spec.coordinatorMetrics {
            // The coordinator runs outside the cluster (`shoal coordinator --metrics-listen`); its address is given.
            jobs.append(
                job(
                    coordinatorJob,
                    [
                        ("scrape_interval", "15s"),
                        ("static_configs", [["targets": .list([.string(target)])]]),
                    ]))
        }
        let config: YAML = [
            "global": [
                "scrape_interval": "30s",
                "scrape_timeout": "10s",
                "evaluation_interval": "30s",
                "external_labels": ["cluster": .string(spec.instance)],
            ],
            "scrape_configs": .list(jobs),
        ]
        let header = """
            # Generated by shoal. K3s: no scheduler, controller-manager, kube-proxy or etcd jobs (their metrics
            # listen on 127.0.0.1 inside the k3s process or are off), so no job is always down.

            """
        return header + config.body()
    }

    /// What Prometheus may read: list and watch what its kubernetes_sd roles (node, pod, endpointslice) discover,
    /// the kubelet's metrics (nodes/metrics, which also covers cAdvisor) and the API server's /metrics.
    static func prometheusRules() -> YAML {
        [
            [
                "apiGroups": [""],
                "resources": ["nodes", "nodes/metrics", "services", "pods"],
                "verbs": ["get", "list", "watch"],
            ],
            ["apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]],
            ["nonResourceURLs": ["/metrics"], "verbs": ["get"]],
        ]
    }

    /// The Prometheus container's arguments (retention from the spec); Kustomize overlays replace them whole.
    static func prometheusArguments(_ spec: MonitoringStackSpec) -> YAML {
        [
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            .string("--storage.tsdb.retention.time=\(spec.prometheusRetention)"),
            "--storage.tsdb.retention.size=8GB",
            .string("--web.listen-address=:\(prometheusPort)"),
        ]
    }

    static func prometheus(_ spec: MonitoringStackSpec) -> [YAML] {
        let name = "prometheus"
        let config = prometheusConfig(spec)
        let podSpec: YAML = [
            "serviceAccountName": .string(name),
            "securityContext": podSecurity(user: 65534, group: 65534),
            "containers": [
                [
                    "name": "prometheus",
                    "image": .string("\(spec.prometheusImage):\(spec.prometheusVersion)"),
                    "imagePullPolicy": "IfNotPresent",
                    "args": prometheusArguments(spec),
                    "ports": [["name": "http", "containerPort": .int(prometheusPort), "protocol": "TCP"]],
                    "readinessProbe": httpProbe(path: "/-/ready", port: "http", initialDelay: 5),
                    "livenessProbe": httpProbe(path: "/-/healthy", port: "http", initialDelay: 30, failures: 6),
                    "resources": resources(cpu: "100m", memory: "256Mi", cpuLimit: "1", memoryLimit: "1Gi"),
                    "securityContext": containerSecurity(),
                    "volumeMounts": [
                        ["name": "config", "mountPath": "/etc/prometheus", "readOnly": true],
                        ["name": "data", "mountPath": "/prometheus"],
                    ],
                ]
            ],
            "volumes": [
                ["name": "config", "configMap": ["name": "prometheus-config"]],
                // Metrics live as long as the pod; 8GB retention keeps the TSDB below the volume's limit.
                ["name": "data", "emptyDir": ["sizeLimit": "10Gi"]],
            ],
        ]
        return [
            serviceAccount(name, spec, component: name, automount: true),
            [
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": metadata(name, spec, component: name, namespaced: false),
                "rules": prometheusRules(),
            ],
            clusterRoleBinding(name, role: name, account: name, spec),
            [
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata("prometheus-config", spec, component: name),
                "data": ["prometheus.yml": .block(config)],
            ],
            [
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": metadata(name, spec, component: name, version: spec.prometheusVersion),
                "spec": [
                    "replicas": 1,
                    "revisionHistoryLimit": 3,
                    // One TSDB writer at a time.
                    "strategy": ["type": "Recreate"],
                    "selector": ["matchLabels": selectorLabels(name, spec)],
                    "template": [
                        "metadata": [
                            "labels": labels(name, spec, version: spec.prometheusVersion),
                            "annotations": ["checksum/config": .string(digest(config))],
                        ],
                        "spec": podSpec,
                    ],
                ],
            ],
            nodePortService(
                name, spec, port: prometheusPort, targetPort: "http", nodePort: prometheusNodePort),
        ]
    }
}
