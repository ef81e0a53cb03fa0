import Foundation
import ShoalSupport

/// A small deterministic model of a K3s cluster for demo mode: nodes, the objects applied to it, the pods its
/// workloads would run, and Argo CD Applications that sync from a real git repository.
///
/// The model is a value: `encoded()` gives stable JSON (sorted keys, no clocks, no randomness), so the state
/// travels between agents with the workflow, like a kubeconfig. It holds Secret data (the Argo CD admin password
/// among them): treat the encoded state as sensitive.
public struct SimulatedCluster: Codable, Sendable, Equatable {
    /// A node of the model.
    public struct SimNode: Codable, Sendable, Equatable {
        public var name: String
        public var ready: Bool
        public var roles: [String]
        public var internalIP: String
        public var cpuMillicores: Int
        public var memoryBytes: Int
    }

    /// A stored Kubernetes object.
    public struct StoredObject: Codable, Sendable, Equatable {
        public var apiVersion: String
        public var kind: String
        /// Nil for cluster-scoped kinds.
        public var namespace: String?
        public var name: String
        /// The file or origin it was applied from (`monitoring/20-grafana.yaml`, `k3s`, `kubectl-apply`).
        public var source: String
        /// `namespace/name` of the Argo CD Application that manages it, if any.
        public var owner: String?
        public var body: ManifestValue
    }

    /// What Argo CD last concluded about an Application.
    public struct ApplicationState: Codable, Sendable, Equatable {
        public var syncStatus: String
        public var healthStatus: String
        public var message: String?
        public var conditions: [ApplicationCondition]
        /// Set when the last sync could not load or apply the manifests.
        public var syncFailed: Bool
        /// The commit last synced successfully: a reconcile at the same commit and source applies nothing again.
        public var syncedRevision: String?
        /// The source (repoURL, path, target revision, destination) that commit was synced from.
        public var syncedSource: String?
    }

    public var name: String
    public var k3sVersion: String
    public var argoCDVersion: String?
    /// False simulates an API server that does not answer: every client call throws `.unreachable`.
    public var reachable: Bool
    public var nodes: [SimNode]
    /// Keyed by `Kind/namespace/name` (`Kind//name` for cluster-scoped objects).
    public var objects: [String: StoredObject]
    /// Keyed by `namespace/name` of the Application.
    public var applicationStates: [String: ApplicationState]
    var nextNodePort: Int
    /// The in-cluster git server's repositories, once something was pushed to it.
    public var gitServer: SimulatedGitServer?
    /// The other clusters of a fleet this model's Argo CD deploys to, by API server URL: what its Applications
    /// applied there (see `registerFleetMember`).
    public var fleetMembers: [String: SimulatedCluster]?
    /// Why an ApplicationSet generated nothing, by `namespace/name`, naming its file.
    public var applicationSetErrors: [String: String]?

    // MARK: Creation

    /// A freshly installed K3s cluster: its nodes, namespaces and the packaged kube-system components (CoreDNS,
    /// metrics-server, local-path-provisioner, Traefik with its svclb DaemonSet, and the completed helm-install
    /// Jobs).
    /// - Parameters:
    ///   - name: the cluster (workflow) name; node names derive from it.
    ///   - nodes: the number of nodes, servers included.
    ///   - servers: how many of them are servers (control plane); more than one means embedded etcd.
    ///   - k3sVersion: the kubelet version the nodes report, e.g. `v1.31.4+k3s1`.
    ///   - nodeCPUMillicores: allocatable CPU of each node.
    ///   - nodeMemoryBytes: allocatable memory of each node.
    public static func provision(
        name: String, nodes: Int, servers: Int = 1, k3sVersion: String,
        nodeCPUMillicores: Int = 2000, nodeMemoryBytes: Int = 4 * 1_073_741_824
    ) -> SimulatedCluster {
        let serverCount = max(1, min(servers, nodes))
        var cluster = SimulatedCluster(
            name: name, k3sVersion: k3sVersion, argoCDVersion: nil, reachable: true, nodes: [], objects: [:],
            applicationStates: [:], nextNodePort: 32000)
        for index in 0..<max(1, nodes) {
            let isServer = index < serverCount
            let roles =
                isServer ? (serverCount > 1 ? ["control-plane", "etcd", "master"] : ["control-plane", "master"]) : []
            let ordinal = isServer ? index + 1 : index - serverCount + 1
            cluster.nodes.append(
                SimNode(
                    name: "\(name)-\(isServer ? "server" : "agent")-\(ordinal)", ready: true, roles: roles,
                    internalIP: "10.0.0.\(10 + index)", cpuMillicores: nodeCPUMillicores, memoryBytes: nodeMemoryBytes))
        }
        do {
            _ = try cluster.apply(yaml: K3sComponents.manifests(nodeCount: cluster.nodes.count), source: "k3s")
        } catch {
            preconditionFailure("the built-in K3s manifests must apply: \(error)")
        }
        return cluster
    }

