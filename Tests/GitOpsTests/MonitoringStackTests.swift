import Foundation
import ShoalSupport
import Testing
import Yams

@testable import GitOps

@Suite struct MonitoringStackTests {
    let spec = MonitoringStackSpec(instance: "lab")

    @Test func rendersTheFilesInOrderAndHeadlampOnlyWhenEnabled() {
        #expect(
            MonitoringStack.render(spec).map(\.path) == [
                "monitoring/00-namespace.yaml", "monitoring/10-prometheus.yaml", "monitoring/20-grafana.yaml",
                "monitoring/25-headlamp.yaml", "monitoring/30-node-exporter.yaml",
                "monitoring/35-kube-state-metrics.yaml",
            ])
        let without = MonitoringStack.render(MonitoringStackSpec(instance: "lab", headlamp: false))
        #expect(!without.map(\.path).contains("monitoring/25-headlamp.yaml"))
        #expect(!without.contains { $0.contents.contains("headlamp") })
    }

    @Test func everyImageIsPinnedToTheConfiguredVersion() throws {
        var custom = spec
        custom.grafanaVersion = "12.9.1"
        custom.prometheusImage = "registry.lab:5000/prometheus"
        let images = try allDocuments(MonitoringStack.render(custom)).flatMap { containers($0.doc) }
            .compactMap { $0["image"] as? String }
        #expect(images.count == 5)
        for image in images {
            let tag = try #require(image.split(separator: "/").last?.split(separator: ":").dropFirst().first)
            #expect(MonitoringStack.isPinnedTag(String(tag)), "\(image)")
            #expect(!image.contains("@") || image.contains("sha256:"), "\(image)")
        }
        #expect(
            Set(images) == [
                "registry.lab:5000/prometheus:v3.14.0", "docker.io/grafana/grafana:12.9.1",
                "ghcr.io/headlamp-k8s/headlamp:v0.45.0", "quay.io/prometheus/node-exporter:v1.12.1",
                "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0",
            ])
    }

    @Test func validateRefusesUnpinnedVersionsAndBadNames() throws {
        try spec.validate()
        for change: (inout MonitoringStackSpec) -> Void in [
            { $0.prometheusVersion = "latest" }, { $0.grafanaVersion = "" }, { $0.headlampVersion = "main" },
            { $0.instance = "Bad Name" }, { $0.namespace = "-x" },
        ] {
            var bad = spec
            change(&bad)
            #expect(throws: ShoalError.self) { try bad.validate() }
        }
        #expect(!MonitoringStack.isPinnedTag("LATEST"))
        #expect(MonitoringStack.isPinnedTag("v1.2.3"))
    }

    @Test func nodePortsAreExactlyTheDocumentedOnes() throws {
        func nodePorts(_ files: [ManifestFile]) throws -> [Int] {
            try allDocuments(files).filter { kind($0.doc) == "Service" }.flatMap { entry in
                (value(entry.doc, "spec", "ports") as? [[String: Any]] ?? []).compactMap { $0["nodePort"] as? Int }
            }.sorted()
        }
        #expect(try nodePorts(MonitoringStack.render(spec)) == [30090, 30300, 30466])
        #expect(
            try nodePorts(MonitoringStack.render(MonitoringStackSpec(instance: "lab", headlamp: false))) == [
                30090, 30300,
            ])
        let steps = ArgoCDInstall().kubectlSteps()
        #expect(steps.last?.last?.contains("\"nodePort\":30080") == true)
    }

    @Test func everyObjectCarriesTheStandardLabels() throws {
        for (file, doc) in try allDocuments(MonitoringStack.render(spec)) {
            let labels = value(doc, "metadata", "labels") as? [String: String] ?? [:]
            #expect(labels["app.kubernetes.io/instance"] == "lab", "\(file) \(name(doc))")
            #expect(labels["app.kubernetes.io/part-of"] == MonitoringStack.partOf, "\(file) \(name(doc))")
            #expect(labels["app.kubernetes.io/managed-by"] == "shoal", "\(file) \(name(doc))")
            #expect(labels["app.kubernetes.io/name"]?.isEmpty == false, "\(file) \(name(doc))")
            if kind(doc) != "Namespace" && kind(doc) != "ClusterRole" && kind(doc) != "ClusterRoleBinding" {
                #expect(value(doc, "metadata", "namespace") as? String == "monitoring", "\(file) \(name(doc))")
            }
        }
    }

    @Test func everyContainerHasResourcesAndProbes() throws {
        let workloads = try allDocuments(MonitoringStack.render(spec)).filter { podSpec($0.doc) != nil }
        #expect(
            workloads.map { kind($0.doc) }.sorted() == [
                "DaemonSet", "Deployment", "Deployment", "Deployment", "Deployment",
            ])
        for (file, doc) in workloads {
            let labels = value(doc, "spec", "template", "metadata", "labels") as? [String: String] ?? [:]
            let selector = value(doc, "spec", "selector", "matchLabels") as? [String: String] ?? [:]
            #expect(!selector.isEmpty && selector.allSatisfy { labels[$0.key] == $0.value }, "\(file)")
            for container in containers(doc) {
                for key in ["requests", "limits"] {
                    let values = value(container, "resources", key) as? [String: Any]
                    #expect(values?["cpu"] != nil && values?["memory"] != nil, "\(file) \(key)")
                }
                #expect(container["readinessProbe"] != nil, "\(file)")
                #expect(container["livenessProbe"] != nil, "\(file)")
                #expect(value(container, "securityContext", "allowPrivilegeEscalation") as? Bool == false, "\(file)")
                // Probes name ports the container declares.
                let ports = Set((container["ports"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
                for probe in ["readinessProbe", "livenessProbe"] {
                    let port = value(container, probe, "httpGet", "port") as? String
                    #expect(port.map(ports.contains) == true, "\(file) \(probe)")
                }
            }
            #expect(value(podSpec(doc), "securityContext", "runAsNonRoot") as? Bool == true, "\(file)")
        }
    }

    @Test func servicesSelectTheirPodsAndTargetDeclaredPorts() throws {
        let documents = try allDocuments(MonitoringStack.render(spec)).map(\.doc)
        let workloads = documents.filter { podSpec($0) != nil }
        for service in documents where kind(service) == "Service" {
            let selector = value(service, "spec", "selector") as? [String: String] ?? [:]
            let matches = workloads.filter { workload in
                let labels = value(workload, "spec", "template", "metadata", "labels") as? [String: String] ?? [:]
                return selector.allSatisfy { labels[$0.key] == $0.value }
            }
            #expect(matches.count == 1, "Service \(name(service))")
            let declared = Set(
                matches.flatMap(containers).flatMap { ($0["ports"] as? [[String: Any]] ?? []) }
                    .compactMap { $0["name"] as? String })
            for port in value(service, "spec", "ports") as? [[String: Any]] ?? [] {
                #expect(declared.contains(port["targetPort"] as? String ?? "?"), "Service \(name(service))")
            }
        }
    }

    @Test func grafanaReachesThePrometheusServiceByItsRealName() throws {
        var custom = spec
        custom.namespace = "observability"
        let documents = try allDocuments(MonitoringStack.render(custom)).map(\.doc)
        let service = try #require(documents.first { kind($0) == "Service" && name($0) == "prometheus" })
        let servicePort = try #require((value(service, "spec", "ports") as? [[String: Any]])?.first?["port"] as? Int)
        let configMap = try #require(documents.first { name($0) == "grafana-datasources" })
        let text = try #require(value(configMap, "data", "datasources.yaml") as? String)
        let datasource = try #require((value(try Yams.load(yaml: text), "datasources") as? [[String: Any]])?.first)
        let urlText = try #require(datasource["url"] as? String)
        let url = try #require(URL(string: urlText))
        #expect(url.host == "\(name(service)).\(value(service, "metadata", "namespace") as! String).svc")
        #expect(url.host == "prometheus.observability.svc")
        #expect(url.port == servicePort)
        #expect(datasource["type"] as? String == "prometheus")

        // Every dashboard panel uses that datasource, and there are at least the two promised dashboards.
        let dashboards = try #require(
            documents.first { name($0) == "grafana-dashboards" }?["data"] as? [String: String])
        #expect(Set(dashboards.keys).isSuperset(of: ["cluster-overview.json", "nodes.json"]))
        for (file, json) in dashboards {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            let panels = try #require(object["panels"] as? [[String: Any]])
            #expect(panels.count >= 4, "\(file)")
            for panel in panels {
                #expect(value(panel, "datasource", "uid") as? String == datasource["uid"] as? String, "\(file)")
                #expect((panel["targets"] as? [[String: Any]])?.isEmpty == false, "\(file)")
            }
        }
    }

    @Test func grafanaTakesItsAdminPasswordFromTheSecretByName() throws {
        var custom = spec
        custom.grafanaAdminSecretName = "my-grafana-admin"
        let documents = try allDocuments(MonitoringStack.render(custom)).map(\.doc)
        #expect(!documents.contains { kind($0) == "Secret" })
        let grafana = try #require(documents.first { kind($0) == "Deployment" && name($0) == "grafana" })
        let env = try #require(containers(grafana).first?["env"] as? [[String: Any]])
        let password = try #require(env.first { $0["name"] as? String == "GF_SECURITY_ADMIN_PASSWORD" })
        #expect(value(password, "valueFrom", "secretKeyRef", "name") as? String == "my-grafana-admin")
        #expect(
            value(password, "valueFrom", "secretKeyRef", "key") as? String == MonitoringStack.grafanaAdminPasswordKey)
        #expect(!env.contains { ($0["value"] as? String)?.lowercased() == "admin" })

        let tricky = "p@ss: \"w0rd\"\n# not a comment"
        let secret = try #require(try yamlDocuments(MonitoringStack.grafanaAdminSecret(custom, password: tricky)).first)
        #expect(kind(secret) == "Secret")
        #expect(name(secret) == "my-grafana-admin")
        #expect(value(secret, "metadata", "namespace") as? String == "monitoring")
        #expect(value(secret, "stringData", MonitoringStack.grafanaAdminPasswordKey) as? String == tricky)
    }

    /// Which resources each `kubernetes_sd_configs` role lists and watches.
    static let discoveryNeeds: [String: [(group: String, resource: String)]] = [
        "node": [("", "nodes")],
        "pod": [("", "pods")],
        "service": [("", "services")],
        "endpoints": [("", "endpoints"), ("", "services"), ("", "pods")],
        "endpointslice": [("discovery.k8s.io", "endpointslices"), ("", "services"), ("", "pods")],
        "ingress": [("networking.k8s.io", "ingresses")],
    ]

    @Test func prometheusRBACCoversWhatItsScrapeJobsDiscoverAndScrape() throws {
        let documents = try allDocuments(MonitoringStack.render(spec)).map(\.doc)
        let role = try #require(documents.first { kind($0) == "ClusterRole" && name($0) == "prometheus" })
        let rules = try #require(role["rules"] as? [[String: Any]])
        func allowed(_ group: String, _ resource: String, _ verb: String) -> Bool {
            rules.contains { rule in
                (rule["apiGroups"] as? [String])?.contains(group) == true
                    && (rule["resources"] as? [String])?.contains(resource) == true
                    && (rule["verbs"] as? [String])?.contains(verb) == true
            }
        }
        let config = try #require(try Yams.load(yaml: MonitoringStack.prometheusConfig(spec)) as? [String: Any])
        let jobs = try #require(config["scrape_configs"] as? [[String: Any]])
        #expect(jobs.count >= 7)
        for job in jobs {
            let jobName = job["job_name"] as? String ?? "?"
            for sd in job["kubernetes_sd_configs"] as? [[String: Any]] ?? [] {
                let role = try #require(sd["role"] as? String)
                let needs = try #require(Self.discoveryNeeds[role], "unknown role \(role)")
                for need in needs {
                    for verb in ["list", "watch"] {
                        #expect(allowed(need.group, need.resource, verb), "\(jobName): \(verb) \(need.resource)")
                    }
                }
                // Scraping the kubelet (nodes, cAdvisor) is authorized as nodes/metrics.
                if role == "node" { #expect(allowed("", "nodes/metrics", "get"), "\(jobName)") }
            }
            if jobName == "kubernetes-apiservers" {
                #expect(rules.contains { ($0["nonResourceURLs"] as? [String])?.contains("/metrics") == true })
            }
        }
        // The Deployment runs as the bound ServiceAccount.
        let binding = try #require(documents.first { kind($0) == "ClusterRoleBinding" && name($0) == "prometheus" })
        let deployment = try #require(documents.first { kind($0) == "Deployment" && name($0) == "prometheus" })
        let subject = try #require((binding["subjects"] as? [[String: Any]])?.first)
        #expect(subject["name"] as? String == podSpec(deployment)?["serviceAccountName"] as? String)
        #expect(subject["namespace"] as? String == "monitoring")
        #expect(value(binding, "roleRef", "name") as? String == "prometheus")
    }

    @Test func prometheusHasTheK3sScrapeJobsAndNoneThatIsAlwaysDown() throws {
        let config = try #require(try Yams.load(yaml: MonitoringStack.prometheusConfig(spec)) as? [String: Any])
        let names = Set((config["scrape_configs"] as? [[String: Any]] ?? []).compactMap { $0["job_name"] as? String })
        #expect(
            names == [
                "prometheus", "kubernetes-apiservers", "kubernetes-nodes", "kubernetes-cadvisor", "kubernetes-pods",
                "node-exporter", "kube-state-metrics",
            ])
        for absent in ["scheduler", "controller-manager", "proxy", "etcd"] {
            #expect(!names.contains { $0.contains(absent) })
        }
        // The exporters' jobs keep the Services the manifests define, by port name.
        let keeps = (config["scrape_configs"] as? [[String: Any]] ?? []).flatMap {
            ($0["relabel_configs"] as? [[String: Any]] ?? []).filter { $0["action"] as? String == "keep" }
        }.compactMap { $0["regex"] as? String }
        #expect(keeps.contains("node-exporter;metrics"))
        #expect(keeps.contains("kube-state-metrics;http-metrics"))
        #expect(keeps.contains("kubernetes;https"))
    }

    @Test func theShoalDashboardShipsInTheDashboardsConfigMapOnTheProvisionedDatasource() throws {
        let documents = try allDocuments(MonitoringStack.render(spec)).map(\.doc)
        let dashboards = try #require(
            documents.first { name($0) == "grafana-dashboards" }?["data"] as? [String: String])
        let json = try #require(dashboards[MonitoringStack.shoalDashboardFile], "\(dashboards.keys)")
        let dashboard = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(dashboard["uid"] as? String == "shoal")
        #expect(!json.contains("${datasource}"), "bound to the provisioned datasource")
        let variables = (value(dashboard, "templating", "list") as? [[String: Any]]) ?? []
        #expect(variables.map { $0["name"] as? String } == ["job"])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        let expressions = panels.flatMap {
            ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String }
        }
        for family in ["shoal_workflows", "shoal_step_duration_seconds_bucket", "shoal_agents", "shoal_ready_steps"] {
            #expect(expressions.contains { $0.contains(family) }, "\(family)")
        }

        // The file in contrib/ (to import into a Grafana of one's own) is what the executable carries, byte for byte.
        let contrib = try Data(contentsOf: URL(fileURLWithPath: packageRoot + "/contrib/grafana/shoal-dashboard.json"))
        let shipped = try #require(try JSONSerialization.jsonObject(with: contrib) as? NSDictionary)
        let embedded = try #require(
            try JSONSerialization.jsonObject(with: Data(MonitoringStack.shoalDashboardSource.utf8)) as? NSDictionary)
        #expect(shipped == embedded, "contrib/grafana/shoal-dashboard.json and MonitoringStack.shoalDashboardSource")
        #expect(Data(MonitoringStack.shoalDashboardSource.utf8) == contrib)

        // A change of the dashboard rolls Grafana: the ConfigMap's digest is in the pod template.
        let grafana = try #require(documents.first { kind($0) == "Deployment" && name($0) == "grafana" })
        #expect(value(grafana, "spec", "template", "metadata", "annotations", "checksum/config") is String)
    }

    @Test func theCoordinatorIsScrapedOnlyWhenItsMetricsEndpointIsGiven() throws {
        func jobs(_ spec: MonitoringStackSpec) throws -> [[String: Any]] {
            let config = try #require(try Yams.load(yaml: MonitoringStack.prometheusConfig(spec)) as? [String: Any])
            return config["scrape_configs"] as? [[String: Any]] ?? []
        }
        #expect(!(try jobs(spec)).contains { $0["job_name"] as? String == MonitoringStack.coordinatorJob })
        var scraped = spec
        scraped.coordinatorMetrics = "coordinator.lab:9464"
        let job = try #require(try jobs(scraped).first { $0["job_name"] as? String == "shoal-coordinator" })
        let targets = (job["static_configs"] as? [[String: Any]])?.first?["targets"] as? [String]
        #expect(targets == ["coordinator.lab:9464"])
        #expect(job["scrape_interval"] as? String == "15s")
    }

    @Test func kubeStateMetricsRBACCoversEveryResourceItWatches() throws {
        let documents = try allDocuments(MonitoringStack.render(spec)).map(\.doc)
        let role = try #require(documents.first { kind($0) == "ClusterRole" && name($0) == "kube-state-metrics" })
        let rules = try #require(role["rules"] as? [[String: Any]])
        let deployment = try #require(documents.first { kind($0) == "Deployment" && name($0) == "kube-state-metrics" })
        let args = containers(deployment).first?["args"] as? [String] ?? []
        let list = try #require(args.first { $0.hasPrefix("--resources=") }?.dropFirst("--resources=".count))
        let resources = list.split(separator: ",").map(String.init)
        #expect(resources.count == MonitoringStack.kubeStateMetricsResources.count)
        #expect(!resources.contains("secrets"))
        for resource in resources {
            let covered = rules.contains { rule in
                (rule["resources"] as? [String])?.contains(resource) == true
                    && Set(rule["verbs"] as? [String] ?? []).isSuperset(of: ["list", "watch"])
            }
            #expect(covered, "\(resource)")
        }
    }

    @Test func headlampHasALoginAccountBoundToTheConfiguredRole() throws {
        var custom = spec
        custom.headlampClusterRole = "view"
        let documents = try allDocuments(MonitoringStack.render(custom)).map(\.doc)
        let binding = try #require(documents.first { kind($0) == "ClusterRoleBinding" && name($0) == "headlamp-admin" })
        #expect(value(binding, "roleRef", "name") as? String == "view")
        #expect((binding["subjects"] as? [[String: Any]])?.first?["name"] as? String == "headlamp-admin")
        #expect(documents.contains { kind($0) == "ServiceAccount" && name($0) == "headlamp-admin" })
        #expect(documents.contains { kind($0) == "ServiceAccount" && name($0) == "headlamp" })
        #expect(
            MonitoringStack.headlampTokenCommand(custom) == [
                "-n", "monitoring", "create", "token", "headlamp-admin", "--duration", "24h",
            ])
    }

    @Test func aChangedPrometheusConfigurationRollsThePod() throws {
        func annotation(_ spec: MonitoringStackSpec) throws -> String? {
            let documents = try allDocuments(MonitoringStack.render(spec)).map(\.doc)
            let deployment = documents.first { kind($0) == "Deployment" && name($0) == "prometheus" }
            return value(deployment, "spec", "template", "metadata", "annotations", "checksum/config") as? String
        }
        var other = spec
        other.instance = "lab2"
        #expect(try annotation(spec) != nil)
        #expect(try annotation(spec) == annotation(spec))
        #expect(try annotation(spec) != annotation(other))
    }
}
