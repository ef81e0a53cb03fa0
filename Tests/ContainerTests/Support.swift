import Foundation
import ShoalSupport
import Testing

/// Paths of the package this test bundle belongs to.
enum Package {
    static var root: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    /// The shoal executable built next to this test bundle.
    static var shoal: String {
        let bundle = Bundle.main.bundleURL.deletingLastPathComponent()
        let candidates = [bundle.appendingPathComponent("shoal").path, root + "/.build/debug/shoal"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[1]
    }

    static var isCI: Bool { !(ProcessInfo.processInfo.environment["CI"] ?? "").isEmpty }
}

/// A test that cannot run here: a failure when `CI` is set, a visible skip otherwise.
func unavailable(_ reason: String, test: String = #function) {
    if Package.isCI {
        Issue.record("cannot run \(test) but CI is set: \(reason) (scripts/install-deps.sh --test installs it)")
    } else {
        print("SKIPPED \(test): \(reason) (scripts/install-deps.sh --test installs it)")
    }
}

/// A short random suffix for names this test creates (network namespaces, compose projects, images).
func uniqueSuffix() -> String { String(UUID().uuidString.lowercased().filter(\.isHexDigit).prefix(8)) }

/// Whether this process may create network namespaces (root, `ip` installed, and the kernel lets it).
func networkNamespacesAvailable() async -> String? {
    guard ProcessRunner.locate("ip") != nil else { return "ip (iproute2) is not installed" }
    guard getuid() == 0 else { return "network namespaces need root" }
    let probe = "shoal-probe-\(uniqueSuffix())"
    let added = try? await ProcessRunner().run("ip", ["netns", "add", probe], timeout: .seconds(10))
    _ = try? await ProcessRunner().run("ip", ["netns", "delete", probe], timeout: .seconds(10))
    guard let added, added.succeeded else {
        return "cannot create a network namespace: \(added?.standardErrorTail() ?? "ip failed")"
    }
    return nil
}

/// What a finished command left behind.
struct CommandResult: Sendable {
    var status: Int32
    var terminatedBySignal: Bool
    var standardOutput: String
    var standardError: String
    var timedOut: Bool

    var succeeded: Bool { status == 0 && !terminatedBySignal && !timedOut }

    func standardErrorTail(lines: Int = 8) -> String {
        standardError.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }
}

/// Runs a command with its output in files, spawned and reaped here rather than by Foundation's `Process`: podman
/// leaves conmon processes behind that inherit the descriptors of the command that started them, and `Process` (like
/// a pipe) waits for those to close. SIGTERM at the timeout, SIGKILL two seconds later.
func runDetached(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:], timeout: Duration
) async throws -> CommandResult {
    guard let path = ProcessRunner.locate(executable) else {
        throw ShoalError(.executableNotFound, "\(executable) is not installed or not on PATH")
    }
    let base = NSTemporaryDirectory() + "shoal-run-\(uniqueSuffix())"
    defer {
        unlink(base + ".out")
        unlink(base + ".err")
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, base + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, base + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, path, &actions, nil, argv, envp)
    guard spawned == 0 else {
        throw ShoalError(.launchFailed, "cannot start \(executable): \(String(cString: strerror(spawned)))")
    }
    let started = ContinuousClock.now
    var status: Int32 = 0
    var timedOut = false
    var killAt: ContinuousClock.Instant?
    while waitpid(pid, &status, WNOHANG) == 0 {
        if killAt == nil && ContinuousClock.now - started > timeout {
            timedOut = true
            kill(pid, SIGTERM)
            killAt = ContinuousClock.now + .seconds(2)
        }
        if let killAt, ContinuousClock.now > killAt { kill(pid, SIGKILL) }
        try await Task.sleep(for: .milliseconds(50))
    }
    // `podman-compose run` gives the container a terminal: its lines end in CR LF.
    let output = ((try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "")
        .replacingOccurrences(of: "\r\n", with: "\n")
    let error = ((try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "")
        .replacingOccurrences(of: "\r\n", with: "\n")
    let signaled = (status & 0x7f) != 0
    return CommandResult(
        status: signaled ? status & 0x7f : (status >> 8) & 0xff, terminatedBySignal: signaled,
        standardOutput: output, standardError: error, timedOut: timedOut)
}

/// Runs a command (see `runDetached`), and records its output when it fails.
@discardableResult
func run(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:],
    timeout: Duration = .seconds(120), expectSuccess: Bool = true,
    sourceLocation: SourceLocation = #_sourceLocation
) async throws -> CommandResult {
    let result = try await runDetached(executable, arguments, environment: environment, timeout: timeout)
    if expectSuccess && !result.succeeded {
        Issue.record(
            """
            \(executable) \(arguments.joined(separator: " ")) exited \(result.status)\
            \(result.timedOut ? " (timed out)" : ""):
            \(result.standardOutput.suffix(3000))
            \(result.standardError.suffix(3000))
            """, sourceLocation: sourceLocation)
    }
    return result
}

/// Polls `body` until it returns a value or `deadline` passes.
func poll<T>(
    until deadline: ContinuousClock.Instant, every interval: Duration = .milliseconds(500),
    _ body: () async throws -> T?
) async throws -> T? {
    while ContinuousClock.now < deadline {
        if let value = try await body() { return value }
        try await Task.sleep(for: interval)
    }
    return try await body()
}
