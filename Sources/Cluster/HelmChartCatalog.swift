import Foundation
import GitOps
import ShoalSupport

/// The Helm charts the simulated cluster knows. Charts cannot be fetched offline, so for an Application whose source
/// is a chart the simulated Argo CD checks the repository, the chart and the exact version against this list (and
/// that the values files it names exist in git); it does not render the chart, except the monitoring charts of
/// `MonitoringHelm`, for which it deploys the workloads shoal's own manifests define (`MonitoringHelm.model`).
public enum HelmChartCatalog {
    /// One known chart release.
    public struct Entry: Sendable, Equatable {
        public var repository: String
        public var chart: String
        public var versions: [String]
    }

    public static let entries: [Entry] = [
        Entry(repository: "https://stefanprodan.github.io/podinfo", chart: "podinfo", versions: ["6.7.1"]),
        Entry(repository: "https://charts.jetstack.io", chart: "cert-manager", versions: ["v1.16.1"]),
        Entry(
            repository: "https://kubernetes.github.io/ingress-nginx", chart: "ingress-nginx", versions: ["4.11.3"]),
    ] + MonitoringHelm.charts.map { Entry(repository: $0.repository, chart: $0.chart, versions: [$0.version]) }

    /// Why the release is not known, or nil when it is.
    public static func problem(repository: String, chart: String, version: String) -> String? {
        let repository = repository.hasSuffix("/") ? String(repository.dropLast()) : repository
        guard let entry = entries.first(where: { $0.repository == repository && $0.chart == chart }) else {
            return "chart \(chart) is not in repository \(repository) (known to the simulated cluster: "
                + entries.map { "\($0.chart) from \($0.repository)" }.joined(separator: ", ") + ")"
        }
        guard entry.versions.contains(version) else {
            return "chart \(chart) version \(version) not found in \(repository) (known: "
                + entry.versions.joined(separator: ", ") + ")"
        }
        return nil
    }
}

extension SimulatedCluster {
    /// Syncs an Application whose first source is a Helm chart: the release must be in `HelmChartCatalog` and every
    /// `$ref/...` values file must exist in the source that `ref` names.
    /// - Returns: nil when in sync, else the reason (it names the Application's file).
    func helmProblem(_ app: StoredObject, gitSource: any GitSource) async -> String? {
        let sources = app.body["spec", "sources"]?.array ?? (app.body["spec", "source"].map { [$0] } ?? [])
        guard let chartSource = sources.first(where: { $0["chart"] != nil }),
            let chart = chartSource["chart"]?.string, let repository = chartSource["repoURL"]?.string
        else { return "\(app.source): no chart source" }
        let version = chartSource["targetRevision"]?.string ?? ""
        if let problem = HelmChartCatalog.problem(repository: repository, chart: chart, version: version) {
            return "\(app.source): \(problem)"
        }
        for file in (chartSource["helm", "valueFiles"]?.array ?? []).compactMap(\.string) {
            guard file.hasPrefix("$"), let slash = file.firstIndex(of: "/") else { continue }
            let ref = String(file[file.index(after: file.startIndex)..<slash])
            let path = String(file[file.index(after: slash)...])
            guard let values = sources.first(where: { $0["ref"]?.string == ref }),
                let repoURL = values["repoURL"]?.string
            else { return "\(app.source): no source with ref \(ref) for \(file)" }
            let revision = values["targetRevision"]?.string ?? "HEAD"
            let directory = (path as NSString).deletingLastPathComponent
            let files = (try? await gitSource.files(repoURL: repoURL, revision: revision, path: directory)) ?? []
            guard let text = files.first(where: { $0.path == path })?.contents else {
                return "\(app.source): values file \(path) does not exist in \(repoURL)"
            }
            do {
                _ = try ManifestParser.compose(text, source: path)
            } catch {
                return "\(path): \(error)"
            }
        }
        return nil
    }
}

