/// One Argo CD Application.
public struct ApplicationSpec: Sendable {
    /// The Application's name (a DNS label).
    public var name: String
    /// Where Argo CD clones from: an address the cluster can reach.
    public var repoURL: String
    /// The directory inside the repository, e.g. `monitoring`.
    public var path: String
    public var targetRevision = "HEAD"
    /// Where the Application's resources go.
    public var destinationNamespace: String
    public var project = "default"
    /// The namespace Argo CD runs in; Applications live there.
    public var namespace = "argocd"
    public var destinationServer = "https://kubernetes.default.svc"
    /// Whether deleting the Application deletes its resources (the resources finalizer); off for Argo CD's own
    /// Application, whose deletion must not uninstall Argo CD.
    public var deletesResources = true
    /// Labels beside shoal's own on the Application.
    public var labels: [String: String] = [:]
    /// Labels Argo CD puts on the destination namespace it creates (`managedNamespaceMetadata`); none when empty.
    public var namespaceLabels: [String: String] = [:]

    public init(name: String, repoURL: String, path: String, destinationNamespace: String) {
        self.name = name
        self.repoURL = repoURL
        self.path = path
        self.destinationNamespace = destinationNamespace
    }
}

/// Argo CD Applications for the GitOps repository, in App of Apps layout.
public enum ArgoApplications {
    /// The finalizer that makes deleting an Application delete its resources.
    public static let resourcesFinalizer = "resources-finalizer.argocd.argoproj.io"
    /// The directory of child Applications in the repository.
    public static let appsDirectory = "apps"

    /// One Application as YAML: automated sync with prune and selfHeal, `CreateNamespace=true`,
    /// `ServerSideApply=true`, a bounded retry, and the resources finalizer.
    /// - Parameter spec: the Application.
    public static func application(_ spec: ApplicationSpec) -> String {
        document(spec).document()
    }

    /// The App of Apps layout: a root Application (`root-app.yaml`, applied to the cluster by shoal and kept in the
    /// repository for reference) that syncs `apps/`, and one child Application per component in `apps/<name>.yaml`.
    /// - Parameters:
    ///   - repoURL: the repository address the cluster reaches.
    ///   - components: each component's Application name, directory in the repository and namespace.
    ///   - rootName: the root Application's name.
    ///   - targetRevision: the branch, tag or commit every Application follows.
    /// - Returns: the root Application and the children, in the order of `components`.
    public static func appOfApps(
        repoURL: String,
        components: [(name: String, path: String, namespace: String)],
        rootName: String = "root",
        targetRevision: String = "HEAD"
    ) -> (root: ManifestFile, children: [ManifestFile]) {
        var root = ApplicationSpec(
            name: rootName, repoURL: repoURL, path: appsDirectory, destinationNamespace: "argocd")
        root.targetRevision = targetRevision
        let children = components.map { component in
            var child = ApplicationSpec(
                name: component.name, repoURL: repoURL, path: component.path,
                destinationNamespace: component.namespace)
            child.targetRevision = targetRevision
            return ManifestFile(path: "\(appsDirectory)/\(component.name).yaml", contents: application(child))
        }
        return (ManifestFile(path: "root-app.yaml", contents: application(root)), children)
    }

    /// - Parameter sources: `spec.sources` instead of `spec.source` (several sources: a chart and its values).
    static func document(_ spec: ApplicationSpec, sources: YAML? = nil) -> YAML {
        let source: (String, YAML) =
            sources.map { ("sources", $0) }
            ?? (
                "source",
                [
                    "repoURL": .string(spec.repoURL),
                    "targetRevision": .string(spec.targetRevision),
                    "path": .string(spec.path),
                ]
            )
        return [
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": [
                "name": .string(spec.name),
                "namespace": .string(spec.namespace),
                "labels": .strings(
                    spec.labels.merging(
                        ["app.kubernetes.io/managed-by": "shoal", "app.kubernetes.io/part-of": "shoal"]) { $1 }),
                "finalizers": spec.deletesResources ? [.string(resourcesFinalizer)] : [],
            ],
            "spec": .pairs([
                ("project", .string(spec.project)),
                source,
                (
                    "destination",
                    [
                        "server": .string(spec.destinationServer),
                        "namespace": .string(spec.destinationNamespace),
                    ]
                ),
                ("syncPolicy", syncPolicy(spec)),
            ]),
        ]
    }
}