    /// Installs Argo CD into the `argocd` namespace: its CRDs, the application-controller StatefulSet, the
    /// repo-server, server, redis, applicationset-controller, dex and notifications Deployments, the
    /// `argocd-server` Service as NodePort 30080 (https 30443) and the `argocd-initial-admin-secret`.
    /// - Parameters:
    ///   - version: the Argo CD version, e.g. `v2.13.3`.
    ///   - adminPassword: the initial admin password; when nil a password is derived from the cluster name (demo
    ///     mode only: it keeps the model deterministic).
    public mutating func installArgoCD(version: String, adminPassword: String? = nil) {
        let password = adminPassword ?? "demo-" + StableHash.token(of: "argocd-admin/\(name)", length: 12)
        do {
            _ = try apply(
                yaml: ArgoCDComponents.manifests(version: version, adminPassword: password), source: "argocd-install")
        } catch {
            preconditionFailure("the built-in Argo CD manifests must apply: \(error)")
        }
        argoCDVersion = version
    }

    /// Registers an Argo CD Application (like applying its manifest) with automated sync.
    /// - Parameters:
    ///   - name: the Application's name.
    ///   - repoURL: where its manifests live (read through a `GitSource` when the cluster syncs).
    ///   - path: the directory in the repository.
    ///   - targetRevision: `HEAD`, a branch, a tag or a commit.
    ///   - namespace: where the Application object lives (`argocd`).
    ///   - destinationNamespace: the namespace for objects that name none; `default` when nil.
    public mutating func registerApplication(
        name: String, repoURL: String, path: String, targetRevision: String = "HEAD", namespace: String = "argocd",
        destinationNamespace: String? = nil
    ) {
        var destination: [String: ManifestValue] = ["server": .string("https://kubernetes.default.svc")]
        if let destinationNamespace { destination["namespace"] = .string(destinationNamespace) }
        let body: ManifestValue = .object([
            "apiVersion": .string("argoproj.io/v1alpha1"),
            "kind": .string("Application"),
            "metadata": .object(["name": .string(name), "namespace": .string(namespace)]),
            "spec": .object([
                "project": .string("default"),
                "source": .object([
                    "repoURL": .string(repoURL), "path": .string(path), "targetRevision": .string(targetRevision),
                ]),
                "destination": .object(destination),
                "syncPolicy": .object([
                    "automated": .object(["prune": .bool(true), "selfHeal": .bool(true)])
                ]),
            ]),
        ])
        let key = Self.key(kind: "Application", namespace: namespace, name: name)
        if objects["Namespace//\(namespace)"] == nil {
            objects["Namespace//\(namespace)"] = StoredObject(
                apiVersion: "v1", kind: "Namespace", namespace: nil, name: namespace, source: "shoal", owner: nil,
                body: .object([
                    "apiVersion": .string("v1"), "kind": .string("Namespace"),
                    "metadata": .object(["name": .string(namespace)]),
                ]))
        }
        objects[key] = StoredObject(
            apiVersion: "argoproj.io/v1alpha1", kind: "Application", namespace: namespace, name: name, source: "shoal",
            owner: objects[key]?.owner, body: body)
    }

