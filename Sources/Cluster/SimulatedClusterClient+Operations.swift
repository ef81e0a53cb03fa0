import Foundation
import ShoalSupport

// The installation steps of `ClusterClient` against the model. They answer as the API server would, so a handler
// runs the same calls in demo and real mode.
extension SimulatedClusterClient {
    public func createNamespace(_ name: String) async throws -> Bool {
        try checkReachable()
        guard Names.isDNSLabel(name) else {
            throw ShoalError(
                .invalidInput, "The Namespace \"\(name.prefix(80))\" is invalid: metadata.name: must be a DNS label")
        }
        if cluster.objects["Namespace//\(name)"] != nil { return false }
        let body: ManifestValue = .object([
            "apiVersion": .string("v1"), "kind": .string("Namespace"),
            "metadata": .object(["name": .string(name)]),
        ])
        let manifest = Manifest(
            apiVersion: "v1", kind: "Namespace", name: name, namespace: nil, body: body, source: "kubectl-create")
        _ = try cluster.apply(manifests: [manifest], owner: nil, defaultNamespace: "default")
        return true
    }

    /// A release URL of Argo CD's install manifest installs the model's Argo CD of that version (the model has no
    /// network); any other URL is unreachable. A file is parsed and applied; a file holding Argo CD's own install
    /// (an `argocd-server` Deployment) installs the model's Argo CD of the version its image names.
    /// Like a real Argo CD server on first start, an installed one picks a
    /// random initial admin password: a simulated cluster must not hand out
    /// one that can be guessed from its name.
    static func initialAdminPassword() -> String { Secrets.password(length: 16) }

    public func apply(location: String, namespace: String?, serverSide: Bool) async throws {
        try checkReachable()
        if location.hasPrefix("https://") || location.hasPrefix("http://") {
            guard let version = Self.argoCDReleaseVersion(location) else {
                throw ShoalError(
                    .unreachable,
                    "error: unable to read URL \"\(location.prefix(200))\": the simulated cluster has no network; "
                        + "only Argo CD release manifests are known to it")
            }
            cluster.installArgoCD(version: version, adminPassword: Self.initialAdminPassword())
            return
        }
        guard let data = FileManager.default.contents(atPath: location) else {
            throw ShoalError(.notFound, "error: the path \"\(location.prefix(200))\" does not exist")
        }
        let source = (location as NSString).lastPathComponent
        let manifests = try ManifestParser.parse(String(decoding: data, as: UTF8.self), source: source)
        if let server = manifests.first(where: { $0.kind == "Deployment" && $0.name == "argocd-server" }) {
            let image = server.body["spec", "template", "spec", "containers"]?.array?.first?["image"]?.string ?? ""
            cluster.installArgoCD(version: Self.imageTag(image) ?? "unknown", adminPassword: Self.initialAdminPassword())
            return
        }
        _ = try cluster.apply(manifests: manifests, owner: nil, defaultNamespace: namespace ?? "default")
    }

    public func patch(kind: String, name: String, namespace: String, type: PatchType, patch: String) async throws {
        try checkReachable()
        let object = try storedObject(kind: kind, name: name, namespace: namespace)
        guard let document = try ManifestParser.compose(patch, source: "patch").first, case .object = document else {
            throw ShoalError(.invalidInput, "error: unable to parse \"\(patch.prefix(80))\": not a JSON object")
        }
        let body = Self.merge(object.body, document, strategic: type == .strategic)
        let manifest = Manifest(
            apiVersion: object.apiVersion, kind: object.kind, name: object.name, namespace: object.namespace,
            body: body, source: object.source)
        _ = try cluster.apply(manifests: [manifest], owner: nil, defaultNamespace: namespace)
    }

    public func rolloutRestart(kind: String, name: String, namespace: String) async throws {
        try checkReachable()
        _ = try storedObject(kind: kind, name: name, namespace: namespace)
    }

