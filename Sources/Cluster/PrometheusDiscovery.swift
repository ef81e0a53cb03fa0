import Foundation

/// What Prometheus would report at `/api/v1/targets` in the simulated cluster: its configuration (read from the
/// ConfigMaps its pod mounts), service discovery over the model (static, node, pod, endpoints, endpointslice,
/// service roles), `keep`/`drop`/`replace`/`labelmap` relabeling, and a target is up when what it points at is
/// running and ready.
struct PrometheusDiscovery {
    var cluster: SimulatedCluster
    var pods: [SimulatedPod]

    private struct Candidate {
        var labels: [String: String]
        var up: Bool
        var error: String
    }

    func targetsJSON(for prometheus: SimulatedPod) -> String {
        let config = configuration(of: prometheus)
        let global = config?["global"]
        var active: [ManifestValue] = []
        var droppedCounts: [String: ManifestValue] = [:]
        let jobs = config?["scrape_configs"]?.array ?? [.object(["job_name": .string("prometheus")])]
        let now = ISO8601DateFormatter().string(from: Date())
        for job in jobs {
            guard let name = job["job_name"]?.string else { continue }
            let interval = job["scrape_interval"]?.string ?? global?["scrape_interval"]?.string ?? "1m"
            let timeout = job["scrape_timeout"]?.string ?? global?["scrape_timeout"]?.string ?? "10s"
            var base: [String: String] = [
                "job": name, "__metrics_path__": job["metrics_path"]?.string ?? "/metrics",
                "__scheme__": job["scheme"]?.string ?? "http",
                "__scrape_interval__": interval, "__scrape_timeout__": timeout,
            ]
            if config == nil { base["__address__"] = "localhost:9090" }
            var candidates = discover(job, base: base, prometheus: prometheus)
            if config == nil {
                candidates = [Candidate(labels: base, up: true, error: "")]
            }
            var dropped = 0
            for candidate in candidates {
                guard let labels = Self.relabel(candidate.labels, job["relabel_configs"]?.array ?? []),
                    let address = labels["__address__"]
                else {
                    dropped += 1
                    continue
                }
                var visible = labels.filter { !$0.key.hasPrefix("__") }
                visible["instance"] = visible["instance"] ?? address
                let url = "\(labels["__scheme__"] ?? "http")://\(address)\(labels["__metrics_path__"] ?? "/metrics")"
                active.append(
                    .object([
                        "discoveredLabels": .object(candidate.labels.mapValues(ManifestValue.string)),
                        "labels": .object(visible.mapValues(ManifestValue.string)),
                        "scrapePool": .string(name),
                        "scrapeUrl": .string(url),
                        "globalUrl": .string(url),
                        "lastError": .string(candidate.up ? "" : candidate.error),
                        "lastScrape": .string(now),
                        "lastScrapeDuration": .double(candidate.up ? 0.004 : 0),
                        "health": .string(candidate.up ? "up" : "down"),
                        "scrapeInterval": .string(interval),
                        "scrapeTimeout": .string(timeout),
                    ]))
            }
            droppedCounts[name] = .int(dropped)
        }
        let response: ManifestValue = .object([
            "status": .string("success"),
            "data": .object([
                "activeTargets": .array(active), "droppedTargets": .array([]),
                "droppedTargetCounts": .object(droppedCounts),
            ]),
        ])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return (try? encoder.encode(response)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// The first `prometheus.yml`-like document (one with `scrape_configs`) in a ConfigMap the pod mounts.
    private func configuration(of prometheus: SimulatedPod) -> ManifestValue? {
        for name in prometheus.configMapVolumes {
            let key = SimulatedCluster.key(kind: "ConfigMap", namespace: prometheus.pod.namespace, name: name)
            for (_, text) in (cluster.objects[key]?.body["data"]?.stringMap ?? [:]).sorted(by: { $0.key < $1.key }) {
                if let document = try? ManifestParser.compose(text, source: name).first,
                    document["scrape_configs"] != nil
                {
                    return document
                }
            }
        }
        return nil
    }

    private func discover(_ job: ManifestValue, base: [String: String], prometheus: SimulatedPod) -> [Candidate] {
        var result: [Candidate] = []
        for group in job["static_configs"]?.array ?? [] {
            let extra = group["labels"]?.stringMap ?? [:]
            for target in group["targets"]?.array?.compactMap(\.string) ?? [] {
                let (up, error) = reachable(target, from: prometheus)
                result.append(
                    Candidate(
                        labels: base.merging(extra) { $1 }.merging(["__address__": target]) { $1 }, up: up, error: error
                    ))
            }
        }
        for sd in job["kubernetes_sd_configs"]?.array ?? [] {
            let names = sd["namespaces", "names"]?.array?.compactMap(\.string)
            func inScope(_ namespace: String?) -> Bool { names == nil || names!.contains(namespace ?? "") }
            switch sd["role"]?.string ?? "" {
            case "node":
                for node in cluster.nodes {
                    var labels = base
                    labels["__address__"] = "\(node.internalIP):10250"
                    labels["__meta_kubernetes_node_name"] = node.name
                    labels["__meta_kubernetes_node_address_InternalIP"] = node.internalIP
                    for role in node.roles {
                        labels["__meta_kubernetes_node_label_node_role_kubernetes_io_\(role)"] = "true"
                    }
                    labels["__meta_kubernetes_node_label_kubernetes_io_hostname"] = node.name
                    result.append(
                        Candidate(
                            labels: labels, up: node.ready,
                            error: "Get \"https://\(node.internalIP):10250/metrics\": context deadline exceeded"))
                }
            case "pod":
                for pod in pods where inScope(pod.pod.namespace) && !pod.ip.isEmpty && !pod.pod.completed {
                    var labels = base.merging(podLabels(pod)) { $1 }
                    let ports = pod.containerPorts.isEmpty ? [(name: String?.none, port: 0)] : pod.containerPorts
                    for port in ports {
                        labels["__address__"] = port.port == 0 ? pod.ip : "\(pod.ip):\(port.port)"
                        labels["__meta_kubernetes_pod_container_port_number"] = port.port == 0 ? nil : String(port.port)
                        labels["__meta_kubernetes_pod_container_port_name"] = port.name
                        result.append(Candidate(labels: labels, up: pod.pod.healthy, error: connectionRefused(labels)))
                    }
                }
            case "endpoints", "endpointslice":
                let prefix =
                    sd["role"]?.string == "endpoints"
                    ? "__meta_kubernetes_endpoints" : "__meta_kubernetes_endpointslice"
                for service in cluster.objects(kind: "Service") where inScope(service.namespace) {
                    let selector = service.body["spec", "selector"]?.stringMap ?? [:]
                    for port in service.body["spec", "ports"]?.array ?? [] {
                        var labels = base
                        labels["__meta_kubernetes_namespace"] = service.namespace
                        labels["__meta_kubernetes_service_name"] = service.name
                        labels["\(prefix)_port_name"] = port["name"]?.string ?? ""
                        if service.namespace == "default" && service.name == "kubernetes" {
                            for node in cluster.nodes where node.roles.contains("control-plane") {
                                labels["__address__"] = "\(node.internalIP):6443"
                                result.append(
                                    Candidate(labels: labels, up: node.ready, error: connectionRefused(labels)))
                            }
                            continue
                        }
                        guard !selector.isEmpty else { continue }
                        for pod in pods
                        where pod.pod.namespace == service.namespace && !pod.ip.isEmpty
                            && selector.allSatisfy({ pod.pod.labels[$0.key] == $0.value })
                        {
                            let target = port["targetPort"]
                            let number =
                                target?.int
                                ?? pod.containerPorts.first { $0.name == target?.string }?.port
                                ?? port["port"]?.int ?? 0
                            var podTarget = labels.merging(podLabels(pod)) { $1 }
                            podTarget["__address__"] = "\(pod.ip):\(number)"
                            podTarget[
                                "\(prefix == "__meta_kubernetes_endpoints" ? "__meta_kubernetes_endpoint" : prefix + "_endpoint_conditions")_ready"
                            ] =
                                pod.pod.healthy ? "true" : "false"
                            result.append(
                                Candidate(labels: podTarget, up: pod.pod.healthy, error: connectionRefused(podTarget)))
                        }
                    }
                }
            case "service":
                for service in cluster.objects(kind: "Service") where inScope(service.namespace) {
                    let ready = !cluster.endpoints(of: service, pods: pods).isEmpty
                    for port in service.body["spec", "ports"]?.array ?? [] {
                        var labels = base
                        let address = "\(service.name).\(service.namespace ?? "default").svc:\(port["port"]?.int ?? 0)"
                        labels["__address__"] = address
                        labels["__meta_kubernetes_namespace"] = service.namespace
                        labels["__meta_kubernetes_service_name"] = service.name
                        labels["__meta_kubernetes_service_port_name"] = port["name"]?.string ?? ""
                        result.append(Candidate(labels: labels, up: ready, error: connectionRefused(labels)))
                    }
                }
            default:
                continue
            }
        }
        return result
    }

    private func podLabels(_ pod: SimulatedPod) -> [String: String] {
        var labels: [String: String] = [
            "__meta_kubernetes_namespace": pod.pod.namespace,
            "__meta_kubernetes_pod_name": pod.pod.name,
            "__meta_kubernetes_pod_phase": pod.pod.phase,
            "__meta_kubernetes_pod_ready": pod.pod.ready ? "true" : "false",
            "__meta_kubernetes_pod_ip": pod.ip,
            "__meta_kubernetes_pod_node_name": pod.pod.nodeName ?? "",
        ]
        for (key, value) in pod.annotations {
            labels["__meta_kubernetes_pod_annotation_\(Self.sanitize(key))"] = value
            labels["__meta_kubernetes_pod_annotationpresent_\(Self.sanitize(key))"] = "true"
        }
        for (key, value) in pod.pod.labels {
            labels["__meta_kubernetes_pod_label_\(Self.sanitize(key))"] = value
            labels["__meta_kubernetes_pod_labelpresent_\(Self.sanitize(key))"] = "true"
        }
        return labels
    }

    private func connectionRefused(_ labels: [String: String]) -> String {
        let address = labels["__address__"] ?? ""
        return
            "Get \"http://\(address)\(labels["__metrics_path__"] ?? "/metrics")\": dial tcp \(address): connect: connection refused"
    }

    /// A static target: `localhost` is Prometheus itself; other hosts must be a Service with ready endpoints.
    private func reachable(_ target: String, from prometheus: SimulatedPod) -> (Bool, String) {
        let parts = target.split(separator: ":")
        let host = parts.first.map(String.init) ?? target
        let refused = "Get \"http://\(target)/metrics\": dial tcp \(target): connect: connection refused"
        if host == "localhost" || host == "127.0.0.1" {
            let port = parts.count > 1 ? Int(parts[1]) : nil
            return (port == nil || prometheus.containerPorts.contains { $0.port == port }, refused)
        }
        let labels = host.split(separator: ".").map(String.init)
        let name = labels.first ?? host
        let namespace = labels.count > 1 ? labels[1] : prometheus.pod.namespace
        guard let service = cluster.objects[SimulatedCluster.key(kind: "Service", namespace: namespace, name: name)]
        else {
            return (false, "Get \"http://\(target)/metrics\": dial tcp: lookup \(host) on 10.43.0.10:53: no such host")
        }
        return (!cluster.endpoints(of: service, pods: pods).isEmpty, refused)
    }

    static func sanitize(_ name: String) -> String {
        String(name.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
    }

    /// Applies relabel rules; nil when a `keep` or `drop` rule removes the target.
    static func relabel(_ input: [String: String], _ rules: [ManifestValue]) -> [String: String]? {
        var labels = input
        for rule in rules {
            let action = rule["action"]?.string?.lowercased() ?? "replace"
            let sources = rule["source_labels"]?.array?.compactMap(\.string) ?? []
            let separator = rule["separator"]?.string ?? ";"
            let pattern = rule["regex"]?.string ?? "(.*)"
            guard let regex = try? NSRegularExpression(pattern: "^(?:\(pattern))$") else { continue }
            let value = sources.map { labels[$0] ?? "" }.joined(separator: separator)
            let match = regex.firstMatch(in: value, range: NSRange(value.startIndex..., in: value))
            let replacement = (rule["replacement"]?.string ?? "$1").replacingOccurrences(of: "${", with: "$")
                .replacingOccurrences(of: "}", with: "")
            switch action {
            case "keep":
                if match == nil { return nil }
            case "drop":
                if match != nil { return nil }
            case "replace":
                guard let match, let target = rule["target_label"]?.string else { continue }
                let result = regex.replacementString(for: match, in: value, offset: 0, template: replacement)
                labels[target] = result.isEmpty ? nil : result
            case "labelmap":
                for (name, labelValue) in labels {
                    guard let nameMatch = regex.firstMatch(in: name, range: NSRange(name.startIndex..., in: name))
                    else { continue }
                    labels[regex.replacementString(for: nameMatch, in: name, offset: 0, template: replacement)] =
                        labelValue
                }
            case "labeldrop":
                labels = labels.filter {
                    regex.firstMatch(in: $0.key, range: NSRange($0.key.startIndex..., in: $0.key)) == nil
                }
            case "labelkeep":
                labels = labels.filter {
                    regex.firstMatch(in: $0.key, range: NSRange($0.key.startIndex..., in: $0.key)) != nil
                }
            default:
                continue
            }
        }
        return labels
    }
}
