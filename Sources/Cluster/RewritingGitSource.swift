/// A `GitSource` that reads some repositories from elsewhere than their URL says.
///
/// The Applications' `repoURL` is the address a cluster reaches the repository at (`http://host.k3d.internal:PORT/wf`,
/// or the monitoring agent's host address). The simulated Argo CD runs in a shoal process instead, which reaches the
/// same repository where it is really served, or, after the run, in its directory. The Applications keep their real
/// `repoURL`; only the read is redirected.
public struct RewritingGitSource: GitSource {
    /// `repoURL` -> where to read it; a key also matches URLs below it (`KEY/...`).
    public var rewrites: [String: String]
    public var base: any GitSource

    /// - Parameters:
    ///   - rewrites: repository URL to the URL or local path to read instead.
    ///   - base: reads the rewritten location.
    public init(rewrites: [String: String], base: any GitSource = GitCLISource()) {
        self.rewrites = rewrites
        self.base = base
    }

    public func files(repoURL: String, revision: String, path: String) async throws
        -> [(path: String, contents: String)]
    {
        try await base.files(repoURL: rewritten(repoURL), revision: revision, path: path)
    }

    public func revision(repoURL: String, revision: String) async throws -> String? {
        try await base.revision(repoURL: rewritten(repoURL), revision: revision)
    }

    /// The location `repoURL` is read from.
    public func rewritten(_ repoURL: String) -> String {
        let trimmed = Self.normalized(repoURL)
        for (from, to) in rewrites.sorted(by: { $0.key.count > $1.key.count }) {
            let key = Self.normalized(from)
            if trimmed == key { return to }
            if trimmed.hasPrefix(key + "/") { return to + trimmed.dropFirst(key.count) }
        }
        return repoURL
    }

    private static func normalized(_ url: String) -> String {
        var text = url
        while text.hasSuffix("/") { text.removeLast() }
        if text.hasSuffix(".git") { text.removeLast(4) }
        return text
    }
}
