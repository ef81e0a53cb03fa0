import Foundation
import ShoalSupport

/// The Helm charts the simulated cluster knows. Charts cannot be fetched offline, so for an Application whose source
/// is a chart the simulated Argo CD checks the repository, the chart and the exact version against this list (and
/// that the values files it names exist in git); it does not render the chart.
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
    ]

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
