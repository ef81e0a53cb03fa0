import Foundation
import ShoalSupport

/// The model of the git server that runs inside the cluster (the GitOps source of the Applications).
///
/// Its repositories are git bundles held in the simulated cluster's state, so they travel with that state between
/// steps and hosts, as the state already does: a validation agent on another host, or `shoal validate` after
/// `shoal create` has exited, reads the repository from the state it was handed, with no file system or network
/// in common with the host that committed. A push (`receive(...)`) replaces a repository's bundle.
public struct SimulatedGitServer: Codable, Sendable, Equatable {
    /// One repository: its HEAD and every branch, as `git bundle create` wrote them.
    public struct Repository: Codable, Sendable, Equatable {
        /// The commit HEAD (and `main`) points at.
        public var head: String
        public var bundle: Data
    }

    /// The in-cluster host name of the server (`shoal-git.shoal-gitops.svc.cluster.local`).
    public var host: String
    /// Where the server's Service and Deployment live.
    public var namespace: String
    /// The Service that the host name resolves to.
    public var service: String
    /// The Deployment whose pods serve it.
    public var deployment: String
    /// Keyed by the path below the host (`shoal/lab.git`).
    public var repositories: [String: Repository]

    public init(host: String, namespace: String, service: String, deployment: String) {
        self.host = host
        self.namespace = namespace
        self.service = service
        self.deployment = deployment
        self.repositories = [:]
    }

    /// The repository path of a URL on this server, or nil for a URL elsewhere.
    func path(of repoURL: String) -> String? {
        for prefix in ["http://\(host)/", "http://\(service).\(namespace).svc/"] where repoURL.hasPrefix(prefix) {
            var path = String(repoURL.dropFirst(prefix.count))
            while path.hasSuffix("/") { path.removeLast() }
            return path.hasSuffix(".git") ? path : path + ".git"
        }
        return nil
    }
}

extension SimulatedCluster {
    /// Stores a pushed repository on the modelled in-cluster git server (created on the first push).
    /// - Parameters:
    ///   - server: where the server runs; an existing server keeps its repositories.
    ///   - path: the repository below the host (`shoal/lab.git`).
    ///   - head: the pushed commit.
    ///   - bundle: `git bundle create` of the pushed refs.
    public mutating func receiveGitPush(server: SimulatedGitServer, path: String, head: String, bundle: Data) {
        var current = gitServer ?? server
        current.host = server.host
        current.namespace = server.namespace
        current.service = server.service
        current.deployment = server.deployment
        current.repositories[path] = SimulatedGitServer.Repository(head: head, bundle: bundle)
        gitServer = current
    }

    /// Why the modelled server cannot answer now (its Service or ready pods are missing), or nil when it serves.
    /// - Parameter pods: the pods of this model, when derived already.
    func gitServerProblem(_ server: SimulatedGitServer, pods: [SimulatedPod]? = nil) -> String? {
        guard objects[Self.key(kind: "Service", namespace: server.namespace, name: server.service)] != nil else {
            return "dial tcp: lookup \(server.host): no such host (no Service \(server.namespace)/\(server.service))"
        }
        let workload = Self.key(kind: "Deployment", namespace: server.namespace, name: server.deployment)
        let pods = (pods ?? derivedPods()).filter { $0.workload == workload }
        guard pods.contains(where: { $0.pod.healthy }) else {
            return "dial tcp \(server.host):80: connect: connection refused (the git server "
                + "\(server.namespace)/\(server.deployment) has no ready pod)"
        }
        return nil
    }
}

/// Reads the modelled server's repositories for the simulated Argo CD, and everything else through `fallback`.
struct ModelledGitSource: GitSource {
    let server: SimulatedGitServer?
    /// Why the server does not answer, when it does not.
    let problem: String?
    let fallback: any GitSource

    func revision(repoURL: String, revision: String) async throws -> String? {
        guard let server, let path = server.path(of: repoURL) else {
            return try await fallback.revision(repoURL: repoURL, revision: revision)
        }
        let repository = try self.repository(server, path, repoURL)
        if revision == "HEAD" || revision == "main" || revision == "refs/heads/main" { return repository.head }
        if GitCLISource.looksLikeCommit(revision) { return revision }
        throw ShoalError(
            .notFound, "unable to resolve '\(revision)' to a commit SHA in \(repoURL): only main is pushed")
    }

    func files(repoURL: String, revision: String, path: String) async throws -> [(path: String, contents: String)] {
        guard let server, let repositoryPath = server.path(of: repoURL) else {
            return try await fallback.files(repoURL: repoURL, revision: revision, path: path)
        }
        let repository = try self.repository(server, repositoryPath, repoURL)
        let commit = try await self.revision(repoURL: repoURL, revision: revision) ?? repository.head
        let tree = try await BundleTrees.shared.tree(of: repository, at: commit, repoURL: repoURL)
        let relative = path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if relative.isEmpty || relative == "." { return tree }
        let inside = tree.filter { $0.path.hasPrefix(relative + "/") }
        guard !inside.isEmpty else {
            throw ShoalError(.notFound, "app path does not exist: '\(relative)' in \(repoURL) at \(revision)")
        }
        return inside
    }

