import ShoalSupport

/// Everything the GitOps repository holds, in App of Apps layout: `root-app.yaml`, `apps/` with one Application per
/// component (the monitoring stack, Argo CD itself, each user application), `monitoring/`, `argocd/` and
/// `examples/`.
public struct RepositoryLayout: Sendable {
    /// Every file to write, the root included.
    public var files: [ManifestFile]
    /// `root-app.yaml`.
    public var root: ManifestFile
    /// `apps/*.yaml`.
    public var children: [ManifestFile]
    /// The Applications' names: `root` first, then the children's.
    public var applicationNames: [String]

    /// - Parameters:
    ///   - repoURL: the GitOps repository's address as the cluster reaches it.
    ///   - monitoring: the monitoring stack's files (`MonitoringStack.render`) and namespace.
    ///   - argoCDVersion: Argo CD's release when Argo CD manages itself from `argocd/`; nil leaves it out.
    ///   - applications: the user applications.
    ///   - examples: whether the example applications and `examples/` are included.
    ///   - monitoringPath: the monitoring Application's path (`monitoring`, or an overlay of `MonitoringKustomize`).
    ///   - monitoringApplications: the monitoring stack's own Applications (`MonitoringHelm`), which replace
    ///     `apps/monitoring.yaml`; nil for a stack of manifests.
    /// - Throws: `ShoalError(.invalidInput)` for a bad version or two applications of one name.
    public static func render(
        repoURL: String, monitoring: [ManifestFile], monitoringNamespace: String, argoCDVersion: String?,
        applications: [UserApplication] = [], examples: Bool = false, monitoringPath: String = "monitoring",
        monitoringApplications: [ManifestFile]? = nil
    ) throws -> RepositoryLayout {
        let all = (examples ? ExampleApplications.applications : []) + applications
        var seen: Set<String> = []
        for app in all where !seen.insert(app.name).inserted {
            throw ShoalError(.invalidInput, "two applications are named '\(app.name)'")
        }
        let (root, monitoringApps) = ArgoApplications.appOfApps(
            repoURL: repoURL, components: [(name: "monitoring", path: monitoringPath, namespace: monitoringNamespace)])
        var children = monitoringApplications ?? monitoringApps
        var files = monitoring
        if let argoCDVersion {
            files += try ArgoCDSelfManagement.files(version: argoCDVersion)
            children.append(ArgoCDSelfManagement.application(repoURL: repoURL))
        }
        if examples { files += ExampleApplications.files() }
        children += all.map { $0.application(gitopsRepoURL: repoURL) }
        files += all.compactMap { $0.valuesFile() }
        let names = ["root"] + children.map { String($0.path.dropFirst("apps/".count).dropLast(".yaml".count)) }
        return RepositoryLayout(files: files + children + [root], root: root, children: children, applicationNames: names)
    }
}
