import Foundation
import ShoalSupport

/// How the simulated Argo CD renders a Kustomize directory: with `kubectl kustomize` (offline, as Argo CD's own
/// kustomize would), or, where kubectl is not installed, with a built-in subset (local `resources`, `patches` by
/// path as strategic merges, `namespace`, `replicas`) that names what it cannot do.
///
/// The model has no network: a resource that is an Argo CD release's install manifest
/// (`https://raw.githubusercontent.com/argoproj/argo-cd/VERSION/manifests/install.yaml`) is replaced by the model's
/// own Argo CD of that version; any other remote resource fails the sync, naming the file.
enum SimulatedKustomize {
    static let fileNames = ["kustomization.yaml", "kustomization.yml", "Kustomization"]

    /// The kustomization file directly in `directory`, if there is one.
    static func kustomizationFile(in files: [(path: String, contents: String)], directory: String) -> String? {
        let base = directory.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let prefix = base.isEmpty || base == "." ? "" : base + "/"
        return fileNames.map { prefix + $0 }.first { name in files.contains { $0.path == name } }
    }

    /// Whether `kubectl` can render (it is on PATH); the subset renders otherwise.
    static var kubectlAvailable: Bool { ProcessRunner.locate("kubectl") != nil }

    /// Renders `directory` of the repository `tree`.
    /// - Parameters:
    ///   - tree: every file of the repository at the synced commit (overlays reach their bases with `../`).
    ///   - directory: the Application's path.
    ///   - useKubectl: `kubectl kustomize` when true, the built-in subset otherwise.
    /// - Throws: `ShoalError(.invalidInput)` naming the kustomization file and kustomize's reason.
    static func render(
        tree: [(path: String, contents: String)], directory: String, useKubectl: Bool = kubectlAvailable
    ) async throws -> [Manifest] {
        let base = directory.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard let file = kustomizationFile(in: tree, directory: base) else {
            throw ShoalError(.notFound, "no kustomization.yaml in \(base)")
        }
        let prepared = try buildInput(tree, directory: base)
        let key = KustomizeRenders.Key(
            directory: base, useKubectl: useKubectl, files: prepared.flatMap { [$0.path, $0.contents] })
        return try await KustomizeRenders.shared.render(key) {
            if useKubectl {
                return try await renderWithKubectl(tree: prepared, directory: base, file: file)
            }
            var files: [String: String] = [:]
            for entry in prepared { files[entry.path] = entry.contents }
            var visiting: Set<String> = []
            return try subset(files: files, directory: base, visiting: &visiting)
        }
    }

    /// What a build of `directory` reads, and is keyed by: the self-contained directory's files or else the whole
    /// tree, Argo CD release URLs replaced, by path.
    static func buildInput(_ tree: [(path: String, contents: String)], directory: String) throws
        -> [(path: String, contents: String)]
    {
        try substituteArgoCDReleases(selfContained(tree, directory: directory) ?? tree).sorted { $0.path < $1.path }
    }

    /// The files below `directory`, when none of them names a path with `..`: kustomize then reads nothing else
    /// (files outside its root are refused; only `../` reaches another directory), so a build depends on these
    /// alone, and is the same for every commit, or every tree handed to `SimulatedRepoServer.prebuild`, that has
    /// them. Nil when a file reaches outside, or `directory` is the root.
    static func selfContained(_ tree: [(path: String, contents: String)], directory: String)
        -> [(path: String, contents: String)]?
    {
        guard !directory.isEmpty, directory != "." else { return nil }
        let inside = tree.filter { $0.path.hasPrefix(directory + "/") }
        return inside.contains { $0.contents.contains("..") } ? nil : inside
    }

    // MARK: Argo CD releases

    /// The file name a release URL is replaced with, next to the kustomization that names it.
    static func localReleaseName(_ version: String) -> String { "shoal-model-argocd-\(version)-install.yaml" }

    /// Replaces every Argo CD release URL in a kustomization by a local copy of the model's install of that version.
    static func substituteArgoCDReleases(_ tree: [(path: String, contents: String)]) throws
        -> [(path: String, contents: String)]
    {
        var result: [(path: String, contents: String)] = []
        for entry in tree {
            let name = (entry.path as NSString).lastPathComponent
            guard fileNames.contains(name), entry.contents.contains("https://") || entry.contents.contains("http://")
            else {
                result.append(entry)
                continue
            }
            var text = entry.contents
            let directory = (entry.path as NSString).deletingLastPathComponent
            for document in try ManifestParser.compose(entry.contents, source: entry.path) {
                for resource in document["resources"]?.array ?? [] {
                    guard let url = resource.string, url.contains("://") else { continue }
                    guard let version = SimulatedClusterClient.argoCDReleaseVersion(url) else {
                        throw ShoalError(
                            .unreachable,
                            "\(entry.path): accumulating resources: \(url): the simulated cluster has no network; "
                                + "only Argo CD release manifests are known to it")
                    }
                    let local = localReleaseName(version)
                    text = text.replacingOccurrences(of: url, with: local)
                    result.append(
                        (directory.isEmpty ? local : "\(directory)/\(local)", releaseManifests(version: version)))
                }
            }
            result.append((entry.path, text))
        }
        return result
    }

