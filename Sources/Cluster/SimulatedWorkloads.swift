import Foundation
import GitOps
import ShoalSupport

/// A pod the model derives from a workload, with what the service proxy and Prometheus discovery need.
struct SimulatedPod: Sendable {
    var pod: Pod
    var ip: String
    var annotations: [String: String]
    var containerPorts: [(name: String?, port: Int)]
    var images: [String]
    /// The key of the workload object it belongs to.
    var workload: String
    /// ConfigMaps mounted as volumes.
    var configMapVolumes: [String]
}

/// An object a pod spec needs that the cluster does not have.
struct MissingReference: Sendable, Equatable {
    enum Effect: Int, Sendable, Comparable {
        /// A pod gets no further than this: runs, but is not ready; config error; no volume; never created.
        case configError = 1
        case containerCreating, unschedulable, noPods
        static func < (left: Effect, right: Effect) -> Bool { left.rawValue < right.rawValue }
    }

    var description: String
    var effect: Effect
}

extension SimulatedCluster {
    static let workloadKinds: Set<String> = ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "Pod"]

    // MARK: References

    /// The ServiceAccount, ConfigMaps, Secrets and claims a pod spec needs that do not exist in `namespace`.
    func missingReferences(podSpec: ManifestValue?, namespace: String, claimTemplates: [String] = [])
        -> [MissingReference]
    {
        guard let spec = podSpec else { return [] }
        var missing: [MissingReference] = []
        func note(_ description: String, _ effect: MissingReference.Effect) {
            let reference = MissingReference(description: description, effect: effect)
            if !missing.contains(reference) { missing.append(reference) }
        }
        let account = spec["serviceAccountName"]?.string ?? spec["serviceAccount"]?.string ?? "default"
        if !exists("ServiceAccount", namespace: namespace, name: account) {
            note("ServiceAccount \"\(account)\" not found", .noPods)
        }
        func checkObject(_ kind: String, _ name: String?, optional: Bool, key: String?, effect: MissingReference.Effect)
        {
            guard let name, !optional else { return }
            guard let object = objects[Self.key(kind: kind, namespace: namespace, name: name)] else {
                note("\(kind) \"\(name)\" not found", effect)
                return
            }
            if let key {
                let keys = Set((object.body["data"]?.object ?? [:]).keys)
                    .union((object.body["stringData"]?.object ?? [:]).keys)
                    .union((object.body["binaryData"]?.object ?? [:]).keys)
                if !keys.contains(key) {
                    note("couldn't find key \(key) in \(kind) \(namespace)/\(name)", .configError)
                }
            }
        }
        func checkProjection(_ source: ManifestValue, effect: MissingReference.Effect) {
            if let configMap = source["configMap"] {
                checkObject(
                    "ConfigMap", configMap["name"]?.string, optional: configMap["optional"]?.bool == true, key: nil,
                    effect: effect)
            }
            if let secret = source["secret"] {
                checkObject(
                    "Secret", secret["secretName"]?.string ?? secret["name"]?.string,
                    optional: secret["optional"]?.bool == true, key: nil, effect: effect)
            }
        }
        for volume in spec["volumes"]?.array ?? [] {
            checkProjection(volume, effect: .containerCreating)
            for source in volume["projected", "sources"]?.array ?? [] {
                checkProjection(source, effect: .containerCreating)
            }
            if let claim = volume["persistentVolumeClaim", "claimName"]?.string, !claimTemplates.contains(claim),
                !exists("PersistentVolumeClaim", namespace: namespace, name: claim)
            {
                note("PersistentVolumeClaim \"\(claim)\" not found", .unschedulable)
            }
        }
        let containers = (spec["initContainers"]?.array ?? []) + (spec["containers"]?.array ?? [])
        for container in containers {
            for source in container["envFrom"]?.array ?? [] {
                if let reference = source["configMapRef"] {
                    checkObject(
                        "ConfigMap", reference["name"]?.string, optional: reference["optional"]?.bool == true,
                        key: nil, effect: .configError)
                }
                if let reference = source["secretRef"] {
                    checkObject(
                        "Secret", reference["name"]?.string, optional: reference["optional"]?.bool == true,
                        key: nil, effect: .configError)
                }
            }
            for variable in container["env"]?.array ?? [] {
                if let reference = variable["valueFrom", "configMapKeyRef"] {
                    checkObject(
                        "ConfigMap", reference["name"]?.string, optional: reference["optional"]?.bool == true,
                        key: reference["key"]?.string, effect: .configError)
                }
                if let reference = variable["valueFrom", "secretKeyRef"] {
                    checkObject(
                        "Secret", reference["name"]?.string, optional: reference["optional"]?.bool == true,
                        key: reference["key"]?.string, effect: .configError)
                }
            }
        }
        return missing
    }

    /// The pod template spec of a workload object and the claim names its StatefulSet templates provide.
    static func podTemplate(of object: StoredObject) -> (
        spec: ManifestValue?, metadata: ManifestValue?, claims: [String]
    ) {
        if object.kind == "Pod" { return (object.body["spec"], object.body["metadata"], []) }
        let claims = (object.body["spec", "volumeClaimTemplates"]?.array ?? []).compactMap {
            $0["metadata", "name"]?.string
        }
        return (object.body["spec", "template", "spec"], object.body["spec", "template", "metadata"], claims)
    }

    // MARK: Pods

    /// The pods the workloads would run, placed on nodes by their requests like a simple scheduler.
    func derivedPods() -> [SimulatedPod] {
        var freeCPU: [String: Int] = [:]
        var freeMemory: [String: Int] = [:]
        var ipCounter: [String: Int] = [:]
        for node in nodes {
            freeCPU[node.name] = node.cpuMillicores
            freeMemory[node.name] = node.memoryBytes
        }
        let nodeIndex = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($1.name, $0) })
        var result: [SimulatedPod] = []

        for key in objects.keys.sorted() {
            guard let object = objects[key], Self.workloadKinds.contains(object.kind), let namespace = object.namespace
            else { continue }
            let template = Self.podTemplate(of: object)
            let missing = missingReferences(
                podSpec: template.spec, namespace: namespace, claimTemplates: template.claims)
            let worst = missing.map(\.effect).max()
            if worst == .noPods { continue }

            let labels = template.metadata?["labels"]?.stringMap ?? [:]
            let annotations = template.metadata?["annotations"]?.stringMap ?? [:]
            let containers = template.spec?["containers"]?.array ?? []
            var cpu = 0
            var memory = 0
            var ports: [(name: String?, port: Int)] = []
            for container in containers {
                cpu += container["resources", "requests", "cpu"]?.string.flatMap(Quantity.millicores) ?? 0
                memory += container["resources", "requests", "memory"]?.string.flatMap(Quantity.bytes) ?? 0
                for port in container["ports"]?.array ?? [] {
                    if let number = port["containerPort"]?.int { ports.append((port["name"]?.string, number)) }
                }
            }
            let images = containers.compactMap { $0["image"]?.string }
            let configMaps = (template.spec?["volumes"]?.array ?? []).compactMap { $0["configMap", "name"]?.string }

            // (pod name, pinned node) for each replica.
            var replicas: [(String, String?)] = []
            let templateHash = StableHash.token(of: key + (template.spec ?? .null).canonicalText, length: 10)
            switch object.kind {
            case "Deployment", "ReplicaSet":
                let count = object.body["spec", "replicas"]?.int ?? 1
                let prefix = object.kind == "Deployment" ? "\(object.name)-\(templateHash)" : object.name
                replicas = (0..<max(0, count)).map {
                    ("\(prefix)-\(StableHash.token(of: "\(key)/\($0)", length: 5))", nil)
                }
            case "StatefulSet":
                let count = object.body["spec", "replicas"]?.int ?? 1
                replicas = (0..<max(0, count)).map { ("\(object.name)-\($0)", nil) }
            case "DaemonSet":
                replicas = nodes.map {
                    ("\(object.name)-\(StableHash.token(of: "\(key)/\($0.name)", length: 5))", $0.name)
                }
            case "Job":
                replicas = [("\(object.name)-\(StableHash.token(of: key, length: 5))", nil)]
            default:
                replicas = [(object.name, object.body["spec", "nodeName"]?.string)]
            }
            let ownerKind: String? =
                switch object.kind {
                case "Deployment": "ReplicaSet"
                case "Pod": nil
                default: object.kind
                }

            for (podName, pinned) in replicas {
                var chosen: String? = pinned
                if chosen == nil {
                    chosen =
                        nodes.filter { node in
                            node.ready && (freeCPU[node.name] ?? 0) >= cpu && (freeMemory[node.name] ?? 0) >= memory
                        }.max { left, right in
                            let l = freeCPU[left.name] ?? 0
                            let r = freeCPU[right.name] ?? 0
                            return l != r ? l < r : left.name > right.name
                        }?.name
                }
                var phase = "Running"
                var ready = true
                var reason: String?
                if chosen == nil || worst == .unschedulable {
                    (phase, ready, reason) = ("Pending", false, "Unschedulable")
                    chosen = nil
                } else if worst == .containerCreating {
                    (phase, ready, reason) = ("Pending", false, "ContainerCreating")
                } else if worst == .configError {
                    (phase, ready, reason) = ("Pending", false, "CreateContainerConfigError")
                } else if let node = nodes.first(where: { $0.name == chosen }), !node.ready {
                    (ready, reason) = (false, "NodeNotReady")
                } else if object.kind == "Job" {
                    (phase, ready, reason) = ("Succeeded", false, "Completed")
                }
                var ip = ""
                if let chosen {
                    freeCPU[chosen, default: 0] -= cpu
                    freeMemory[chosen, default: 0] -= memory
                    let counter = ipCounter[chosen, default: 1] + 1
                    ipCounter[chosen] = counter
                    ip = "10.42.\(nodeIndex[chosen] ?? 0).\(counter)"
                }
                let pod = Pod(
                    namespace: namespace, name: podName, phase: phase, ready: ready, restarts: 0, ownerKind: ownerKind,
                    app: labels["app.kubernetes.io/name"] ?? labels["app"] ?? labels["k8s-app"], labels: labels,
                    requestedCPUMillicores: cpu, requestedMemoryBytes: memory, reason: reason, nodeName: chosen)
                result.append(
                    SimulatedPod(
                        pod: pod, ip: ip, annotations: annotations, containerPorts: ports, images: images,
                        workload: key, configMapVolumes: configMaps))
            }
        }
        return result
    }

    /// Ready pods selected by a Service.
    func endpoints(of service: StoredObject, pods: [SimulatedPod]) -> [SimulatedPod] {
        let selector = service.body["spec", "selector"]?.stringMap ?? [:]
        guard !selector.isEmpty else { return [] }
        return pods.filter { candidate in
            candidate.pod.namespace == service.namespace && candidate.pod.healthy
                && selector.allSatisfy { candidate.pod.labels[$0.key] == $0.value }
        }
    }

    // MARK: Argo CD

    /// Syncs every Application like Argo CD's automated sync: reads its repository at the target revision, parses
    /// the manifests of its path, applies them (prune included) or records why not, then assesses health.
    /// Applications that a sync creates (App of Apps) are synced in the same pass.
    /// - Parameter gitSource: reads the repositories.
    public mutating func reconcile(gitSource base: any GitSource) async {
        await reconcile(gitSource: base, renders: nil)
    }

    /// `reconcile(gitSource:)`, reusing what `renders` holds for a commit and source rendered before (a
    /// client's own cache: a fake `GitSource` may name different files with one commit in other clients).
    /// - Parameter pods: the pods of this model as it is now, when derived already.
    /// - Returns: the pods of the reconciled model.
    @discardableResult
    mutating func reconcile(
        gitSource base: any GitSource, renders: RenderedManifests?, pods current: [SimulatedPod]? = nil
    ) async -> [SimulatedPod] {
        let gitSource = ModelledGitSource(
            server: gitServer, problem: gitServer.flatMap { gitServerProblem($0, pods: current) }, fallback: base)
        _ = consumeRefreshRequests()
        var done: Set<String> = []
        for _ in 0..<8 {
            expandApplicationSets()
            let pending = objects(kind: "Application").map { Self.applicationKey($0) }.filter { !done.contains($0) }
            if pending.isEmpty { break }
            for key in pending {
                done.insert(key)
                await syncApplication(key, gitSource: gitSource, renders: renders)
            }
        }
        expandApplicationSets()
        let existing = Set(objects(kind: "Application").map { Self.applicationKey($0) })
        pruneFleetMembers(removedApplications: Set(applicationStates.keys).subtracting(existing))
        for key in applicationStates.keys where !existing.contains(key) { applicationStates[key] = nil }
        // Health changes no object: the pods of this model are derived once for every Application.
        let pods = derivedPods()
        for key in existing.sorted() { assessHealth(key, localPods: pods) }
        return pods
    }

    /// Whether a `reconcile` now would change nothing, as far as Argo CD is concerned: every Application was synced
    /// successfully from its current source at the commit its target revision resolves to now, and none asks for a
    /// refresh. Only the revisions are resolved (no fetch); ApplicationSets, fleets and Helm charts always answer
    /// false (a reconcile decides for them).
    /// - Parameters:
    ///   - gitSource: resolves the target revisions, as `reconcile` does.
    ///   - pods: the pods of this model, when derived already.
    func isSettled(gitSource base: any GitSource, pods: [SimulatedPod]? = nil) async -> Bool {
        guard fleetMembers == nil, objects(kind: "ApplicationSet").isEmpty else { return false }
        let gitSource = ModelledGitSource(
            server: gitServer, problem: gitServer.flatMap { gitServerProblem($0, pods: pods) }, fallback: base)
        let applications = objects(kind: "Application")
        guard Set(applications.map { Self.applicationKey($0) }) == Set(applicationStates.keys) else { return false }
        for app in applications {
            let key = Self.applicationKey(app)
            guard app.body["metadata", "annotations", ApplicationRefresh.annotation] == nil,
                let state = applicationStates[key], !state.syncFailed, let synced = state.syncedRevision
            else { return false }
            let source = ApplicationSource(app)
            guard source.spec["chart"] == nil, state.syncedSource == syncSourceKey(key, source: source) else {
                return false
            }
            guard let resolved = try? await gitSource.revision(repoURL: source.repoURL, revision: source.revision),
                resolved == synced
            else { return false }
        }
        return true
    }

    /// What an Application syncs from besides the commit: a sync at the same commit from the same source applies
    /// nothing new.
    func syncSourceKey(_ key: String, source: ApplicationSource) -> String {
        let remote = remoteModel(forApplication: key)
        return ([source.repoURL, source.path, source.revision, String(source.recurse), source.destination]
            + (remote.map { [$0.server] } ?? [])).joined(separator: "|")
    }

    static func applicationKey(_ object: StoredObject) -> String { "\(object.namespace ?? "")/\(object.name)" }

    private mutating func syncApplication(_ key: String, gitSource: ModelledGitSource, renders: RenderedManifests?)
        async
    {
        let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2, let app = objects[Self.key(kind: "Application", namespace: parts[0], name: parts[1])]
        else { return }
        func fail(_ sync: String, _ type: String, _ message: String) {
            applicationStates[key] = ApplicationState(
                syncStatus: sync, healthStatus: "Unknown", message: message,
                conditions: [ApplicationCondition(type: type, message: message)], syncFailed: true)
        }
        guard argoCDVersion != nil else {
            fail("Unknown", "ComparisonError", "Argo CD is not installed: nothing reconciles this Application")
            return
        }
        let application = ApplicationSource(app)
        let source = application.spec
        if source["chart"] != nil {
            // A chart cannot be fetched offline: its release is checked against the catalog shoal ships.
            if let problem = await helmProblem(app, gitSource: gitSource) {
                fail("Unknown", "ComparisonError", "Failed to load target state: failed to generate manifest: \(problem)")
            } else {
                // shoal's monitoring charts are modelled: the workloads its own manifests define.
                do {
                    if let manifests = try await helmModel(app, gitSource: gitSource) {
                        let destination = application.destination
                        if objects["Namespace//\(destination)"] == nil { createNamespaceForSync(destination) }
                        _ = try apply(manifests: manifests, owner: key, defaultNamespace: destination)
                    }
                } catch {
                    fail("OutOfSync", "SyncError", "one or more objects failed to apply, reason: \(error)")
                    return
                }
                applicationStates[key] = ApplicationState(
                    syncStatus: "Synced", healthStatus: "Unknown", message: nil, conditions: [], syncFailed: false,
                    syncedRevision: source["targetRevision"]?.string, syncedSource: nil)
            }
            return
        }
        let (repoURL, path, revision) = (application.repoURL, application.path, application.revision)
        let (recurse, destination) = (application.recurse, application.destination)
        // Another cluster of a fleet: its cluster Secret must exist, and the objects go to its model.
        let remote = remoteModel(forApplication: key)
        if let remote, remote.model == nil || !registeredClusters().contains(where: { $0.server == remote.server }) {
            fail(
                "Unknown", "InvalidSpecError",
                "application destination spec for \(parts[1]) is invalid: unable to find destination server: there "
                    + "are no clusters with this URL: \(remote.server) (\(app.source))")
            return
        }

        // Like Argo CD: resolve the target revision first; a commit already synced from the same source is not
        // fetched or applied again.
        let resolved: String?
        do {
            resolved = try await gitSource.revision(repoURL: repoURL, revision: revision)
        } catch {
            fail(
                "Unknown", "ComparisonError",
                "Failed to load target state: failed to generate manifest for source 1 of 1: \(error)")
            return
        }
        let sourceKey = syncSourceKey(key, source: application)
        if let resolved, let previous = applicationStates[key], !previous.syncFailed,
            previous.syncedRevision == resolved, previous.syncedSource == sourceKey
        {
            return
        }
        // Argo CD's repo-server keeps what it generated for a commit: a refresh at a synced commit applies the
        // same manifests again without reading or rendering the repository once more.
        let renderKey = resolved.flatMap { commit in
            GitCLISource.looksLikeCommit(commit) && commit.count == 40 ? "\(commit)|\(sourceKey)" : nil
        }
        var manifests: [Manifest] = []
        if let renderKey, let cached = renders?.value(renderKey) {
            manifests = cached
        } else {
            let files: [(path: String, contents: String)]
            do {
                files = try await gitSource.files(repoURL: repoURL, revision: resolved ?? revision, path: path)
            } catch {
                fail(
                    "Unknown", "ComparisonError",
                    "Failed to load target state: failed to generate manifest for source 1 of 1: \(error)")
                return
            }
            let base = path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            let manifestFiles = files.filter { file in
                let lower = file.path.lowercased()
                guard lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") || lower.hasSuffix(".json") else {
                    return false
                }
                let inside = base.isEmpty || base == "." ? file.path : String(file.path.dropFirst(base.count + 1))
                return recurse || !inside.contains("/")
            }
            let kustomized = SimulatedKustomize.kustomizationFile(in: files, directory: path) != nil
            if kustomized {
                // Like Argo CD: a directory with a kustomization is built with kustomize (overlays reach their
                // bases).
                do {
                    let tree = try await gitSource.files(repoURL: repoURL, revision: resolved ?? revision, path: "")
                    manifests = try await SimulatedKustomize.render(tree: tree, directory: path)
                } catch {
                    fail(
                        "Unknown", "ComparisonError",
                        "Failed to load target state: failed to generate manifest for source 1 of 1: \(error)")
                    return
                }
            }
            for file in manifestFiles where !kustomized {
                do {
                    manifests += try ManifestParser.parse(file.contents, source: file.path)
                } catch {
                    fail(
                        "OutOfSync", "ComparisonError",
                        "Failed to load target state: failed to unmarshal \"\(file.path)\": \(error)")
                    return
                }
            }
            if let renderKey { renders?.store(renderKey, manifests) }
        }
        let syncOptions = (app.body["spec", "syncPolicy", "syncOptions"]?.array ?? []).compactMap(\.string)
        do {
            if let remote, var member = remote.model {
                if syncOptions.contains("CreateNamespace=true"), member.objects["Namespace//\(destination)"] == nil {
                    member.createNamespaceForSync(destination)
                }
                _ = try member.apply(manifests: manifests, owner: key, defaultNamespace: destination)
                fleetMembers?[remote.server] = member
            } else {
                if syncOptions.contains("CreateNamespace=true"), objects["Namespace//\(destination)"] == nil {
                    createNamespaceForSync(destination)
                }
                _ = try apply(manifests: manifests, owner: key, defaultNamespace: destination)
                followArgoCDServerImage()
            }
        } catch {
            fail("OutOfSync", "SyncError", "one or more objects failed to apply, reason: \(error)")
            return
        }
        applicationStates[key] = ApplicationState(
            syncStatus: "Synced", healthStatus: "Unknown", message: nil, conditions: [], syncFailed: false,
            syncedRevision: resolved, syncedSource: sourceKey)
    }

    /// Health from the Application's own resources; child Applications do not count (Argo CD does not
    /// aggregate them into the parent's health).
    private mutating func assessHealth(_ key: String, localPods: [SimulatedPod]) {
        var state =
            applicationStates[key]
            ?? ApplicationState(
                syncStatus: "Unknown", healthStatus: "Unknown", message: nil, conditions: [], syncFailed: false)
        // An Application of another cluster of the fleet is assessed on that cluster's model.
        let remote = remoteModel(forApplication: key)?.model
        let model = remote ?? self
        let owned = model.objects.keys.sorted().compactMap { model.objects[$0] }.filter { $0.owner == key }
        if owned.isEmpty && state.syncFailed {
            state.healthStatus = "Missing"
            applicationStates[key] = state
            return
        }
        let pods = remote?.derivedPods() ?? localPods
        var problems: [String] = []
        for object in owned where Self.workloadKinds.contains(object.kind) {
            guard let namespace = object.namespace else { continue }
            let template = Self.podTemplate(of: object)
            let missing = model.missingReferences(
                podSpec: template.spec, namespace: namespace, claimTemplates: template.claims)
            let label = "\(object.source): \(object.kind) \(namespace)/\(object.name)"
            if !missing.isEmpty {
                problems.append("\(label): " + missing.map(\.description).joined(separator: ", "))
                continue
            }
            let workloadKey = Self.key(kind: object.kind, namespace: namespace, name: object.name)
            let stuck = pods.filter { $0.workload == workloadKey && !$0.pod.healthy && !$0.pod.completed }
            if let first = stuck.first {
                let why =
                    first.pod.reason == "Unschedulable"
                    ? "Insufficient cpu or memory on every node" : first.pod.reason ?? "not ready"
                problems.append("\(label): \(stuck.count) pod(s) not ready (\(why))")
            }
        }
        state.healthStatus = problems.isEmpty ? "Healthy" : "Degraded"
        if !problems.isEmpty {
            state.message = problems.joined(separator: "; ")
        } else if !state.syncFailed {
            state.message = nil
        }
        applicationStates[key] = state
    }
}

/// Where an Application syncs from, as its spec says, with Argo CD's defaults for what the spec leaves out.
struct ApplicationSource {
    /// `spec.source`, or the first of `spec.sources`.
    let spec: ManifestValue
    let repoURL: String
    let path: String
    let revision: String
    let recurse: Bool
    /// `spec.destination.namespace`.
    let destination: String

    init(_ app: SimulatedCluster.StoredObject) {
        spec = app.body["spec", "source"] ?? app.body["spec", "sources"]?.array?.first ?? .null
        repoURL = spec["repoURL"]?.string ?? ""
        path = spec["path"]?.string ?? "."
        revision = spec["targetRevision"]?.string ?? "HEAD"
        recurse = spec["directory", "recurse"]?.bool ?? false
        destination = app.body["spec", "destination", "namespace"]?.string ?? "default"
    }
}
