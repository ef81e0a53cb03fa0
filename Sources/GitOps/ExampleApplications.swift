/// The example user applications of `--examples`: a web server, PostgreSQL and Valkey, each a plain directory under
/// `examples/` with pinned images, a Service, readiness and liveness probes, requests and limits, and non-root
/// containers.
///
/// PostgreSQL's password is not in the repository: the StatefulSet reads it from the Secret `postgres-auth`
/// (key `password`), which shoal creates in the cluster (`postgresSecret(password:)`).
public enum ExampleApplications {
    public static let webImage = "docker.io/nginxinc/nginx-unprivileged:1.27.4-alpine"
    public static let postgresImage = "docker.io/library/postgres:17.6-alpine"
    public static let valkeyImage = "docker.io/valkey/valkey:8.1.4-alpine"
    /// The Secret holding PostgreSQL's password, in the namespace `postgres`. Created in the cluster, never committed.
    public static let postgresSecretName = "postgres-auth"

    /// The three applications, their sources under `examples/`.
    public static let applications: [UserApplication] = ["web", "postgres", "valkey"].map {
        UserApplication(name: $0, source: AppSource(repoURL: nil, path: "examples/\($0)"))
    }

    /// The files under `examples/`.
    public static func files() -> [ManifestFile] {
        [
            ManifestFile(path: "examples/web/web.yaml", contents: YAML.stream(web())),
            ManifestFile(path: "examples/postgres/postgres.yaml", contents: YAML.stream(postgres())),
            ManifestFile(path: "examples/valkey/valkey.yaml", contents: YAML.stream(valkey())),
        ]
    }

    /// The PostgreSQL Secret, to apply to the cluster and NEVER commit.
    public static func postgresSecret(password: String) -> String {
        let secret: YAML = [
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": ["name": .string(postgresSecretName), "namespace": "postgres", "labels": labels("postgres")],
            "type": "Opaque",
            "stringData": ["password": .string(password)],
        ]
        return secret.document()
    }

    static func labels(_ name: String) -> YAML {
        .strings([
            "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shoal-examples",
            "app.kubernetes.io/managed-by": "shoal",
        ])
    }

    static func selector(_ name: String) -> YAML { .strings(["app.kubernetes.io/name": name]) }

    static func metadata(_ name: String) -> YAML {
        ["name": .string(name), "namespace": .string(name), "labels": labels(name)]
    }

    static func service(_ name: String, port: Int, targetPort: String) -> YAML {
        [
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(name),
            "spec": [
                "type": "ClusterIP",
                "selector": selector(name),
                "ports": [
                    ["name": .string(targetPort), "protocol": "TCP", "port": .int(port), "targetPort": .string(targetPort)]
                ],
            ],
        ]
    }

    static func exec(_ command: [String], initialDelay: Int, period: Int = 10) -> YAML {
        [
            "exec": ["command": .list(command.map { .string($0) })],
            "initialDelaySeconds": .int(initialDelay),
            "periodSeconds": .int(period),
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        ]
    }

    static func web() -> [YAML] {
        let container: YAML = [
            "name": "web",
            "image": .string(webImage),
            "ports": [["name": "http", "containerPort": 8080, "protocol": "TCP"]],
            "readinessProbe": MonitoringStack.httpProbe(path: "/", port: "http", initialDelay: 2),
            "livenessProbe": MonitoringStack.httpProbe(path: "/", port: "http", initialDelay: 10),
            "resources": MonitoringStack.resources(cpu: "25m", memory: "32Mi", cpuLimit: "200m", memoryLimit: "64Mi"),
            "securityContext": MonitoringStack.containerSecurity(),
            "volumeMounts": [["name": "tmp", "mountPath": "/tmp"]],
        ]
        let deployment: YAML = [
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata("web"),
            "spec": [
                "replicas": 2,
                "selector": ["matchLabels": selector("web")],
                "template": [
                    "metadata": ["labels": labels("web")],
                    "spec": [
                        "automountServiceAccountToken": false,
                        "securityContext": MonitoringStack.podSecurity(user: 101, group: 101),
                        "containers": [container],
                        "volumes": [["name": "tmp", "emptyDir": ["sizeLimit": "64Mi"]]],
                    ],
                ],
            ],
        ]
        return [deployment, service("web", port: 80, targetPort: "http")]
    }