extension SimulatedCluster {
    /// The objects a known monitoring chart of `MonitoringHelm` yields: the workloads shoal's manifests define,
    /// configured from the Application (namespace, the cluster in `app.kubernetes.io/instance`) and its first values
    /// file (images, retention, the coordinator's scrape target). Nil for any other chart, which is not rendered.
    /// - Throws: `ShoalError(.invalidInput)` naming the values file when it does not parse.
    func helmModel(_ app: StoredObject, gitSource: any GitSource) async throws -> [Manifest]? {
        let sources = app.body["spec", "sources"]?.array ?? (app.body["spec", "source"].map { [$0] } ?? [])
        guard let chartSource = sources.first(where: { $0["chart"] != nil }),
            let chart = MonitoringHelm.charts.first(where: {
                $0.chart == chartSource["chart"]?.string && $0.version == chartSource["targetRevision"]?.string
                    && $0.repository == chartSource["repoURL"]?.string
            })
        else { return nil }
        let namespace = app.body["spec", "destination", "namespace"]?.string ?? "default"
        var spec = MonitoringStackSpec(
            instance: app.body["metadata", "labels", "app.kubernetes.io/instance"]?.string ?? app.name)
        spec.namespace = namespace
        var values: ManifestValue = .null
        if let file = chartSource["helm", "valueFiles"]?.array?.first?.string, file.hasPrefix("$"),
            let slash = file.firstIndex(of: "/")
        {
            let ref = String(file[file.index(after: file.startIndex)..<slash])
            let path = String(file[file.index(after: slash)...])
            if let source = sources.first(where: { $0["ref"]?.string == ref }),
                let repoURL = source["repoURL"]?.string
            {
                let files = try await gitSource.files(
                    repoURL: repoURL, revision: source["targetRevision"]?.string ?? "HEAD",
                    path: (path as NSString).deletingLastPathComponent)
                if let text = files.first(where: { $0.path == path })?.contents {
                    values = try ManifestParser.compose(text, source: path).first ?? .null
                }
            }
        }
        func tag(_ value: ManifestValue?, _ fallback: String) -> String {
            value?["tag"]?.string.flatMap { MonitoringStack.isPinnedTag($0) ? $0 : nil } ?? fallback
        }
        switch chart.component {
        case "prometheus":
            spec.prometheusVersion = tag(values["server", "image"], spec.prometheusVersion)
            spec.nodeExporterVersion = tag(values["prometheus-node-exporter", "image"], spec.nodeExporterVersion)
            spec.kubeStateMetricsVersion = tag(values["kube-state-metrics", "image"], spec.kubeStateMetricsVersion)
            if let retention = values["server", "retention"]?.string { spec.prometheusRetention = retention }
            if let extra = values["extraScrapeConfigs"]?.string,
                let jobs = try? ManifestParser.compose(extra, source: "extraScrapeConfigs").first?.array
            {
                let coordinator = jobs.first { $0["job_name"]?.string == MonitoringStack.coordinatorJob }
                spec.coordinatorMetrics = coordinator?["static_configs"]?.array?.first?["targets"]?.array?.first?.string
            }
        case "grafana":
            spec.grafanaVersion = tag(values["image"], spec.grafanaVersion)
            if let secret = values["admin", "existingSecret"]?.string { spec.grafanaAdminSecretName = secret }
        default:
            spec.headlampVersion = tag(values["image"], spec.headlampVersion)
        }
        guard let text = MonitoringHelm.model(component: chart.component, spec: spec) else { return nil }
        var manifests = try ManifestParser.parse(text, source: chart.valuesPath)
        // The values' replicas and resources of the chart's main workload, as the chart's templates would set them.
        let (workload, settings): (String, ManifestValue) =
            switch chart.component {
            case "prometheus": ("prometheus", values["server"] ?? .null)
            default: (chart.component, values)
            }
        for index in manifests.indices
        where manifests[index].kind == "Deployment" && manifests[index].name == workload {
            manifests[index].body = Self.overriding(
                manifests[index].body, replicas: (settings["replicaCount"] ?? settings["replicas"])?.int,
                resources: settings["resources"])
        }
        return manifests
    }

    /// A Deployment with `spec.replicas` and its first container's `resources` replaced (when given).
    static func overriding(_ body: ManifestValue, replicas: Int?, resources: ManifestValue?) -> ManifestValue {
        guard case .object(var root) = body, case .object(var spec) = root["spec"] ?? .null else { return body }
        if let replicas { spec["replicas"] = .int(replicas) }
        if let resources, case .object = resources, case .object(var template) = spec["template"] ?? .null,
            case .object(var podSpec) = template["spec"] ?? .null,
            case .array(var containers) = podSpec["containers"] ?? .null, case .object(var first) = containers.first
        {
            first["resources"] = resources
            containers[0] = .object(first)
            podSpec["containers"] = .array(containers)
            template["spec"] = .object(podSpec)
            spec["template"] = .object(template)
        }
        root["spec"] = .object(spec)
        return .object(root)
    }
}