    /// Marks a node Ready or NotReady (fault injection for demos and tests).
    public mutating func setNodeReady(_ nodeName: String, _ ready: Bool) {
        for index in nodes.indices where nodes[index].name == nodeName { nodes[index].ready = ready }
    }

    // MARK: Encoding

    /// Stable JSON: equal models give equal bytes.
    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding plain structs, strings and numbers cannot fail.
        return (try? encoder.encode(self)) ?? Data()
    }

    /// Reads a model written by `encoded()`.
    /// - Throws: `ShoalError(.invalidInput)` when the data is not a simulated cluster.
    public static func decode(_ data: Data) throws -> SimulatedCluster {
        do {
            return try JSONDecoder().decode(SimulatedCluster.self, from: data)
        } catch {
            throw ShoalError(.invalidInput, "not a simulated cluster state", cause: "\(error)")
        }
    }

    /// A client over this model; Applications sync from repositories read through `gitSource`.
    public func client(gitSource: any GitSource = GitCLISource()) -> SimulatedClusterClient {
        SimulatedClusterClient(cluster: self, gitSource: gitSource)
    }

    // MARK: Apply

    /// Applies multi-document YAML like `kubectl apply`: all objects or none.
    /// - Parameters:
    ///   - yaml: the manifests.
    ///   - source: the file name (or origin) recorded with each object and named in errors.
    ///   - defaultNamespace: for namespaced objects that name none.
    /// - Returns: one line per object, as kubectl prints it (`deployment.apps/grafana created`).
    /// - Throws: `ShoalError(.invalidInput)` when the YAML does not parse or an object is invalid, `.notFound` when
    ///   its namespace or kind does not exist; the message names `source`.
    @discardableResult
    public mutating func apply(yaml: String, source: String, defaultNamespace: String = "default") throws -> [String] {
        let manifests = try ManifestParser.parse(yaml, source: source)
        return try apply(manifests: manifests, owner: nil, defaultNamespace: defaultNamespace)
    }

    /// Applies parsed objects atomically. With an `owner`, objects that owner managed before and that are not in
    /// `manifests` any more are pruned (Argo CD's automated prune).
    mutating func apply(manifests: [Manifest], owner: String?, defaultNamespace: String) throws -> [String] {
        var next = self
        if let owner {
            let wanted = Set(manifests.map { Self.key(for: $0, defaultNamespace: defaultNamespace) })
            var cascaded: [String] = []
            for (key, object) in next.objects where object.owner == owner && !wanted.contains(key) {
                next.objects[key] = nil
                // A pruned Application with the resources finalizer takes its resources with it.
                let finalizers = (object.body["metadata", "finalizers"]?.array ?? []).compactMap(\.string)
                if object.kind == "Application" && finalizers.contains("resources-finalizer.argocd.argoproj.io") {
                    cascaded.append(Self.applicationKey(object))
                }
            }
            for application in cascaded {
                for (key, object) in next.objects where object.owner == application { next.objects[key] = nil }
            }
        }
        let ordered = manifests.enumerated().sorted {
            let left = Self.applyOrder($0.element.kind)
            let right = Self.applyOrder($1.element.kind)
            return left != right ? left < right : $0.offset < $1.offset
        }.map(\.element)
        var lines: [String] = []
        for manifest in ordered {
            lines.append(try next.store(manifest, owner: owner, defaultNamespace: defaultNamespace))
        }
        self = next
        return lines
    }

    private mutating func store(_ manifest: Manifest, owner: String?, defaultNamespace: String) throws -> String {
        let clusterScoped = Self.clusterScopedKinds.contains(manifest.kind)
        let namespace = clusterScoped ? nil : (manifest.namespace ?? defaultNamespace)
        let source = manifest.source
        if let namespace, objects["Namespace//\(namespace)"] == nil {
            throw ShoalError(
                .notFound, "\(source): \(manifest.kind) \"\(manifest.name)\": namespaces \"\(namespace)\" not found")
        }
        let group = manifest.apiVersion.contains("/") ? String(manifest.apiVersion.split(separator: "/")[0]) : ""
        if !Self.builtinGroups.contains(group) {
            let known = objects.values.contains { object in
                object.kind == "CustomResourceDefinition" && object.body["spec", "group"]?.string == group
                    && object.body["spec", "names", "kind"]?.string == manifest.kind
            }
            if manifest.kind == "Application" && group == "argoproj.io" && !known {
                throw ShoalError(
                    .notFound,
                    "\(source): no matches for kind \"Application\" in version \"\(manifest.apiVersion)\": "
                        + "install Argo CD (its CRDs) first")
            }
        }
        var body = manifest.body
        try validate(manifest, namespace: namespace, body: &body)
        let key = Self.key(kind: manifest.kind, namespace: namespace, name: manifest.name)
        let previous = objects[key]
        objects[key] = StoredObject(
            apiVersion: manifest.apiVersion, kind: manifest.kind, namespace: namespace, name: manifest.name,
            source: source, owner: owner ?? previous?.owner, body: body)
        let resource = manifest.kind.lowercased() + (group.isEmpty ? "" : ".\(group)") + "/\(manifest.name)"
        if previous == nil { return "\(resource) created" }
        return previous?.body == body ? "\(resource) unchanged" : "\(resource) configured"
    }

    /// Rejects what the API server would reject, and allocates node ports as it would.
    private mutating func validate(_ manifest: Manifest, namespace: String?, body: inout ManifestValue) throws {
        let invalid = { (reason: String) -> ShoalError in
            ShoalError(
                .invalidInput, "\(manifest.source): The \(manifest.kind) \"\(manifest.name)\" is invalid: \(reason)")
        }
        switch manifest.kind {
        case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet":
            let selector = body["spec", "selector", "matchLabels"]?.stringMap ?? [:]
            guard !selector.isEmpty || body["spec", "selector", "matchExpressions"] != nil else {
                throw invalid("spec.selector: Required value")
            }
            let templateLabels = body["spec", "template", "metadata", "labels"]?.stringMap ?? [:]
            guard selector.allSatisfy({ templateLabels[$0.key] == $0.value }) else {
                throw invalid(
                    "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`")
            }
            try validatePodSpec(body["spec", "template", "spec"], invalid: invalid)
        case "Job":
            try validatePodSpec(body["spec", "template", "spec"], invalid: invalid)
        case "Pod":
            try validatePodSpec(body["spec"], invalid: invalid)
        case "Service":
            try allocateNodePorts(manifest, namespace: namespace ?? "default", body: &body, invalid: invalid)
        default:
            break
        }
    }

    private func validatePodSpec(_ spec: ManifestValue?, invalid: (String) -> ShoalError) throws {
        let containers = spec?["containers"]?.array ?? []
        guard !containers.isEmpty else { throw invalid("spec.template.spec.containers: Required value") }
        for (index, container) in containers.enumerated() {
            guard let name = container["name"]?.string, !name.isEmpty else {
                throw invalid("spec.template.spec.containers[\(index)].name: Required value")
            }
            guard let image = container["image"]?.string, !image.isEmpty else {
                throw invalid("spec.template.spec.containers[\(index)].image: Required value")
            }
        }
    }

    private mutating func allocateNodePorts(
        _ manifest: Manifest, namespace: String, body: inout ManifestValue, invalid: (String) -> ShoalError
    ) throws {
        let type = body["spec", "type"]?.string ?? "ClusterIP"
        guard var ports = body["spec", "ports"]?.array else { return }
        let ownKey = Self.key(kind: "Service", namespace: namespace, name: manifest.name)
        var taken: [Int: String] = [:]
        for (key, object) in objects where object.kind == "Service" && key != ownKey {
            for port in object.body["spec", "ports"]?.array ?? [] {
                if let nodePort = port["nodePort"]?.int { taken[nodePort] = "\(object.namespace ?? "")/\(object.name)" }
            }
        }
        let previousPorts = objects[ownKey]?.body["spec", "ports"]?.array ?? []
        for index in ports.indices {
            guard ports[index]["port"]?.int != nil else { throw invalid("spec.ports[\(index)].port: Required value") }
            guard type == "NodePort" || type == "LoadBalancer" else { continue }
            if let requested = ports[index]["nodePort"]?.int {
                guard (30000...32767).contains(requested) else {
                    throw invalid(
                        "spec.ports[\(index)].nodePort: Invalid value: \(requested): provided port is not in the valid range. The range of valid ports is 30000-32767"
                    )
                }
                if let holder = taken[requested] {
                    throw invalid(
                        "spec.ports[\(index)].nodePort: Invalid value: \(requested): provided port is already allocated (to \(holder))"
                    )
                }
                taken[requested] = manifest.name
                continue
            }
            // Keep the port given earlier to the same service port, as the API server does on update.
            let samePort = previousPorts.first { $0["port"]?.int == ports[index]["port"]?.int }?["nodePort"]?.int
            var chosen = samePort ?? nextNodePort
            while taken[chosen] != nil { chosen += 1 }
            if samePort == nil { nextNodePort = chosen + 1 }
            taken[chosen] = manifest.name
            if case .object(var members) = ports[index] {
                members["nodePort"] = .int(chosen)
                ports[index] = .object(members)
            }
        }
        if case .object(var root) = body, case .object(var spec)? = root["spec"] {
            spec["ports"] = .array(ports)
            root["spec"] = .object(spec)
            body = .object(root)
        }
    }

    // MARK: Keys and kinds

    static func key(kind: String, namespace: String?, name: String) -> String {
        "\(kind)/\(namespace ?? "")/\(name)"
    }

    static func key(for manifest: Manifest, defaultNamespace: String) -> String {
        let namespace = clusterScopedKinds.contains(manifest.kind) ? nil : (manifest.namespace ?? defaultNamespace)
        return key(kind: manifest.kind, namespace: namespace, name: manifest.name)
    }

    static let clusterScopedKinds: Set<String> = [
        "Namespace", "Node", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
        "StorageClass", "PriorityClass", "IngressClass", "APIService", "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration", "RuntimeClass", "CSIDriver",
    ]

    static let builtinGroups: Set<String> = [
        "", "apps", "batch", "rbac.authorization.k8s.io", "networking.k8s.io", "policy", "storage.k8s.io",
        "apiextensions.k8s.io", "autoscaling", "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
        "admissionregistration.k8s.io", "apiregistration.k8s.io", "node.k8s.io", "certificates.k8s.io",
    ]

    /// The order Argo CD and Helm create kinds in, so a namespace exists before what goes into it.
    static func applyOrder(_ kind: String) -> Int {
        let order = [
            "Namespace", "CustomResourceDefinition", "ServiceAccount", "Secret", "ConfigMap", "StorageClass",
            "PersistentVolume", "PersistentVolumeClaim", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
            "Service", "DaemonSet", "Pod", "ReplicaSet", "Deployment", "StatefulSet", "Job", "CronJob", "Ingress",
        ]
        return order.firstIndex(of: kind) ?? order.count
    }

    /// Objects of `kind`, sorted by key.
    func objects(kind: String, namespace: String? = nil) -> [StoredObject] {
        objects.keys.sorted().compactMap { key in
            guard let object = objects[key], object.kind == kind else { return nil }
            if let namespace, object.namespace != namespace { return nil }
            return object
        }
    }

    func exists(_ kind: String, namespace: String?, name: String) -> Bool {
        if kind == "ServiceAccount" && name == "default", let namespace {
            return objects["Namespace//\(namespace)"] != nil
        }
        return objects[Self.key(kind: kind, namespace: namespace, name: name)] != nil
    }
}

/// Short deterministic tokens from text (FNV-1a), used where Kubernetes would use random suffixes.
enum StableHash {
    static func value(of text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// Characters Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
    static func token(of text: String, length: Int) -> String {
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
        var hash = value(of: text)
        var result = ""
        for round in 0..<length {
            if round > 0 && round % 12 == 0 { hash = value(of: text + String(round)) }
            result.append(alphabet[Int(hash % UInt64(alphabet.count))])
            hash /= UInt64(alphabet.count)
        }
        return result
    }

    static func hex(of text: String, length: Int) -> String {
        String(String(format: "%016llx", value(of: text)).prefix(length))
    }
}
