import Foundation
import ShoalSupport

/// Many clusters under one Argo CD: the cluster Secrets shoal applies (never commits) and the two ApplicationSets it
/// commits to the fleet cluster's repository.
///
/// The fleet is the cluster whose Argo CD deploys to the others; each joined cluster is a member. Every cluster of the
/// fleet has a cluster Secret in the fleet's `argocd` namespace labelled `shoal.dev/fleet: FLEET`, the fleet's own
/// cluster (`https://kubernetes.default.svc`) included, since Argo CD's cluster generator matches the local cluster
/// by labels only through such a Secret. `shoal.dev/fleet-role` tells the fleet (`fleet`) from its members
/// (`member`).
///
/// - `apps/fleet-monitoring.yaml`: a `clusters` generator over every cluster of the fleet deploys the monitoring
///   stack to each (`monitoring-NAME`); it replaces `apps/monitoring.yaml` once the first member joins.
/// - `apps/fleet-applications.yaml`: a `matrix` of the members and a `list` of the user applications of `apps/`,
///   which shoal rewrites whenever a member joins or an application is added or removed (`NAME-CLUSTER`). The
///   fleet's own cluster gets those applications from `apps/NAME.yaml` already.
///
/// Both use Go templates (`goTemplate: true`, `missingkey=error`): `{{.name}}`, `{{.server}}`, `{{.app}}`.
public enum FleetApplicationSets {
    /// The label naming the fleet a cluster Secret belongs to.
    public static let fleetLabel = "shoal.dev/fleet"
    /// `fleet` for the fleet's own cluster, `member` for a joined one.
    public static let roleLabel = "shoal.dev/fleet-role"
    /// Argo CD reads Secrets with this label as clusters.
    public static let secretTypeLabel = "argocd.argoproj.io/secret-type"
    /// Argo CD's address of the cluster it runs in.
    public static let inClusterServer = "https://kubernetes.default.svc"
    /// The monitoring stack's ApplicationSet.
    public static let monitoringPath = "apps/fleet-monitoring.yaml"
    /// The user applications' ApplicationSet.
    public static let applicationsPath = "apps/fleet-applications.yaml"
    public static let monitoringName = "fleet-monitoring"
    public static let applicationsName = "fleet-applications"

    /// How Argo CD authenticates to a cluster: a bearer token or TLS client data, and the server's CA.
    public struct Credentials: Sendable, Equatable {
        public var bearerToken: String?
        public var certData: String?
        public var keyData: String?
        public var caData: String?
        public var insecure: Bool

        public init(
            bearerToken: String? = nil, certData: String? = nil, keyData: String? = nil, caData: String? = nil,
            insecure: Bool = false
        ) {
            self.bearerToken = bearerToken
            self.certData = certData
            self.keyData = keyData
            self.caData = caData
            self.insecure = insecure
        }