    static func postgres() -> [YAML] {
        let container: YAML = [
            "name": "postgres",
            "image": .string(postgresImage),
            "ports": [["name": "postgres", "containerPort": 5432, "protocol": "TCP"]],
            "env": [
                ["name": "POSTGRES_USER", "value": "app"],
                ["name": "POSTGRES_DB", "value": "app"],
                [
                    "name": "POSTGRES_PASSWORD",
                    "valueFrom": ["secretKeyRef": ["name": .string(postgresSecretName), "key": "password"]],
                ],
                ["name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"],
            ],
            "readinessProbe": exec(["pg_isready", "-U", "app", "-d", "app"], initialDelay: 5),
            "livenessProbe": exec(["pg_isready", "-U", "app", "-d", "app"], initialDelay: 30),
            "resources": MonitoringStack.resources(
                cpu: "100m", memory: "256Mi", cpuLimit: "1", memoryLimit: "512Mi"),
            "securityContext": MonitoringStack.containerSecurity(readOnlyRoot: false),
            "volumeMounts": [
                ["name": "data", "mountPath": "/var/lib/postgresql/data"],
                ["name": "run", "mountPath": "/var/run/postgresql"],
            ],
        ]
        let statefulSet: YAML = [
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": metadata("postgres"),
            "spec": [
                "serviceName": "postgres",
                "replicas": 1,
                "selector": ["matchLabels": selector("postgres")],
                "template": [
                    "metadata": ["labels": labels("postgres")],
                    "spec": [
                        "automountServiceAccountToken": false,
                        "securityContext": MonitoringStack.podSecurity(user: 70, group: 70),
                        "containers": [container],
                        "volumes": [["name": "run", "emptyDir": ["sizeLimit": "16Mi"]]],
                    ],
                ],
                "volumeClaimTemplates": [
                    [
                        "metadata": ["name": "data"],
                        "spec": [
                            "accessModes": ["ReadWriteOnce"],
                            "resources": ["requests": ["storage": "1Gi"]],
                        ],
                    ]
                ],
            ],
        ]
        return [statefulSet, service("postgres", port: 5432, targetPort: "postgres")]
    }

    static func valkey() -> [YAML] {
        let container: YAML = [
            "name": "valkey",
            "image": .string(valkeyImage),
            "args": ["--save", "", "--appendonly", "no", "--maxmemory", "96mb", "--maxmemory-policy", "allkeys-lru"],
            "ports": [["name": "valkey", "containerPort": 6379, "protocol": "TCP"]],
            "readinessProbe": exec(["valkey-cli", "ping"], initialDelay: 2),
            "livenessProbe": [
                "tcpSocket": ["port": "valkey"], "initialDelaySeconds": 10, "periodSeconds": 10,
                "timeoutSeconds": 5, "failureThreshold": 3,
            ],
            "resources": MonitoringStack.resources(cpu: "50m", memory: "64Mi", cpuLimit: "500m", memoryLimit: "128Mi"),
            "securityContext": MonitoringStack.containerSecurity(),
            "volumeMounts": [["name": "data", "mountPath": "/data"]],
        ]
        let deployment: YAML = [
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata("valkey"),
            "spec": [
                "replicas": 1,
                "selector": ["matchLabels": selector("valkey")],
                "template": [
                    "metadata": ["labels": labels("valkey")],
                    "spec": [
                        "automountServiceAccountToken": false,
                        "securityContext": MonitoringStack.podSecurity(user: 999, group: 999),
                        "containers": [container],
                        "volumes": [["name": "data", "emptyDir": ["sizeLimit": "128Mi"]]],
                    ],
                ],
            ],
        ]
        return [deployment, service("valkey", port: 6379, targetPort: "valkey")]
    }
}