    /// The model's Argo CD install of `version` as a release's install.yaml has it: without the initial admin
    /// Secret, which the server creates on its first start.
    static func releaseManifests(version: String) -> String {
        ArgoCDComponents.manifests(version: version, adminPassword: "unused")
            .components(separatedBy: "\n---\n")
            .filter { !$0.contains("name: argocd-initial-admin-secret") }
            .joined(separator: "\n---\n")
            // A release's install.yaml names no namespace: it is applied with `-n argocd` (or kustomize's namespace).
            .replacingOccurrences(of: ", namespace: argocd", with: "")
            .replacingOccurrences(of: "\n  namespace: argocd\n", with: "\n")
    }

    // MARK: kubectl

    private static func renderWithKubectl(tree: [(path: String, contents: String)], directory: String, file: String)
        async throws -> [Manifest]
    {
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("shoal-sim-kustomize-\(UUID().uuidString)").path
        try SecureFile.createDirectory(scratch, mode: 0o700)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        for entry in tree {
            let target = (scratch as NSString).appendingPathComponent(entry.path)
            try SecureFile.createDirectory((target as NSString).deletingLastPathComponent, mode: 0o700)
            try SecureFile.write(entry.contents, to: target, mode: 0o600)
        }
        let root = directory.isEmpty || directory == "." ? scratch : "\(scratch)/\(directory)"
        let result = try await ProcessRunner().run(
            "kubectl", ["kustomize", root], environment: GoRuntime.shortRunEnvironment(), timeout: .seconds(60))
        guard result.succeeded else {
            var reason = result.standardErrorTail().replacingOccurrences(of: scratch + "/", with: "")
            // kubectl's klog prefix (time, pid, source line) says nothing about the file.
            if let err = reason.range(of: "err=") { reason = String(reason[err.upperBound...]) }
            throw ShoalError(.invalidInput, "\(file): kustomize build failed: \(reason)")
        }
        return try ManifestParser.parse(result.standardOutput, source: file)
    }

    // MARK: The built-in subset

    static let subsetFields: Set<String> = [
        "apiVersion", "kind", "metadata", "resources", "patches", "patchesStrategicMerge", "namespace", "replicas",
    ]

    private static func subset(files: [String: String], directory: String, visiting: inout Set<String>) throws
        -> [Manifest]
    {
        guard let file = fileNames.map({ directory.isEmpty ? $0 : "\(directory)/\($0)" }).first(where: {
            files[$0] != nil
        }), let text = files[file]
        else { throw ShoalError(.notFound, "no kustomization.yaml in \(directory)") }
        guard visiting.insert(directory).inserted else {
            throw ShoalError(.invalidInput, "\(file): cycle among kustomizations")
        }
        defer { visiting.remove(directory) }
        guard let kustomization = try ManifestParser.compose(text, source: file).first else {
            throw ShoalError(.invalidInput, "\(file): empty kustomization")
        }
        for key in kustomization.object?.keys.sorted() ?? [] where !subsetFields.contains(key) {
            throw ShoalError(
                .invalidInput,
                "\(file): '\(key)' needs kubectl kustomize (kubectl is not installed; shoal's built-in subset knows "
                    + "resources, patches, namespace and replicas)")
        }
        var manifests: [Manifest] = []
        for resource in kustomization["resources"]?.array ?? [] {
            guard let relative = resource.string else { throw ShoalError(.invalidInput, "\(file): bad resource") }
            let target = try resolve(relative, from: directory, file: file)
            if let contents = files[target] {
                manifests += try ManifestParser.parse(contents, source: target)
            } else if fileNames.contains(where: { files[target.isEmpty ? $0 : "\(target)/\($0)"] != nil }) {
                manifests += try subset(files: files, directory: target, visiting: &visiting)
            } else {
                throw ShoalError(
                    .invalidInput, "\(file): accumulating resources: '\(relative)': no such file or kustomization")
            }
        }
        var patchPaths = (kustomization["patchesStrategicMerge"]?.array ?? []).compactMap(\.string)
        for patch in kustomization["patches"]?.array ?? [] {
            guard let path = patch["path"]?.string, patch.object?.keys.count == 1 else {
                throw ShoalError(
                    .invalidInput, "\(file): only patches with a path alone work without kubectl kustomize")
            }
            patchPaths.append(path)
        }
        for relative in patchPaths {
            let target = try resolve(relative, from: directory, file: file)
            guard let contents = files[target] else {
                throw ShoalError(.invalidInput, "\(file): patch '\(relative)' does not exist")
            }
            for patch in try ManifestParser.parse(contents, source: target) {
                guard let index = manifests.firstIndex(where: { $0.kind == patch.kind && $0.name == patch.name })
                else {
                    throw ShoalError(
                        .invalidInput, "\(target): no \(patch.kind) \(patch.name) to patch among the resources")
                }
                manifests[index].body = SimulatedClusterClient.merge(
                    manifests[index].body, patch.body, strategic: true)
            }
        }
        for entry in kustomization["replicas"]?.array ?? [] {
            guard let name = entry["name"]?.string, let count = entry["count"]?.int else {
                throw ShoalError(.invalidInput, "\(file): replicas need a name and a count")
            }
            for index in manifests.indices where manifests[index].name == name {
                manifests[index].body = SimulatedClusterClient.merge(
                    manifests[index].body, .object(["spec": .object(["replicas": .int(count)])]), strategic: false)
            }
        }
        if let namespace = kustomization["namespace"]?.string {
            for index in manifests.indices where !SimulatedCluster.clusterScopedKinds.contains(manifests[index].kind) {
                manifests[index].namespace = namespace
                manifests[index].body = SimulatedClusterClient.merge(
                    manifests[index].body, .object(["metadata": .object(["namespace": .string(namespace)])]),
                    strategic: false)
            }
        }
        return manifests
    }

