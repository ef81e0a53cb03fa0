import ShoalSupport

/// The one narrow protocol through which everything touches a cluster.
///
/// Two implementations: `KubectlClient` (real mode) and `SimulatedClusterClient` (demo mode).
/// Every method throws `ShoalError` with code `.unreachable` when the API server cannot be reached,
/// `.forbidden` when the credentials may not do the call, and `.notFound` when the object does not exist.
public protocol ClusterClient: Sendable {
    /// Every node of the cluster.
    func nodes() async throws -> [Node]
    /// Pods of one namespace, or of all namespaces when `namespace` is nil.
    func pods(namespace: String?) async throws -> [Pod]
    /// Services of one namespace, or of all namespaces when `namespace` is nil.
    func services(namespace: String?) async throws -> [Service]
    /// Argo CD Applications in `namespace` (usually `argocd`).
    func applications(namespace: String) async throws -> [ApplicationStatus]
    /// The ready addresses behind a Service (its Endpoints).
    func endpointAddresses(namespace: String, service: String) async throws -> [String]
    /// GET through the API server's service proxy
    /// (real mode: `kubectl get --raw /api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH`).
    /// - Returns: the HTTP status and body; a 503 from a service without ready endpoints is a value, not an error.
    func serviceProxyGet(namespace: String, service: String, port: Int, path: String) async throws
        -> (status: Int, body: String)
    /// The decoded data of a Secret (for instance `argocd-initial-admin-secret`). The values are secrets:
    /// never log them.
    func secretData(namespace: String, name: String) async throws -> [String: String]
    /// Applies multi-document YAML (`kubectl apply -f -`, with `--server-side` when asked).
    func apply(manifests: String, serverSide: Bool) async throws

    // Installation steps (Argo CD, the CoreDNS host entry); each matches one kubectl command.

    /// Creates a namespace (`kubectl create namespace NAME`).
    /// - Returns: false when it existed already (kubectl's `AlreadyExists`), which is not an error.
    func createNamespace(_ name: String) async throws -> Bool
    /// Applies a manifest file or URL (`kubectl apply [--server-side --force-conflicts] [-n NS] -f LOCATION`).
    /// - Parameters:
    ///   - location: a path on this machine, or an `https://` URL kubectl downloads.
    ///   - namespace: for objects that name none.
    ///   - serverSide: server-side apply, taking over conflicting fields.
    func apply(location: String, namespace: String?, serverSide: Bool) async throws
    /// Patches one object (`kubectl patch KIND NAME -n NS --type TYPE -p PATCH`).
    /// - Throws: `.notFound` when the object does not exist.
    func patch(kind: String, name: String, namespace: String, type: PatchType, patch: String) async throws
    /// Restarts a workload's pods (`kubectl rollout restart KIND/NAME -n NS`).
    func rolloutRestart(kind: String, name: String, namespace: String) async throws
    /// Waits until a workload is rolled out (`kubectl rollout status KIND/NAME -n NS --timeout=Ns`).
    /// - Throws: `.timeout` when it is not rolled out within `timeout`, `.notFound` when it does not exist.
    func rolloutStatus(kind: String, name: String, namespace: String, timeout: Duration) async throws
    /// The data of a ConfigMap (`kubectl get configmap NAME -n NS -o json`).
    func configMapData(namespace: String, name: String) async throws -> [String: String]
}

/// How `ClusterClient.patch` merges (kubectl's `--type`).
public enum PatchType: String, Sendable, CaseIterable {
    /// JSON merge patch (RFC 7386): mappings merge, anything else replaces.
    case merge
    /// Strategic merge patch: like `merge`, but lists of ports and containers merge by their key.
    case strategic
}

/// A cluster node.
public struct Node: Codable, Sendable, Equatable {
    public var name: String
    /// The Ready condition is True.
    public var ready: Bool
    /// From `node-role.kubernetes.io/*` labels, sorted: `control-plane`, `etcd`, `master`.
    public var roles: [String]
    public var kubeletVersion: String
    public var allocatableCPUMillicores: Int
    public var allocatableMemoryBytes: Int
    /// Conditions other than Ready that are True (DiskPressure, MemoryPressure, ...), and the Ready reason when
    /// not ready.
    public var problems: [String]
    /// `spec.unschedulable` (cordoned).
    public var unschedulable: Bool

    public init(
        name: String, ready: Bool, roles: [String], kubeletVersion: String, allocatableCPUMillicores: Int,
        allocatableMemoryBytes: Int, problems: [String] = [], unschedulable: Bool = false
    ) {
        self.name = name
        self.ready = ready
        self.roles = roles
        self.kubeletVersion = kubeletVersion
        self.allocatableCPUMillicores = allocatableCPUMillicores
        self.allocatableMemoryBytes = allocatableMemoryBytes
        self.problems = problems
        self.unschedulable = unschedulable
    }
}

