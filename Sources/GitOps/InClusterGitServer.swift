/// The git server shoal installs inside the cluster as the GitOps source of every Application: Gitea (rootless,
/// SQLite, one pod) in its own namespace with a PersistentVolumeClaim, so the repository outlives the host that ran
/// `shoal create`. Argo CD reads it anonymously through a ClusterIP Service; shoal pushes to it from outside through
/// a NodePort with the `shoal` user's password, which lives only in a Secret of the cluster and in a 0600 file of
/// the output tree. A push to a missing repository creates it, public (readable without credentials, as Argo CD
/// reads it), as Gitea's push-to-create does.
public enum InClusterGitServer {
    /// Pinned: a release tag, never `latest`.
    public static let image = "docker.gitea.com/gitea:1.25.4-rootless"
    public static let namespace = "shoal-gitops"
    /// The ClusterIP Service the Applications' repoURL names.
    public static let service = "shoal-git"
    /// The NodePort Service shoal pushes through.
    public static let pushService = "shoal-git-push"
    public static let nodePort = 30418
    public static let containerPort = 3000
    /// The Gitea user owning the repositories, and the user name of a push.
    public static let user = "shoal"
    /// The Secret holding the user's password (key `password`).
    public static let secret = "shoal-git-push"
    public static let deployment = "shoal-git"

    /// The in-cluster name of the server (what Argo CD's repo-server resolves).
    public static var host: String { "\(service).\(namespace).svc.cluster.local" }

    /// The repoURL of a workflow's repository, as the cluster reaches it.
    public static func repoURL(workflow: String) -> String { "http://\(host)/\(repositoryPath(workflow: workflow))" }

    /// The repository's path on the server.
    public static func repositoryPath(workflow: String) -> String { "\(user)/\(workflow).git" }

    /// Where shoal pushes from outside the cluster: a node address and the NodePort, or a base URL given by the
    /// operator (a `kubectl port-forward`, say).
    public static func pushURL(workflow: String, nodeAddress: String) -> String {
        let host = nodeAddress.contains(":") && !nodeAddress.hasPrefix("[") ? "[\(nodeAddress)]" : nodeAddress
        return "http://\(host):\(nodePort)/\(repositoryPath(workflow: workflow))"
    }

    /// `base` (`http://127.0.0.1:8080`) joined with the repository's path.
    public static func pushURL(workflow: String, base: String) -> String {
        var trimmed = base
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        return "\(trimmed)/\(repositoryPath(workflow: workflow))"
    }

    /// Whether a repoURL names this server.
    public static func isInCluster(_ repoURL: String) -> Bool {
        repoURL.hasPrefix("http://\(host)/") || repoURL.hasPrefix("http://\(service).\(namespace).svc/")
    }

    /// The Secret with the push password: applied to the cluster only, never committed.
    public static func secretManifest(password: String) -> String {
        let secret: YAML = [
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": ["name": .string(Self.secret), "namespace": .string(namespace), "labels": labels],
            "type": "Opaque",
            "stringData": ["password": .string(password)],
        ]
        return secret.document()
    }

    private static var labels: YAML {
        [
            "app.kubernetes.io/name": .string(deployment), "app.kubernetes.io/part-of": "shoal-gitops",
            "app.kubernetes.io/managed-by": "shoal",
        ]
    }

    private static func metadata(_ name: String, namespaced: Bool = true) -> YAML {
        namespaced
            ? ["name": .string(name), "namespace": .string(namespace), "labels": labels]
            : ["name": .string(name), "labels": labels]
    }

    private static var environment: [YAML] {
        let settings: [(String, String)] = [
            ("GITEA__security__INSTALL_LOCK", "true"),
            ("GITEA__database__DB_TYPE", "sqlite3"),
            ("GITEA__server__ROOT_URL", "http://\(host)/"),
            ("GITEA__server__HTTP_PORT", String(containerPort)),
            ("GITEA__server__DISABLE_SSH", "true"),
            ("GITEA__service__DISABLE_REGISTRATION", "true"),
            ("GITEA__service__REQUIRE_SIGNIN_VIEW", "false"),
            ("GITEA__repository__ENABLE_PUSH_CREATE_USER", "true"),
            ("GITEA__repository__DEFAULT_PUSH_CREATE_PRIVATE", "false"),
            ("GITEA__repository__DEFAULT_BRANCH", "main"),
            // A push webhook may call Argo CD's in-cluster endpoint (Gitea refuses private hosts by default).
            ("GITEA__webhook__ALLOWED_HOST_LIST", ArgoCDWebhook.host),
        ]
        return settings.map { ["name": .string($0.0), "value": .string($0.1)] }
    }

