import Foundation
import ShoalSupport

/// A `ClusterClient` over a `SimulatedCluster`.
///
/// Each read first reconciles the Argo CD Applications, as Argo CD's automated sync would have done by then: each
/// Application's target revision is resolved (through the `GitSource`, or from the modelled in-cluster git server
/// in the state) and synced only when it names a commit not synced yet, so a push shows in the next call and a
/// read costs no clone otherwise.
public actor SimulatedClusterClient: ClusterClient {
    /// The model, including what syncs and `apply` changed; encode it to hand the state on.
    public internal(set) var cluster: SimulatedCluster {
        didSet {
            settled = false
            pods = nil
        }
    }
    private let gitSource: any GitSource
    /// Whether `cluster` is what the last reconcile left, unchanged since: a read then reconciles only when a
    /// target revision resolves to a new commit (or a refresh is asked for).
    private var settled = false
    /// What this client's Argo CD rendered, by commit and source.
    private let renders = RenderedManifests()
    /// The pods of `cluster` as derived last, until it changes.
    private var pods: [SimulatedPod]?

    /// - Parameters:
    ///   - cluster: the model to serve.
    ///   - gitSource: reads the Applications' repositories.
    public init(cluster: SimulatedCluster, gitSource: any GitSource = GitCLISource()) {
        self.cluster = cluster
        self.gitSource = gitSource
    }

    func checkReachable() throws {
        guard cluster.reachable else {
            let server = cluster.nodes.first?.internalIP ?? "127.0.0.1"
            throw ShoalError(
                .unreachable,
                "The connection to the server \(server):6443 was refused - did you specify the right host or port?")
        }
    }

    func reconciled() async throws -> SimulatedCluster {
        try checkReachable()
        if settled, await cluster.isSettled(gitSource: gitSource, pods: derivedPods()) { return cluster }
        var copy = cluster
        let derived = await copy.reconcile(gitSource: gitSource, renders: renders, pods: pods)
        cluster = copy
        settled = true
        // Health changes no object: the pods the reconcile derived last are the reconciled model's.
        pods = derived
        return copy
    }

    /// The pods of the model as it is now (derived once per state).
    func derivedPods() -> [SimulatedPod] {
        if let pods { return pods }
        let derived = cluster.derivedPods()
        pods = derived
        return derived
    }

    public func nodes() async throws -> [Node] {
        try checkReachable()
        return cluster.nodes.map { node in
            Node(
                name: node.name, ready: node.ready, roles: node.roles, kubeletVersion: cluster.k3sVersion,
                allocatableCPUMillicores: node.cpuMillicores, allocatableMemoryBytes: node.memoryBytes,
                problems: node.ready ? [] : ["NodeStatusUnknown: Kubelet stopped posting node status."])
        }
    }

    public func pods(namespace: String?) async throws -> [Pod] {
        _ = try await reconciled()
        return derivedPods().map(\.pod).filter { namespace == nil || $0.namespace == namespace }
    }

    public func services(namespace: String?) async throws -> [Service] {
        let state = try await reconciled()
        return state.objects(kind: "Service", namespace: namespace).map(Self.service)
    }

    static func service(_ object: SimulatedCluster.StoredObject) -> Service {
        let ports = (object.body["spec", "ports"]?.array ?? []).compactMap { port -> ServicePort? in
            guard let number = port["port"]?.int else { return nil }
            return ServicePort(name: port["name"]?.string, port: number, nodePort: port["nodePort"]?.int)
        }
        return Service(
            namespace: object.namespace ?? "", name: object.name,
            type: object.body["spec", "type"]?.string ?? "ClusterIP",
            ports: ports, selector: object.body["spec", "selector"]?.stringMap ?? [:])
    }

    public func applications(namespace: String) async throws -> [ApplicationStatus] {
        let state = try await reconciled()
        return state.objects(kind: "Application", namespace: namespace).map { object in
            let key = SimulatedCluster.applicationKey(object)
            let status = state.applicationStates[key]
            let source = object.body["spec", "source"] ?? object.body["spec", "sources"]?.array?.first ?? .null
            return ApplicationStatus(
                name: object.name, namespace: namespace, syncStatus: status?.syncStatus ?? "Unknown",
                healthStatus: status?.healthStatus ?? "Unknown", message: status?.message,
                conditions: status?.conditions ?? [], repoURL: source["repoURL"]?.string ?? "",
                path: source["path"]?.string ?? "", targetRevision: source["targetRevision"]?.string ?? "HEAD",
                revision: status?.syncedRevision,
                destinationServer: ApplicationStatus.remoteServer(object.body["spec", "destination", "server"]?.string))
        }
    }

    public func endpointAddresses(namespace: String, service: String) async throws -> [String] {
        let state = try await reconciled()
        guard let object = state.objects[SimulatedCluster.key(kind: "Service", namespace: namespace, name: service)]
        else { throw ShoalError(.notFound, "endpoints \"\(service)\" not found in namespace \(namespace)") }
        return state.endpoints(of: object, pods: derivedPods()).map(\.ip)
    }

    public func serviceProxyGet(namespace: String, service: String, port: Int, path: String) async throws
        -> (status: Int, body: String)
    {
        let state = try await reconciled()
        guard let object = state.objects[SimulatedCluster.key(kind: "Service", namespace: namespace, name: service)]
        else { throw ShoalError(.notFound, "services \"\(service)\" not found in namespace \(namespace)") }
        let unavailable = (503, "no endpoints available for service \"\(service):\(port)\"")
        guard Self.service(object).ports.contains(where: { $0.port == port }) else { return unavailable }
        let pods = derivedPods()
        guard let backend = state.endpoints(of: object, pods: pods).first else { return unavailable }
        let route =
            "/"
            + (path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "")
            .trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let notFound = (404, "404 page not found\n")
        switch backend.images.map(Self.imageName).first(where: { ["prometheus", "grafana", "headlamp"].contains($0) }) {
        case "prometheus":
            switch route {
            case "/-/ready": return (200, "Prometheus Server is Ready.\n")
            case "/-/healthy": return (200, "Prometheus Server is Healthy.\n")
            case "/api/v1/targets":
                return (200, PrometheusDiscovery(cluster: state, pods: pods).targetsJSON(for: backend))
            default: return notFound
            }
        case "grafana":
            guard route == "/api/health" else {
                return route == "/" ? (302, "<a href=\"/login\">Found</a>.\n\n") : notFound
            }
            let image = backend.images.first { Self.imageName($0) == "grafana" } ?? ""
            let version = Self.imageTag(image).map { $0.hasPrefix("v") ? String($0.dropFirst()) : $0 } ?? "unknown"
            let body = """
                {
                  "commit": "\(StableHash.hex(of: image, length: 10))",
                  "database": "ok",
                  "version": "\(version)"
                }

                """
            return (200, body)
        case "headlamp":
            return (
                200,
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"/><title>Headlamp</title></head>"
                    + "<body><div id=\"root\"></div></body></html>"
            )
        default:
            return notFound
        }
    }

    public func secretData(namespace: String, name: String) async throws -> [String: String] {
        try checkReachable()
        guard let object = cluster.objects[SimulatedCluster.key(kind: "Secret", namespace: namespace, name: name)]
        else {
            throw ShoalError(.notFound, "secrets \"\(name)\" not found")
        }
        var result: [String: String] = [:]
        for (key, value) in object.body["data"]?.stringMap ?? [:] {
            result[key] = Data(base64Encoded: value).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
        for (key, value) in object.body["stringData"]?.stringMap ?? [:] { result[key] = value }
        return result
    }

    /// A push to the modelled in-cluster git server (what `git push` to its NodePort does in a real cluster).
    public func receiveGitPush(server: SimulatedGitServer, path: String, head: String, bundle: Data) throws {
        try checkReachable()
        cluster.receiveGitPush(server: server, path: path, head: head, bundle: bundle)
    }

    public func apply(manifests: String, serverSide: Bool) async throws {
        try checkReachable()
        try cluster.apply(yaml: manifests, source: "kubectl-apply")
    }

    /// `prom/prometheus:v3.1.0` -> `prometheus`.
    static func imageName(_ image: String) -> String {
        let withoutDigest = image.split(separator: "@").first.map(String.init) ?? image
        let last = withoutDigest.split(separator: "/").last.map(String.init) ?? withoutDigest
        return last.split(separator: ":").first.map(String.init) ?? last
    }

    static func imageTag(_ image: String) -> String? {
        let withoutDigest = image.split(separator: "@").first.map(String.init) ?? image
        let last = withoutDigest.split(separator: "/").last.map(String.init) ?? withoutDigest
        let parts = last.split(separator: ":")
        return parts.count > 1 ? String(parts[1]) : nil
    }
}