    /// The model does not change by itself: a workload whose pods are not ready now never will be, so the wait
    /// ends at once with the reason a real one would end with at its deadline.
    public func rolloutStatus(kind: String, name: String, namespace: String, timeout: Duration) async throws {
        _ = try await reconciled()
        let object = try storedObject(kind: kind, name: name, namespace: namespace)
        let key = SimulatedCluster.key(kind: object.kind, namespace: object.namespace, name: object.name)
        let pods = derivedPods().filter { $0.workload == key }.map(\.pod)
        let ready = pods.filter(\.healthy).count
        guard pods.isEmpty || ready < pods.count else { return }
        let reasons = Set(pods.compactMap(\.reason)).sorted()
        throw ShoalError(
            .timeout,
            "\(kind)/\(name) in namespace \(namespace) was not rolled out within \(timeout.shortDescription)",
            cause: "Waiting for \(kind) \"\(name)\" rollout to finish: \(ready) of \(pods.count) updated replicas "
                + "are available" + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: ", ")))"))
    }

    public func configMapData(namespace: String, name: String) async throws -> [String: String] {
        try checkReachable()
        return try storedObject(kind: "configmap", name: name, namespace: namespace).body["data"]?.stringMap ?? [:]
    }

    // MARK: Helpers

    private func storedObject(kind: String, name: String, namespace: String) throws
        -> SimulatedCluster.StoredObject
    {
        let resolved = Self.kinds[kind.lowercased()] ?? kind
        guard let object = cluster.objects[SimulatedCluster.key(kind: resolved, namespace: namespace, name: name)]
        else {
            let plural = resolved.lowercased() + (resolved.hasSuffix("s") ? "es" : "s")
            throw ShoalError(.notFound, "Error from server (NotFound): \(plural) \"\(name)\" not found")
        }
        return object
    }

    /// kubectl's resource names for the kinds the installation steps touch.
    static let kinds: [String: String] = [
        "configmap": "ConfigMap", "configmaps": "ConfigMap", "cm": "ConfigMap",
        "service": "Service", "services": "Service", "svc": "Service",
        "deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
        "statefulset": "StatefulSet", "statefulsets": "StatefulSet", "sts": "StatefulSet",
        "daemonset": "DaemonSet", "daemonsets": "DaemonSet", "ds": "DaemonSet",
        "secret": "Secret", "secrets": "Secret", "namespace": "Namespace", "namespaces": "Namespace",
        "application": "Application", "applications": "Application", "app": "Application",
    ]

    /// `v3.5.1` from `https://raw.githubusercontent.com/argoproj/argo-cd/v3.5.1/manifests/install.yaml`.
    static func argoCDReleaseVersion(_ url: String) -> String? {
        let parts = url.split(separator: "/").map(String.init)
        guard let index = parts.firstIndex(of: "argo-cd"), index + 2 < parts.count, parts[index + 2] == "manifests",
            parts.last?.hasSuffix("install.yaml") == true
        else { return nil }
        return parts[index + 1]
    }

    /// JSON merge patch, or a strategic merge that merges `ports` by port and `containers` by name.
    static func merge(_ base: ManifestValue, _ patch: ManifestValue, strategic: Bool) -> ManifestValue {
        switch (base, patch) {
        case (.object(var members), .object(let changes)):
            for (key, value) in changes {
                if case .null = value {
                    members[key] = nil
                    continue
                }
                let current = members[key] ?? .null
                if strategic, case .array(let old) = current, case .array(let new) = value,
                    let mergeKey = ["ports": "port", "containers": "name"][key]
                {
                    var merged = old
                    for item in new {
                        if let index = merged.firstIndex(where: { $0[mergeKey] == item[mergeKey] }) {
                            merged[index] = merge(merged[index], item, strategic: true)
                        } else {
                            merged.append(item)
                        }
                    }
                    members[key] = .array(merged)
                } else {
                    members[key] = merge(current, value, strategic: strategic)
                }
            }
            return .object(members)
        case (_, .object):
            return merge(.object([:]), patch, strategic: strategic)
        default:
            return patch
        }
    }
}
