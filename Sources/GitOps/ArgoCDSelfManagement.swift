import ShoalSupport

/// Argo CD managed from the GitOps repository: `argocd/` is a Kustomize directory over the pinned release's install
/// manifest with shoal's two settings as patches (`server.insecure` and the NodePort of `argocd-server`), and
/// `apps/argocd.yaml` is the Application that syncs it (server-side apply, as Argo CD 3.3 and later need for their
/// large CRDs). Upgrading Argo CD is then a commit that changes the version in `argocd/kustomization.yaml`.
public enum ArgoCDSelfManagement {
    /// The directory of Argo CD's own configuration in the repository.
    public static let directory = "argocd"
    /// The name of Argo CD's own Application.
    public static let applicationName = "argocd"
    /// The file that pins the version.
    public static let kustomizationPath = "argocd/kustomization.yaml"

    /// The files of `argocd/`: `kustomization.yaml` and the two patches.
    /// - Parameter version: the Argo CD release tag, e.g. `v3.5.1`; see `ArgoCDInstall`.
    /// - Throws: `ShoalError(.invalidInput)` for a version that is not an explicit release.
    public static func files(version: String) throws -> [ManifestFile] {
        guard MonitoringStack.isPinnedTag(version) else {
            throw ShoalError(
                .invalidInput, "invalid Argo CD version '\(version.prefix(80))': give a release such as v3.5.1")
        }
        let install = ArgoCDInstall(version: version)
        let kustomization: YAML = [
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": .string(ArgoCDInstall.namespace),
            "resources": [.string(install.manifestURL)],
            "patches": [["path": "argocd-cmd-params-cm.yaml"], ["path": "argocd-server-service.yaml"]],
        ]
        let parameters: YAML = [
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": ["name": "argocd-cmd-params-cm"],
            "data": ["server.insecure": "true"],
        ]
        let service: YAML = [
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": ["name": "argocd-server"],
            "spec": [
                "type": "NodePort",
                // Kustomize merges Service ports by port and protocol: without the protocol the patch adds nothing.
                "ports": [
                    ["name": "http", "port": 80, "protocol": "TCP", "nodePort": .int(ArgoCDInstall.nodePort)]
                ],
            ],
        ]
        return [
            ManifestFile(path: kustomizationPath, contents: kustomization.document()),
            ManifestFile(path: "\(directory)/argocd-cmd-params-cm.yaml", contents: parameters.document()),
            ManifestFile(path: "\(directory)/argocd-server-service.yaml", contents: service.document()),
        ]
    }

    /// `apps/argocd.yaml`: the Application of Argo CD itself. It has no resources finalizer, so deleting it leaves
    /// Argo CD installed.
    public static func application(repoURL: String, targetRevision: String = "HEAD") -> ManifestFile {
        var spec = ApplicationSpec(
            name: applicationName, repoURL: repoURL, path: directory, destinationNamespace: ArgoCDInstall.namespace)
        spec.targetRevision = targetRevision
        spec.deletesResources = false
        return ManifestFile(
            path: "\(ArgoApplications.appsDirectory)/\(applicationName).yaml",
            contents: ArgoApplications.application(spec))
    }

    /// The version `argocd/kustomization.yaml` pins, read back from its text (the release URL in `resources`).
    public static func pinnedVersion(kustomization text: String) -> String? {
        guard let range = text.range(of: "/argoproj/argo-cd/") else { return nil }
        let rest = text[range.upperBound...]
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        let version = String(rest[..<slash])
        return MonitoringStack.isPinnedTag(version) ? version : nil
    }
}

/// Argo CD's webhook endpoint, which a git server calls on push so that Argo CD refreshes at once.
public enum ArgoCDWebhook {
    /// The in-cluster host of `argocd-server` (plain HTTP on port 80 behind `server.insecure`).
    public static let host = "argocd-server.argocd.svc"
    /// The URL a push webhook posts to.
    public static let url = "http://\(host)/api/webhook"
}
