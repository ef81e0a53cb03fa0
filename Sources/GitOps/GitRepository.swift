import Foundation
import ShoalSupport

/// What `GitRepository.commitAll(message:)` did.
public struct CommitOutcome: Sendable, Equatable {
    /// HEAD after the call.
    public var sha: String
    /// Whether a new commit was made (false when nothing had changed).
    public var created: Bool

    public init(sha: String, created: Bool) {
        self.sha = sha
        self.created = created
    }
}

/// A local git repository shoal writes manifests into and commits, through the `git` command.
///
/// Every git call carries its own identity and settings, so it works on a machine with no global git configuration
/// and is not affected by one (signing, hooks).
public struct GitRepository: Sendable {
    /// The working tree's directory.
    public let path: String
    public let runner: ProcessRunner
    /// The branch created by `initialize()`.
    public static let branch = "main"
    /// The author and committer of shoal's commits.
    public var authorName = "shoal"
    public var authorEmail = "shoal@localhost"

    /// - Parameters:
    ///   - path: the working tree's directory (created by `initialize()` when missing).
    ///   - runner: runs git.
    public init(path: String, runner: ProcessRunner = ProcessRunner()) {
        self.path = path
        self.runner = runner
    }

    /// Whether `path` already holds a git repository.
    public var exists: Bool {
        FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent(".git"))
    }

    /// Creates the directory and runs `git init -b main` when there is no repository yet; an existing one is kept
    /// as it is, with its history.
    /// - Throws: `ShoalError(.io)` when the directory cannot be made, `.commandFailed` when git fails,
    ///   `.executableNotFound` without git.
    public func initialize() async throws {
        guard !exists else { return }
        try SecureFile.createDirectory(path)
        try await git(["init", "-q", "-b", GitRepository.branch])
    }

    /// Writes files below `path`, creating directories as needed.
    /// - Parameters:
    ///   - files: paths relative to the repository; absolute paths and `..` are refused.
    ///   - directories: directories (relative) whose other regular files are removed, so that a component no
    ///     longer rendered (Headlamp turned off, say) leaves the repository instead of staying deployed.
    /// - Throws: `ShoalError(.invalidInput)` naming a bad path (before anything is written), `.io` when a write fails.
    public func write(_ files: [ManifestFile], removingOthersIn directories: [String] = []) throws {
        for relative in files.map(\.path) + directories where !ManifestFile.isSafeRelativePath(relative) {
            throw ShoalError(
                .invalidInput,
                "refusing to write '\(relative.prefix(200))' into the GitOps repository: "
                    + "use a relative path without '..'"
            )
        }
        for relative in files.map(\.path) where relative == ".git" || relative.hasPrefix(".git/") {
            throw ShoalError(.invalidInput, "refusing to write '\(relative.prefix(200))' inside the .git directory")
        }
        for file in files {
            try SecureFile.write(file.contents, to: (path as NSString).appendingPathComponent(file.path), mode: 0o644)
        }
        let keep = Set(files.map(\.path))
        for directory in directories {
            let absolute = (path as NSString).appendingPathComponent(directory)
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: absolute) else { continue }
            for entry in entries where !keep.contains("\(directory)/\(entry)") {
                var isDirectory: ObjCBool = false
                let full = (absolute as NSString).appendingPathComponent(entry)
                if FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue {
                    try? FileManager.default.removeItem(atPath: full)
                }
            }
        }
    }

    /// Stages everything and commits it; makes no commit when nothing changed.
    /// - Parameter message: the commit message.
    /// - Returns: HEAD and whether a commit was created.
    /// - Throws: `ShoalError(.commandFailed)` when git fails, `.invalidInput` when a repository without any
    ///   commit has nothing to commit.
    public func commitAll(message: String) async throws -> CommitOutcome {
        try await git(["add", "-A"])
        // `git commit` itself says whether anything changed (exit 1, "nothing to commit"): no `status` first.
        let commit = try await git(["commit", "-q", "--no-verify", "-m", message], allowFailure: true)
        let nothingToCommit =
            !commit.succeeded && commit.status == 1 && !commit.timedOut && !commit.terminatedBySignal
            && (commit.standardOutput + commit.standardError).contains("nothing to commit")
        guard commit.succeeded || nothingToCommit else { throw failure(["commit"], commit) }
        guard let sha = try await head() else {
            if nothingToCommit { throw ShoalError(.invalidInput, "nothing to commit in the empty repository \(path)") }
            throw ShoalError(.commandFailed, "git commit left no HEAD in \(path)")
        }
        return CommitOutcome(sha: sha, created: commit.succeeded)
    }

    /// The commit HEAD points at, or nil before the first commit (or before `initialize()`).
    /// - Throws: `ShoalError(.commandFailed)` when git fails otherwise.
    public func head() async throws -> String? {
        guard exists else { return nil }
        let result = try await git(["rev-parse", "--verify", "-q", "HEAD^{commit}"], allowFailure: true)
        if result.succeeded { return result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) }
        if result.status == 1 && !result.timedOut { return nil }
        throw failure(["rev-parse"], result)
    }

    /// Pushes HEAD to `main` of a remote the user owns (`--gitops-remote`), with the user's own git credentials.
    /// - Parameters:
    ///   - url: the remote repository.
    ///   - branch: the remote branch.
    /// - Throws: `ShoalError(.commandFailed)` with git's message when the push is refused.
    public func push(to url: String, branch: String = GitRepository.branch) async throws {
        guard !url.hasPrefix("-"), !branch.hasPrefix("-") else {
            throw ShoalError(.invalidInput, "invalid git remote '\(url.prefix(200))'")
        }
        try await git(["push", "-q", "--", url, "HEAD:refs/heads/\(branch)"], timeout: .seconds(120))
    }

    /// Pushes HEAD to `main` of a smart-HTTP server that wants HTTP Basic credentials (the in-cluster git server,
    /// `shoal gitops serve`). The credentials travel in git's environment, never on its command line or in a URL
    /// that a log could show.
    /// - Parameters:
    ///   - url: the repository's `http://` URL, without credentials.
    ///   - user: the HTTP user.
    ///   - password: the HTTP password.
    /// - Throws: `ShoalError(.commandFailed)` with git's message when the push is refused or the server is down.
    public func push(to url: String, user: String, password: String) async throws {
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw ShoalError(.invalidInput, "invalid git server URL '\(url.prefix(200))': use http:// or https://")
        }
        let credential = Data("\(user):\(password)".utf8).base64EncodedString()
        try await git(
            ["push", "-q", "--", url, "HEAD:refs/heads/\(GitRepository.branch)"], timeout: .seconds(120),
            environment: [
                "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": "Authorization: Basic \(credential)",
            ])
    }

    /// Every branch and HEAD as a git bundle (what the simulated cluster's git server holds).
    /// - Returns: the bundle's bytes and the commit HEAD points at.
    /// - Throws: `ShoalError(.commandFailed)` when git fails, `.invalidInput` before the first commit.
    /// - Parameter known: HEAD when the caller knows it already (`commitAll` returned it): one `git` less.
    public func bundle(head known: String? = nil) async throws -> (data: Data, head: String) {
        let current: String?
        if let known { current = known } else { current = try await head() }
        guard let head = current else {
            throw ShoalError(.invalidInput, "the repository \(path) has no commit to hand to the git server")
        }
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("shoal-bundle-\(UUID().uuidString).bundle").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try await git(["bundle", "create", "-q", scratch, "HEAD", GitRepository.branch])
        guard let data = FileManager.default.contents(atPath: scratch) else {
            throw ShoalError(.io, "git bundle wrote nothing for \(path)")
        }
        return (data, head)
    }

    /// Every file of `commit` as git stores it (`git ls-tree` and `git cat-file --batch`, nothing checked out).
    /// - Returns: paths relative to the repository root with their text, sorted.
    /// - Throws: `ShoalError(.commandFailed)` when git fails or its answer cannot be read.
    public func files(at commit: String) async throws -> [(path: String, contents: String)] {
        guard (7...64).contains(commit.count), commit.allSatisfy(\.isHexDigit) else {
            throw ShoalError(.invalidInput, "'\(commit.prefix(80))' is not a commit id")
        }
        let listing = try await git(["ls-tree", "-r", "-z", "--full-tree", commit])
        var entries: [(path: String, object: String)] = []
        for record in listing.standardOutput.split(separator: "\0") {
            // <mode> SP <type> SP <object> TAB <path>
            guard let tab = record.firstIndex(of: "\t") else { continue }
            let fields = record[..<tab].split(separator: " ")
            guard fields.count == 3, fields[1] == "blob" else { continue }
            entries.append((String(record[record.index(after: tab)...]), String(fields[2])))
        }
        let output = try await runner.runBytes(
            "git", settings + ["cat-file", "--batch"], workingDirectory: path, environment: environment,
            input: Array(entries.map { $0.object + "\n" }.joined().utf8), timeout: .seconds(60))
        guard output.succeeded, !output.truncated else {
            throw ShoalError(
                .commandFailed, "git cat-file failed in \(path)",
                cause: String(decoding: output.standardError.suffix(2000), as: UTF8.self))
        }
        // Each answer: <object> SP blob SP <size> LF <contents> LF
        let bytes = output.standardOutput
        var offset = 0
        var result: [(path: String, contents: String)] = []
        for entry in entries {
            guard let newline = bytes[offset...].firstIndex(of: UInt8(ascii: "\n")) else { break }
            let header = String(decoding: bytes[offset..<newline], as: UTF8.self).split(separator: " ")
            guard header.count == 3, header[0] == entry.object, let size = Int(header[2]), size >= 0,
                newline + 1 + size < bytes.count
            else {
                throw ShoalError(.commandFailed, "git cat-file answered unexpectedly for \(entry.path) in \(path)")
            }
            let start = newline + 1
            result.append((entry.path, String(decoding: bytes[start..<start + size], as: UTF8.self)))
            offset = start + size + 1
        }
        guard result.count == entries.count else {
            throw ShoalError(.commandFailed, "git cat-file answered for fewer files than listed in \(path)")
        }
        return result.sorted { $0.path < $1.path }
    }

    private var settings: [String] {
        [
            "-c", "user.name=\(authorName)", "-c", "user.email=\(authorEmail)", "-c", "commit.gpgsign=false",
            "-c", "core.hooksPath=/dev/null", "-c", "init.defaultBranch=\(GitRepository.branch)",
        ]
    }

    private var environment: [String: String] {
        [
            "GIT_AUTHOR_NAME": authorName, "GIT_AUTHOR_EMAIL": authorEmail,
            "GIT_COMMITTER_NAME": authorName, "GIT_COMMITTER_EMAIL": authorEmail,
            "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C",
        ]
    }

    @discardableResult
    func git(
        _ arguments: [String], allowFailure: Bool = false, timeout: Duration = .seconds(60),
        environment extra: [String: String] = [:]
    ) async throws
        -> ProcessResult
    {
        let environment = environment.merging(extra) { $1 }
        let result = try await runner.run(
            "git", settings + arguments, workingDirectory: path, environment: environment, timeout: timeout)
        if !allowFailure && !result.succeeded { throw failure(arguments, result) }
        return result
    }

    private func failure(_ arguments: [String], _ result: ProcessResult) -> ShoalError {
        let what = result.timedOut ? "timed out" : "failed with status \(result.status)"
        return ShoalError(
            .commandFailed, "git \(arguments.first ?? "") \(what) in \(path)", cause: result.standardErrorTail())
    }
}