        /// The Secret's `config` (JSON, as Argo CD reads it).
        var config: String {
            var tls: [String: Any] = ["insecure": insecure]
            if let caData, !insecure { tls["caData"] = caData }
            if let certData { tls["certData"] = certData }
            if let keyData { tls["keyData"] = keyData }
            var config: [String: Any] = ["tlsClientConfig": tls]
            if let bearerToken { config["bearerToken"] = bearerToken }
            let data = (try? JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// A user application as an element of the matrix's list generator.
    public struct Element: Sendable, Equatable {
        public var app: String
        public var repoURL: String
        public var path: String
        public var targetRevision: String

        public init(app: String, repoURL: String, path: String, targetRevision: String) {
            self.app = app
            self.repoURL = repoURL
            self.path = path
            self.targetRevision = targetRevision
        }
    }

    /// The name of a cluster's Secret in `argocd`.
    public static func secretName(cluster: String) -> String { "cluster-\(cluster)" }

    /// A cluster Secret: `name`, `server` and `config` as Argo CD's declarative setup describes them. It holds the
    /// credentials: shoal applies it through the fleet's cluster client and never writes it into git.
    /// - Parameters:
    ///   - fleet: the fleet's workflow id.
    ///   - cluster: the cluster's name (its workflow id), the generator's `name`.
    ///   - server: the API server's URL as the fleet's Argo CD reaches it.
    ///   - credentials: how to authenticate; nil for the fleet's own cluster (Argo CD's service account).
    /// - Throws: `ShoalError(.invalidInput)` for a name that is not a DNS label or a server that is not https.
    public static func clusterSecret(fleet: String, cluster: String, server: String, credentials: Credentials?)
        throws -> String
    {
        try Names.validateWorkflowID(fleet)
        try Names.validateWorkflowID(cluster)
        guard server.hasPrefix("https://"), server.count > 8, server.utf8.count <= 512,
            !server.unicodeScalars.contains(where: { $0.value <= 32 || $0.value == 127 })
        else {
            throw ShoalError(
                .invalidInput, "the API server '\(Names.printable(server))' of \(cluster) is not an https URL")
        }
        let role = credentials == nil ? "fleet" : "member"
        let secret: YAML = [
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": [
                "name": .string(secretName(cluster: cluster)),
                "namespace": "argocd",
                "labels": .strings([
                    secretTypeLabel: "cluster", fleetLabel: fleet, roleLabel: role,
                    "app.kubernetes.io/managed-by": "shoal",
                ]),
            ],
            "type": "Opaque",
            "stringData": [
                "name": .string(cluster),
                "server": .string(server),
                "config": .string((credentials ?? Credentials()).config),
            ],
        ]
        return secret.document()
    }

    /// `apps/fleet-monitoring.yaml`: the monitoring stack on every cluster of the fleet.
    /// - Parameters:
    ///   - fleet: the fleet's workflow id.
    ///   - repoURL: the GitOps repository as the fleet's Argo CD reaches it.
    ///   - path: the monitoring stack's directory (`monitoring` or an overlay).
    ///   - namespace: the monitoring namespace.
    public static func monitoring(fleet: String, repoURL: String, path: String, namespace: String) -> ManifestFile {
        var spec = ApplicationSpec(
            name: "monitoring-{{.name}}", repoURL: repoURL, path: path, destinationNamespace: namespace)
        spec.destinationServer = "{{.server}}"
        let generators: YAML = [["clusters": ["selector": ["matchLabels": .strings([fleetLabel: fleet])]]]]
        return ManifestFile(
            path: monitoringPath,
            contents: applicationSet(name: monitoringName, generators: generators, spec).document())
    }

    /// `apps/fleet-applications.yaml`: each user application on each member.
    /// - Parameters:
    ///   - fleet: the fleet's workflow id.
    ///   - elements: the user applications (`elements(of:gitopsRepoURL:)`).
    public static func applications(fleet: String, elements: [Element]) -> ManifestFile {
        var spec = ApplicationSpec(
            name: "{{.app}}-{{.name}}", repoURL: "{{.repoURL}}", path: "{{.path}}", destinationNamespace: "{{.app}}")
        spec.targetRevision = "{{.targetRevision}}"
        spec.destinationServer = "{{.server}}"
        let list: YAML = .list(
            elements.sorted { $0.app < $1.app }.map { element in
                [
                    "app": .string(element.app), "repoURL": .string(element.repoURL), "path": .string(element.path),
                    "targetRevision": .string(element.targetRevision),
                ]
            })
        let generators: YAML = [
            [
                "matrix": [
                    "generators": [
                        [
                            "clusters": [
                                "selector": ["matchLabels": .strings([fleetLabel: fleet, roleLabel: "member"])]
                            ]
                        ],
                        ["list": ["elements": list]],
                    ]
                ]
            ]
        ]
        return ManifestFile(
            path: applicationsPath,
            contents: applicationSet(name: applicationsName, generators: generators, spec).document())
    }

    /// The matrix's elements: the user applications whose source is a directory (of the GitOps repository or of
    /// another git repository). A chart application (two sources) has no place in the one-source template.
    public static func elements(of applications: [UserApplication], gitopsRepoURL: String) -> [Element] {
        applications.filter { $0.source.chart == nil }.map { app in
            Element(
                app: app.name, repoURL: app.source.repoURL ?? gitopsRepoURL, path: app.source.path,
                targetRevision: app.source.repoURL == nil ? "HEAD" : app.source.targetRevision)
        }
    }

    static func applicationSet(name: String, generators: YAML, _ spec: ApplicationSpec) -> YAML {
        guard case .map(let pairs) = ArgoApplications.document(spec),
            case .map(let metadata)? = pairs.first(where: { $0.key == "metadata" })?.value,
            let body = pairs.first(where: { $0.key == "spec" })?.value
        else { preconditionFailure("an Application document is a map with metadata and spec") }
        return [
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "ApplicationSet",
            "metadata": [
                "name": .string(name),
                "namespace": "argocd",
                "labels": .strings(["app.kubernetes.io/managed-by": "shoal", "app.kubernetes.io/part-of": "shoal"]),
            ],
            "spec": [
                "goTemplate": true,
                "goTemplateOptions": ["missingkey=error"],
                "generators": generators,
                "template": ["metadata": .map(metadata.filter { $0.key != "namespace" }), "spec": body],
            ],
        ]
    }
}