    private static var mounts: YAML {
        [
            ["name": "data", "mountPath": "/var/lib/gitea", "subPath": "data"],
            ["name": "data", "mountPath": "/etc/gitea", "subPath": "config"],
        ]
    }

    private static func service(_ name: String, nodePort: Int?) -> YAML {
        var port: [(String, YAML)] = [("name", "http"), ("port", 80), ("targetPort", "http")]
        if let nodePort { port.append(("nodePort", .int(nodePort))) }
        return [
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(name),
            "spec": [
                "type": nodePort == nil ? "ClusterIP" : "NodePort",
                "selector": ["app.kubernetes.io/name": .string(deployment)],
                "ports": [.pairs(port)],
            ],
        ]
    }

    /// Namespace, claim, Deployment and both Services. The first start creates the `shoal` user with the Secret's
    /// password (an init container); later starts find the user and leave it as it is.
    public static func manifests() -> String {
        // docker-setup.sh writes app.ini from the GITEA__ variables; a user that exists already (a restart) is kept.
        let createUser =
            "/usr/local/bin/docker-setup.sh && gitea migrate && "
            + "(gitea admin user create --username \(user) --password \"$PUSH_PASSWORD\" "
            + "--email \(user)@shoal.invalid --must-change-password=false || gitea admin user list | grep -qw \(user))"
        let security: YAML = ["allowPrivilegeEscalation": false]
        let probe: YAML = ["httpGet": ["path": "/api/healthz", "port": "http"], "periodSeconds": 5]
        let pod: YAML = [
            "securityContext": ["runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000],
            "initContainers": [
                [
                    "name": "create-user",
                    "image": .string(image),
                    "command": ["/bin/sh", "-c", .string(createUser)],
                    "env": .list(
                        environment + [
                            [
                                "name": "PUSH_PASSWORD",
                                "valueFrom": ["secretKeyRef": ["name": .string(secret), "key": "password"]],
                            ]
                        ]),
                    "volumeMounts": mounts,
                    "securityContext": security,
                    "resources": [
                        "requests": ["cpu": "50m", "memory": "64Mi"], "limits": ["cpu": "500m", "memory": "256Mi"],
                    ],
                ]
            ],
            "containers": [
                [
                    "name": "gitea",
                    "image": .string(image),
                    "env": .list(environment),
                    "ports": [["name": "http", "containerPort": .int(containerPort)]],
                    "volumeMounts": mounts,
                    "readinessProbe": probe,
                    "livenessProbe": [
                        "httpGet": ["path": "/api/healthz", "port": "http"], "initialDelaySeconds": 30,
                        "periodSeconds": 20,
                    ],
                    "securityContext": security,
                    "resources": [
                        "requests": ["cpu": "50m", "memory": "128Mi"], "limits": ["cpu": "1", "memory": "512Mi"],
                    ],
                ]
            ],
            "volumes": [["name": "data", "persistentVolumeClaim": ["claimName": .string("\(deployment)-data")]]],
        ]
        let documents: [YAML] = [
            ["apiVersion": "v1", "kind": "Namespace", "metadata": metadata(namespace, namespaced: false)],
            [
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": metadata("\(deployment)-data"),
                "spec": ["accessModes": ["ReadWriteOnce"], "resources": ["requests": ["storage": "1Gi"]]],
            ],
            [
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": metadata(deployment),
                "spec": [
                    "replicas": 1,
                    "strategy": ["type": "Recreate"],
                    "selector": ["matchLabels": ["app.kubernetes.io/name": .string(deployment)]],
                    "template": ["metadata": ["labels": labels], "spec": pod],
                ],
            ],
            service(service, nodePort: nil),
            service(pushService, nodePort: nodePort),
        ]
        return YAML.stream(documents)
    }
}