    private func repository(_ server: SimulatedGitServer, _ path: String, _ repoURL: String) throws
        -> SimulatedGitServer.Repository
    {
        if let problem { throw ShoalError(.unreachable, "git ls-remote of \(repoURL) failed", cause: problem) }
        guard let repository = server.repositories[path] else {
            throw ShoalError(
                .notFound,
                "repository not found: \(repoURL) does not exist on the in-cluster git server "
                    + "\(server.namespace)/\(server.service) (push it again: shoal gitops push WORKFLOW)")
        }
        return repository
    }
}

/// The files of a bundle at a commit, read once per process: a tree read is a `git clone` of the bundle, and the
/// simulated Argo CD asks for the same commit many times (every Application, every step of a validation agent).
final class BundleTrees: @unchecked Sendable {  // `trees` is guarded by `lock`
    static let shared = BundleTrees()
    private let lock = NSLock()
    private var trees: [String: [(path: String, contents: String)]] = [:]
    private var order: [String] = []
    /// How many trees stay cached; older ones are read again when asked for.
    private let capacity = 16

    /// How many bundles were cloned so far (for tests and measurements).
    private(set) var clones = 0

    func tree(of repository: SimulatedGitServer.Repository, at commit: String, repoURL: String) async throws
        -> [(path: String, contents: String)]
    {
        // A commit names its tree: the key needs nothing else.
        let key = commit
        if let cached = cached(key) { return cached }
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("shoal-sim-git-\(UUID().uuidString)").path
        try SecureFile.createDirectory(scratch, mode: 0o700)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let file = scratch + "/repository.bundle"
        try SecureFile.write(repository.bundle, to: file, mode: 0o600)
        let tree: [(path: String, contents: String)]
        do {
            tree = try await GitCLISource().files(repoURL: file, revision: commit, path: "")
        } catch let error as ShoalError {
            throw ShoalError(error.code, "reading \(repoURL) at \(commit) failed: \(error.message)", cause: error.cause)
        }
        store(key, tree)
        return tree
    }

    private func cached(_ key: String) -> [(path: String, contents: String)]? {
        lock.lock()
        defer { lock.unlock() }
        return trees[key]
    }

    private func store(_ key: String, _ tree: [(path: String, contents: String)]) {
        lock.lock()
        defer { lock.unlock() }
        clones += 1
        remember(key, tree)
    }

    /// Keeps `tree` as the files of `commit`. The caller holds `lock`.
    private func remember(_ commit: String, _ tree: [(path: String, contents: String)]) {
        if trees.updateValue(tree, forKey: commit) == nil { order.append(commit) }
        while order.count > capacity { trees[order.removeFirst()] = nil }
    }

    /// Files of a commit read where it was made (the repository its bundle came from), for the reads that follow.
    func prime(_ commit: String, _ tree: [(path: String, contents: String)]) {
        lock.withLock { remember(commit, tree) }
    }
}

extension SimulatedGitServer {
    /// Hands the modelled server's readers (the simulated Argo CD of this process) the files of `commit`, read by
    /// git from the repository whose bundle was pushed: a commit names its tree, so the model then reads that
    /// commit without cloning the bundle it was just given. Readers in other processes still clone the bundle.
    /// - Parameters:
    ///   - commit: the full SHA the bundle's HEAD points at.
    ///   - files: every file of that commit, paths relative to the repository root.
    public static func knownTree(commit: String, files: [(path: String, contents: String)]) {
        guard commit.count == 40, GitCLISource.looksLikeCommit(commit) else { return }
        BundleTrees.shared.prime(commit, files.sorted { $0.path < $1.path })
    }
}

/// The manifests the simulated Argo CD generated for an Application's source at a commit, kept like the
/// repo-server's manifest cache: a refresh at a commit already rendered applies them again without another clone or
/// `kubectl kustomize`. One per client (the model of one cluster as one step sees it).
final class RenderedManifests: @unchecked Sendable {  // `entries` and `order` are guarded by `lock`
    private let lock = NSLock()
    private var entries: [String: [Manifest]] = [:]
    private var order: [String] = []
    /// How many renders stay cached; older ones are rendered again when asked for.
    private let capacity = 32

    /// - Parameter key: the full commit SHA and the source it was rendered from.
    func value(_ key: String) -> [Manifest]? {
        lock.withLock { entries[key] }
    }

    func store(_ key: String, _ manifests: [Manifest]) {
        lock.withLock {
            if entries.updateValue(manifests, forKey: key) == nil { order.append(key) }
            while order.count > capacity { entries[order.removeFirst()] = nil }
        }
    }
}