    /// `relative` seen from `directory`, inside the repository.
    private static func resolve(_ relative: String, from directory: String, file: String) throws -> String {
        var parts = directory.isEmpty || directory == "." ? [] : directory.split(separator: "/").map(String.init)
        for part in relative.split(separator: "/").map(String.init) {
            switch part {
            case ".": continue
            case "..":
                guard !parts.isEmpty else {
                    throw ShoalError(.invalidInput, "\(file): '\(relative)' leaves the repository")
                }
                parts.removeLast()
            default: parts.append(part)
            }
        }
        return parts.joined(separator: "/")
    }
}

extension SimulatedCluster {
    /// After a sync: the model's Argo CD version follows the image of its `argocd-server` Deployment, so a commit
    /// that bumps the version in `argocd/` rolls the simulated Argo CD (its pods follow the Deployments).
    mutating func followArgoCDServerImage() {
        guard argoCDVersion != nil,
            let server = objects[Self.key(kind: "Deployment", namespace: "argocd", name: "argocd-server")],
            let image = server.body["spec", "template", "spec", "containers"]?.array?.first?["image"]?.string,
            let tag = SimulatedClusterClient.imageTag(image)
        else { return }
        argoCDVersion = tag
    }
}

extension SimulatedCluster {
    /// `CreateNamespace=true`: Argo CD creates the destination namespace before it applies (and never prunes it).
    mutating func createNamespaceForSync(_ name: String) {
        guard Names.isDNSLabel(name) else { return }
        objects["Namespace//\(name)"] = StoredObject(
            apiVersion: "v1", kind: "Namespace", namespace: nil, name: name, source: "argocd-create-namespace",
            owner: nil,
            body: .object([
                "apiVersion": .string("v1"), "kind": .string("Namespace"),
                "metadata": .object(["name": .string(name)]),
            ]))
    }
}

/// Kustomize builds of this process by their input (every file of the tree and the directory), finished or under
/// way: a build asked for while the same one runs waits for it. Failed builds are not kept.
final class KustomizeRenders: @unchecked Sendable {  // `builds` and `order` are guarded by `lock`
    struct Key: Hashable, Sendable {
        var directory: String
        var useKubectl: Bool
        /// Path, contents, path, contents, ...
        var files: [String]
    }

    static let shared = KustomizeRenders()
    private let lock = NSLock()
    private var builds: [Key: Task<[Manifest], any Error>] = [:]
    private var order: [Key] = []
    /// How many builds stay; older ones are built again when asked for.
    private let capacity = 8

    func render(_ key: Key, _ build: @escaping @Sendable () async throws -> [Manifest]) async throws -> [Manifest] {
        let task = lock.withLock { () -> Task<[Manifest], any Error> in
            if let running = builds[key] { return running }
            let started = Task { try await build() }
            builds[key] = started
            order.append(key)
            while order.count > capacity { builds[order.removeFirst()] = nil }
            return started
        }
        do {
            return try await task.value
        } catch {
            lock.withLock {
                if builds[key] == task {
                    builds[key] = nil
                    order.removeAll { $0 == key }
                }
            }
            throw error
        }
    }
}

/// What the model's Argo CD repo-server can start on before any Application asks.
public enum SimulatedRepoServer {
    /// Starts building, in the background, each directory of `paths` that holds a kustomization in `files` (a
    /// commit's whole tree, as `SimulatedGitServer.knownTree` is given it, or, for a directory that reaches no file
    /// outside it, that directory's files): the sync of an Application of a commit with the same files and path then
    /// waits for that build instead of starting its own. Errors are left to that sync.
    public static func prebuild(files: [(path: String, contents: String)], paths: [String]) {
        let tree = files.sorted { $0.path < $1.path }
        for path in Set(paths) where SimulatedKustomize.kustomizationFile(in: tree, directory: path) != nil {
            Task { _ = try? await SimulatedKustomize.render(tree: tree, directory: path) }
        }
    }
}