/// A pod, reduced to what health checks need.
public struct Pod: Codable, Sendable, Equatable {
    public var namespace: String
    public var name: String
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    public var phase: String
    /// Every container is ready (the Ready condition is True).
    public var ready: Bool
    /// Restarts summed over containers.
    public var restarts: Int
    /// The kind of the first owner reference (`ReplicaSet`, `DaemonSet`, `StatefulSet`, `Job`), if any.
    public var ownerKind: String?
    /// `app.kubernetes.io/name`, else `app`, else `k8s-app`.
    public var app: String?
    public var labels: [String: String]
    /// Requests summed over the regular containers.
    public var requestedCPUMillicores: Int
    public var requestedMemoryBytes: Int
    /// Why it is not running: a container's waiting reason (`CrashLoopBackOff`, `CreateContainerConfigError`),
    /// a condition reason (`Unschedulable`) or the pod's status reason.
    public var reason: String?
    public var nodeName: String?

    public init(
        namespace: String, name: String, phase: String, ready: Bool, restarts: Int = 0, ownerKind: String? = nil,
        app: String? = nil, labels: [String: String] = [:], requestedCPUMillicores: Int = 0,
        requestedMemoryBytes: Int = 0, reason: String? = nil, nodeName: String? = nil
    ) {
        self.namespace = namespace
        self.name = name
        self.phase = phase
        self.ready = ready
        self.restarts = restarts
        self.ownerKind = ownerKind
        self.app = app
        self.labels = labels
        self.requestedCPUMillicores = requestedCPUMillicores
        self.requestedMemoryBytes = requestedMemoryBytes
        self.reason = reason
        self.nodeName = nodeName
    }

    /// Running and ready.
    public var healthy: Bool { phase == "Running" && ready }
    /// Finished (a completed Job pod, say); counts neither as healthy nor as failing.
    public var completed: Bool { phase == "Succeeded" }
}

/// A port of a Service.
public struct ServicePort: Codable, Sendable, Equatable {
    public var name: String?
    public var port: Int
    public var nodePort: Int?

    public init(name: String? = nil, port: Int, nodePort: Int? = nil) {
        self.name = name
        self.port = port
        self.nodePort = nodePort
    }
}

/// A Service.
public struct Service: Codable, Sendable, Equatable {
    public var namespace: String
    public var name: String
    /// `ClusterIP`, `NodePort` or `LoadBalancer`.
    public var type: String
    public var ports: [ServicePort]
    public var selector: [String: String]

    public init(namespace: String, name: String, type: String, ports: [ServicePort], selector: [String: String] = [:]) {
        self.namespace = namespace
        self.name = name
        self.type = type
        self.ports = ports
        self.selector = selector
    }

    /// The node ports, in port order.
    public var nodePorts: [Int] { ports.compactMap(\.nodePort) }
}

/// A condition of an Argo CD Application (`ComparisonError`, `SyncError`, ...).
public struct ApplicationCondition: Codable, Sendable, Equatable {
    public var type: String
    public var message: String

    public init(type: String, message: String) {
        self.type = type
        self.message = message
    }
}

/// The state of an Argo CD Application.
public struct ApplicationStatus: Codable, Sendable, Equatable {
    public var name: String
    public var namespace: String
    /// `Synced`, `OutOfSync` or `Unknown`.
    public var syncStatus: String
    /// `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing` or `Unknown`.
    public var healthStatus: String
    /// The health message, else the last operation's message when it failed.
    public var message: String?
    public var conditions: [ApplicationCondition]
    public var repoURL: String
    public var path: String
    public var targetRevision: String
    /// The revision last synced or compared, when known.
    public var revision: String?
    /// `spec.destination.server`: another cluster of a fleet, or nil for the cluster Argo CD runs in.
    public var destinationServer: String?

    public init(
        name: String, namespace: String, syncStatus: String, healthStatus: String, message: String? = nil,
        conditions: [ApplicationCondition] = [], repoURL: String, path: String, targetRevision: String = "HEAD",
        revision: String? = nil, destinationServer: String? = nil
    ) {
        self.name = name
        self.namespace = namespace
        self.syncStatus = syncStatus
        self.healthStatus = healthStatus
        self.message = message
        self.conditions = conditions
        self.repoURL = repoURL
        self.path = path
        self.targetRevision = targetRevision
        self.revision = revision
        self.destinationServer = destinationServer
    }

    /// Synced and Healthy.
    public var healthy: Bool { syncStatus == "Synced" && healthStatus == "Healthy" }
}