extension ArgoApplications {
    static func syncPolicy(_ spec: ApplicationSpec) -> YAML {
        var pairs: [(String, YAML)] = [
            ("automated", ["prune": true, "selfHeal": true]),
            ("syncOptions", ["CreateNamespace=true", "ServerSideApply=true"]),
            ("retry", ["limit": 5, "backoff": ["duration": "10s", "factor": 2, "maxDuration": "3m"]]),
        ]
        if !spec.namespaceLabels.isEmpty {
            pairs.append(("managedNamespaceMetadata", ["labels": .strings(spec.namespaceLabels)]))
        }
        return .pairs(pairs)
    }
}

/// How shoal installs Argo CD: a pinned release, applied server side.
public struct ArgoCDInstall: Sendable {
    public static let defaultVersion = "v3.5.1"
    /// The NodePort of the Argo CD server (plain HTTP).
    public static let nodePort = 30080
    public static let namespace = "argocd"

    /// The release tag, e.g. `v3.5.1`.
    public var version: String
    /// A local install manifest (`--argocd-manifest`) for air-gapped installs; the release URL when nil.
    public var manifestPath: String?

    /// The release's install manifest.
    public var manifestURL: String {
        "https://raw.githubusercontent.com/argoproj/argo-cd/\(version)/manifests/install.yaml"
    }

    /// - Parameters:
    ///   - version: the Argo CD release tag.
    ///   - manifestPath: a local copy of the install manifest, used instead of the URL.
    public init(version: String = ArgoCDInstall.defaultVersion, manifestPath: String? = nil) {
        self.version = version
        self.manifestPath = manifestPath
    }

    /// kubectl argument arrays (without `kubectl` and without `--kubeconfig`), in order:
    /// 1. create the `argocd` namespace (on a re-run it fails with `AlreadyExists`; see `isAlreadyExists`),
    /// 2. server-side apply of the install manifest with `--force-conflicts` (required since Argo CD 3.3: its CRDs
    ///    are too large for client-side apply's annotation),
    /// 3. `server.insecure: "true"` in `argocd-cmd-params-cm`, so the server speaks plain HTTP,
    /// 4. a restart of `argocd-server` so that it reads that setting,
    /// 5. the `argocd-server` Service as NodePort, HTTP on 30080.
    public func kubectlSteps() -> [[String]] {
        let ns = ArgoCDInstall.namespace
        return [
            ["create", "namespace", ns],
            ["apply", "--server-side", "--force-conflicts", "-n", ns, "-f", manifestPath ?? manifestURL],
            [
                "patch", "configmap", "argocd-cmd-params-cm", "-n", ns, "--type", "merge",
                "-p", #"{"data":{"server.insecure":"true"}}"#,
            ],
            ["rollout", "restart", "deployment/argocd-server", "-n", ns],
            [
                "patch", "service", "argocd-server", "-n", ns, "--type", "strategic",
                "-p", #"{"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":\#(ArgoCDInstall.nodePort)}]}}"#,
            ],
        ]
    }

    /// kubectl argument arrays that wait until Argo CD's components are rolled out.
    /// - Parameter timeout: how long each wait may take, in kubectl's duration syntax.
    public func waitSteps(timeout: String = "300s") -> [[String]] {
        let ns = ArgoCDInstall.namespace
        return [
            "deployment/argocd-server", "deployment/argocd-repo-server", "statefulset/argocd-application-controller",
        ].map { ["rollout", "status", $0, "-n", ns, "--timeout=\(timeout)"] }
    }

    /// Whether a failed `create namespace` only says the namespace is already there.
    public static func isAlreadyExists(standardError: String) -> Bool {
        standardError.contains("AlreadyExists") || standardError.contains("already exists")
    }
}
