import Foundation
import ShoalSupport

/// Reads a GitOps repository the way Argo CD's repo-server does: the files of one directory at one revision.
public protocol GitSource: Sendable {
    /// The files below `path` (recursively) at `revision`.
    /// - Parameters:
    ///   - repoURL: a local path, `file://`, `http://` or `https://` URL.
    ///   - revision: `HEAD`, a branch, a tag or a commit.
    ///   - path: a directory inside the repository; `""` or `.` for its root.
    /// - Returns: paths relative to the repository root, sorted, with their text.
    /// - Throws: `ShoalError(.unreachable)` when the repository cannot be read, `.notFound` when the path or
    ///   revision does not exist.
    func files(repoURL: String, revision: String, path: String) async throws -> [(path: String, contents: String)]

    /// The commit `revision` points at now, the way Argo CD resolves a target revision before it compares; nil
    /// when this source cannot tell cheaply (the Application is then synced on every reconcile).
    /// - Throws: `ShoalError(.unreachable)` when the repository cannot be reached, `.notFound` when the revision
    ///   does not exist.
    func revision(repoURL: String, revision: String) async throws -> String?
}

extension GitSource {
    public func revision(repoURL: String, revision: String) async throws -> String? { nil }
}

/// A `GitSource` that clones with the git command line into a temporary directory, and removes it afterwards.
public struct GitCLISource: GitSource {
    public var runner: ProcessRunner
    public var timeout: Duration

    /// - Parameters:
    ///   - runner: runs `git`.
    ///   - timeout: per git command.
    public init(runner: ProcessRunner = ProcessRunner(), timeout: Duration = .seconds(120)) {
        self.runner = runner
        self.timeout = timeout
    }

    public func files(repoURL: String, revision: String, path: String) async throws
        -> [(path: String, contents: String)]
    {
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("shoal-git-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let checkout = scratch + "/repo"
        try SecureFile.createDirectory(scratch, mode: 0o700)

        // Git refuses a remote path that looks like an option; `--` ends the options.
        let isNamedRef = revision != "HEAD" && !GitCLISource.looksLikeCommit(revision)
        var clone = ["clone", "--quiet", "--depth", "1"]
        if isNamedRef { clone += ["--branch", revision] }
        if GitCLISource.looksLikeCommit(revision) { clone = ["clone", "--quiet", "--no-checkout"] }
        try await git(clone + ["--", repoURL, checkout], what: "clone", repoURL: repoURL, notFound: isNamedRef)
        if GitCLISource.looksLikeCommit(revision) {
            try await git(
                ["-C", checkout, "checkout", "--quiet", "--detach", revision], what: "checkout", repoURL: repoURL,
                notFound: true)
        }

        let relative = path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let base = relative.isEmpty || relative == "." ? checkout : checkout + "/" + relative
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: base, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ShoalError(
                .notFound, "app path does not exist: '\(relative)' in \(GitCLISource.redacted(repoURL)) at \(revision)")
        }
        var result: [(path: String, contents: String)] = []
        let enumerator = FileManager.default.enumerator(atPath: base)
        while let entry = enumerator?.nextObject() as? String {
            if entry == ".git" || entry.hasPrefix(".git/") { continue }
            let full = base + "/" + entry
            var entryIsDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: full, isDirectory: &entryIsDirectory),
                !entryIsDirectory.boolValue, let data = FileManager.default.contents(atPath: full)
            else { continue }
            let repoPath = relative.isEmpty || relative == "." ? entry : relative + "/" + entry
            result.append((repoPath, String(decoding: data, as: UTF8.self)))
        }
        return result.sorted { $0.path < $1.path }
    }

    /// `git ls-remote`: one request to the server, no clone.
    public func revision(repoURL: String, revision: String) async throws -> String? {
        if GitCLISource.looksLikeCommit(revision) && revision.count == 40 { return revision }
        let result = try await runner.run(
            "git", ["ls-remote", "--", repoURL, revision], environment: ["GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"],
            timeout: timeout)
        guard result.succeeded else {
            throw ShoalError(
                .unreachable,
                "git ls-remote of \(GitCLISource.redacted(repoURL)) failed" + (result.timedOut ? " (timed out)" : ""),
                cause: GitCLISource.redactURLs(result.standardErrorTail(lines: 4)))
        }
        guard let line = result.standardOutput.split(separator: "\n").first,
            let sha = line.split(separator: "\t").first, sha.count == 40
        else {
            throw ShoalError(
                .notFound, "unable to resolve '\(revision)' to a commit SHA in \(GitCLISource.redacted(repoURL))")
        }
        return String(sha)
    }

    private func git(_ arguments: [String], what: String, repoURL: String, notFound: Bool) async throws {
        let result = try await runner.run(
            "git", arguments, environment: ["GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"], timeout: timeout)
        guard !result.succeeded else { return }
        let tail = GitCLISource.redactURLs(result.standardErrorTail(lines: 4))
        let revisionMissing =
            tail.contains("Remote branch") || tail.contains("did not match") || tail.contains("reference is not a tree")
        throw ShoalError(
            notFound && revisionMissing ? .notFound : .unreachable,
            "git \(what) of \(GitCLISource.redacted(repoURL)) failed" + (result.timedOut ? " (timed out)" : ""),
            cause: tail)
    }

    static func looksLikeCommit(_ revision: String) -> Bool {
        (7...40).contains(revision.count) && revision.allSatisfy(\.isHexDigit)
    }

    /// A URL without its user information, so a token in it never reaches a message or a log.
    static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@") else {
            return url
        }
        let slash = url[scheme.upperBound...].firstIndex(of: "/") ?? url.endIndex
        guard at < slash else { return url }
        return String(url[..<scheme.upperBound]) + "***@" + String(url[url.index(after: at)...])
    }

    static func redactURLs(_ text: String) -> String {
        text.split(separator: " ", omittingEmptySubsequences: false).map { redacted(String($0)) }
            .joined(separator: " ")
    }
}
