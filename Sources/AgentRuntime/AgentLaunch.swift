import CShoalSupport
import FoundationEssentials
import Glibc
import Protocol
import ShoalCore
import ZeroMQ

/// What `shoal agent` hands the lean `shoal-agent` it replaces itself with (`execv`, same pid): the validated
/// configuration, the CURVE keys and the step worker's command. It travels as JSON through a pipe whose read end
/// the lean agent inherits (`shoal-agent --launch-fd N`), so the secret key is never in an argument, the
/// environment or a file.
public struct AgentLaunch: Codable, Sendable, Equatable {
    public struct Keys: Codable, Sendable, Equatable {
        public var coordinatorPublicKey: String
        public var publicKey: String
        public var secretKey: String
    }

    public var role: Role
    public var id: String
    public var coordinator: String
    public var events: String?
    public var capacity: Int
    public var idleHeartbeatMilliseconds: Int64?
    public var stateDirectory: String?
    public var keys: Keys?
    public var logLevel: String
    public var exitWithParent: Bool
    /// `shoal agent-worker ...`: the process that runs the role's handlers, started on the first step.
    public var worker: [String]
    /// How long the worker is kept without a step before it is stopped.
    public var workerIdleMilliseconds: Int64

    /// The most a launch description may take: it must fit in a pipe's buffer, written before the exec.
    static let maximumBytes = 32 << 10

    public init(
        configuration: AgentConfiguration, logLevel: String, exitWithParent: Bool, worker: [String],
        workerIdle: Duration
    ) {
        role = configuration.role
        id = configuration.id
        coordinator = configuration.coordinator
        events = configuration.events
        capacity = configuration.capacity
        idleHeartbeatMilliseconds = configuration.idleHeartbeatInterval?.milliseconds
        stateDirectory = configuration.stateDirectory
        keys = configuration.curve.map {
            Keys(coordinatorPublicKey: $0.serverPublicKey, publicKey: $0.keyPair.publicKey, secretKey: $0.keyPair.secretKey)
        }
        self.logLevel = logLevel
        self.exitWithParent = exitWithParent
        self.worker = worker
        workerIdleMilliseconds = workerIdle.milliseconds
    }

    /// The agent's configuration, as `shoal agent` built it.
    public var configuration: AgentConfiguration {
        var configuration = AgentConfiguration(role: role, coordinator: coordinator, id: id)
        configuration.events = events
        configuration.capacity = capacity
        configuration.idleHeartbeatInterval = idleHeartbeatMilliseconds.map { .milliseconds($0) }
        configuration.stateDirectory = stateDirectory
        configuration.curve = keys.map {
            CurveClientKeys(
                serverPublicKey: $0.coordinatorPublicKey,
                keyPair: CurveKeyPair(publicKey: $0.publicKey, secretKey: $0.secretKey))
        }
        return configuration
    }

    public var workerIdle: Duration { .milliseconds(workerIdleMilliseconds) }

    /// Replaces this process with `executable`, handing it this launch; returns only when that fails.
    /// - Throws: `ShoalError(.launchFailed)` naming what failed (the pipe, the exec), `.io` when the pipe refuses
    ///   the description.
    public func exec(_ executable: String) throws -> Never {
        let data = try JSONEncoder().encode(self)
        guard data.count <= AgentLaunch.maximumBytes else {
            throw ShoalError(.invalidInput, "the agent's launch description is too long (\(data.count) bytes)")
        }
        var ends: [Int32] = [-1, -1]
        guard shoal_pipe_cloexec(&ends) == 0 else { throw AgentLaunch.failure("pipe") }
        defer {
            close(ends[0])
            close(ends[1])
        }
        try FileDescriptorIO.writeAll(ends[1], data)
        // The read end alone crosses the exec (the write end is close-on-exec).
        guard fcntl(ends[0], F_SETFD, 0) == 0 else { throw AgentLaunch.failure("fcntl") }
        let arguments = ["shoal-agent", "--launch-fd", "\(ends[0])"]
        var argv = arguments.map { strdup($0) }
        argv.append(nil)
        execv(executable, &argv)
        let error = AgentLaunch.failure("exec \(executable)")
        argv.forEach { free($0) }
        throw error
    }

    /// Reads the launch `shoal agent` wrote into `fd`, and closes it.
    /// - Throws: `ShoalError(.invalidInput)` when it is missing or not a launch description.
    public static func receive(fd: Int32) throws -> AgentLaunch {
        defer { close(fd) }
        var data = Data()
        while let chunk = FileDescriptorIO.readSome(fd), !chunk.isEmpty {
            data.append(chunk)
            guard data.count <= maximumBytes else { break }
        }
        guard !data.isEmpty, data.count <= maximumBytes,
            let launch = try? JSONDecoder().decode(AgentLaunch.self, from: data)
        else {
            throw ShoalError(.invalidInput, "no agent launch description on descriptor \(fd); start agents with `shoal agent`")
        }
        return launch
    }

    private static func failure(_ what: String) -> ShoalError {
        ShoalError(.launchFailed, "cannot start the lean agent: \(what) failed", cause: String(cString: strerror(errno)))
    }
}
