import Coordinator
import Dispatch
import Foundation
import Logging
import Protocol
import ShoalSupport
import ZeroMQ

/// The embedded default of `shoal create`: a coordinator and one process per
/// agent (N for validation) on loopback with ports chosen by the kernel, all
/// stopped when the workflow ends, fails, or the user presses Ctrl-C.
final class EmbeddedCluster: @unchecked Sendable {  // `children` is guarded by `lock`
    let executable: String
    let output: String
    let validationWorkers: Int
    let logLevel: String
    /// Plain TCP between the children (`create --insecure`); CURVE otherwise.
    let insecure: Bool
    let logger: Logger
    private let lock = NSLock()
    private var children: [(name: String, process: Process)] = []
    private var signalSources: [DispatchSourceSignal] = []
    /// More arguments for the agents of a role (the monitoring agent's GitOps address, say); set before `run`.
    var agentArguments: [Role: [String]] = [:]

    init(executable: String, output: String, validationWorkers: Int, logLevel: String, insecure: Bool, logger: Logger) {
        self.executable = executable
        self.output = output
        self.validationWorkers = validationWorkers
        self.logLevel = logLevel
        self.insecure = insecure
        self.logger = logger
    }

    var logDirectory: String { output + "/.shoal/logs" }

    /// Starts everything, runs `body` with the coordinator's endpoints and
    /// the keys to reach it with (nil when insecure), and stops every child
    /// whatever happens.
    func run<T: Sendable>(_ body: (BoundEndpoints, CurveClientKeys?) async throws -> T) async throws -> T {
        installSignalHandlers()
        defer { stopAll() }
        try SecureFile.createDirectory(logDirectory, mode: 0o700)
        var agents: [(role: Role, id: String)] = Role.allCases.filter { $0 != .validation }.map { ($0, "\($0.rawValue)-1") }
        for index in 1...validationWorkers { agents.append((.validation, "validation-\(index)")) }
        let keys = insecure ? nil : try EmbeddedKeys.make(in: keyDirectory, agents: agents.map(\.id))
        let endpoints = try await startCoordinator(
            security: keys.map { ["--key", $0.secretFile("coordinator"), "--allow", $0.allowDirectory] }
                ?? ["--insecure"])
        for agent in agents {
            let security =
                keys.map { ["--key", $0.secretFile(agent.id), "--coordinator-key", $0.publicFile("coordinator")] }
                ?? ["--insecure"]
            try start(
                name: agent.id,
                arguments: [
                    "agent", agent.role.rawValue, "--coordinator", endpoints.control, "--id", agent.id,
                    "--work-dir", output, "--state-dir", output + "/.shoal/agents", "--exit-with-parent", "--log-level", logLevel,
                ] + security + (agentArguments[agent.role] ?? []),
                standardOutput: FileHandle.nullDevice)
        }
        return try await body(endpoints, keys?.client)
    }

    /// Throwaway keys of this run: `OUTPUT/.shoal/keys` (0700).
    var keyDirectory: String { output + "/.shoal/keys" }

    private func startCoordinator(security: [String]) async throws -> BoundEndpoints {
        let pipe = Pipe()
        try start(
            name: "coordinator",
            arguments: [
                "coordinator", "--control", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*", "--journal",
                output + "/.shoal/journal.sqlite", "--output", output, "--exit-with-parent", "--log-level", logLevel,
            ] + security,
            standardOutput: pipe)
        let handle = pipe.fileHandleForReading
        return try await runBlocking {
            var buffer = Data()
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                guard let chunk = FileDescriptorIO.readSome(handle.fileDescriptor), !chunk.isEmpty else { break }
                buffer.append(chunk)
                guard let line = String(decoding: buffer, as: UTF8.self).split(separator: "\n").first(where: { $0.hasPrefix("ready ") })
                else { continue }
                var fields: [String: String] = [:]
                for field in line.split(separator: " ").dropFirst() {
                    let parts = field.split(separator: "=", maxSplits: 1)
                    if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
                }
                if let control = fields["control"], let events = fields["events"] {
                    return BoundEndpoints(control: control, events: events)
                }
            }
            throw ShoalError(.launchFailed, "the coordinator did not start; see \(self.logDirectory)/coordinator.log")
        }
    }

    private func start(name: String, arguments: [String], standardOutput: Any) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = standardOutput
        let logPath = "\(logDirectory)/\(name).log"
        // Appended to, never truncated: the logs of earlier runs in this directory stay.
        let descriptor = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        process.standardError =
            descriptor >= 0 ? FileHandle(fileDescriptor: descriptor, closeOnDealloc: true) : FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do {
            try ProcessLaunch.run(process)
        } catch {
            throw ShoalError(.launchFailed, "cannot start \(name) from \(executable)", cause: "\(error)")
        }
        lock.lock()
        children.append((name, process))
        lock.unlock()
        logger.debug("child started", metadata: ["name": "\(name)", "pid": "\(process.processIdentifier)"])
    }

    /// SIGTERM to every child, then SIGKILL to any still there after 10 s.
    func stopAll() {
        lock.lock()
        let running = children
        children = []
        lock.unlock()
        for child in running where child.process.isRunning {
            kill(child.process.processIdentifier, SIGTERM)
        }
        let deadline = Date().addingTimeInterval(10)
        for child in running {
            while child.process.isRunning && Date() < deadline { usleep(20_000) }
            if child.process.isRunning {
                logger.warning("child did not stop, killing it", metadata: ["name": "\(child.name)"])
                kill(child.process.processIdentifier, SIGKILL)
                child.process.waitUntilExit()
            }
        }
    }

    /// Ctrl-C or SIGTERM: stop the children, then exit with 128+signal.
    private func installSignalHandlers() {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [self] in
                FileDescriptorIO.printError("\ninterrupted: stopping agents and coordinator\n")
                stopAll()
                exit(128 + signalNumber)
            }
            source.resume()
            signalSources.append(source)
        }
    }
}
