import ShoalSupport

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
    /// When the rewritten location cannot be reached (a loopback URL read on another host), read `repoURL` itself.
    public var fallBackToOriginal: Bool

    /// - Parameters:
    ///   - rewrites: repository URL to the URL or local path to read instead.
    ///   - base: reads the rewritten location.
    ///   - fallBackToOriginal: read the original URL when the rewritten one is unreachable.
    public init(rewrites: [String: String], base: any GitSource = GitCLISource(), fallBackToOriginal: Bool = false) {
        self.rewrites = rewrites
        self.base = base
        self.fallBackToOriginal = fallBackToOriginal
    }

    public func files(repoURL: String, revision: String, path: String) async throws
        -> [(path: String, contents: String)]
    {
        try await withFallback(repoURL) { try await base.files(repoURL: $0, revision: revision, path: path) }
    }

    public func revision(repoURL: String, revision: String) async throws -> String? {
        try await withFallback(repoURL) { try await base.revision(repoURL: $0, revision: revision) }
    }

    private func withFallback<T>(_ repoURL: String, _ read: (String) async throws -> T) async throws -> T {
        let location = rewritten(repoURL)
        do {
            return try await read(location)
        } catch let error as ShoalError where fallBackToOriginal && error.code == .unreachable && location != repoURL {
            return try await read(repoURL)
        }
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
