import FoundationEssentials
import Glibc
import Protocol
public import ZeroMQ

/// How an agent runs. Every field has a documented default; CLI flags map onto it.
public struct AgentConfiguration: Sendable {
    public var role: Role
    /// Unique on the bus (default `<role>-<host>-<pid>`).
    public var id: String
    /// The coordinator's ROUTER endpoint, e.g. `tcp://10.0.0.5:7401`.
    public var coordinator: String
    /// The coordinator's PUB endpoint; by default the coordinator's host with
    /// the port it announces in its welcome.
    public var events: String?
    /// Steps run at the same time (default 2).
    public var capacity = 2
    /// Heartbeat period until the coordinator announces its own (default 1 s).
    public var heartbeatInterval: Duration = .seconds(1)
    /// Missed coordinator heartbeats before reconnecting (default 3).
    public var liveness = 3
    /// The heartbeat interval asked of the coordinator for while the agent holds no step (default 10 s; the
    /// coordinator grants at most its `--max-idle-heartbeat`). nil asks for none: heartbeats at the bus's interval.
    public var idleHeartbeatInterval: Duration? = .seconds(10)
    /// How often an unconfirmed result is sent again (default 2 s).
    public var resendInterval: Duration = .seconds(2)
    /// Bytes of artifacts kept in memory between steps, so a step whose artifacts an earlier step on this
    /// agent already fetched does not fetch them again (default 64 MiB; least recently used go first).
    public var artifactCacheBytes = 64 << 20
    /// Artifacts kept in that cache at most (default 256).
    public var artifactCacheEntries = 256
    /// How long a graceful shutdown waits for running steps (default 8 s).
    public var drainTimeout: Duration = .seconds(8)
    /// Where the idempotency record is kept, so a restarted agent with the
    /// same id still answers steps it ran and resends unconfirmed results
    /// (default: nil, memory only).
    public var stateDirectory: String?
    public var host: String
    public var pid: Int32
    /// This agent's key pair and the coordinator's public key. nil speaks
    /// plain TCP, which a coordinator with CURVE refuses: only for
    /// `--insecure` and tests that say so (default nil).
    public var curve: CurveClientKeys?

    public init(role: Role, coordinator: String, id: String? = nil) {
        self.role = role
        self.coordinator = coordinator
        self.host = ProcessInfo.processInfo.hostName
        self.pid = getpid()
        let hostPart = String(host.prefix { $0 != "." }.filter { $0.isLetter || $0.isNumber || $0 == "-" }.prefix(30))
        self.id = id ?? "\(role.rawValue)-\(hostPart.isEmpty ? "host" : hostPart)-\(pid)"
    }

    /// The events endpoint to use once the coordinator announced its port.
    func eventsEndpoint(announcedPort: Int?, announced: String?) -> String? {
        if let events { return events }
        if let announced { return announced }
        guard let port = announcedPort, let colon = coordinator.lastIndex(of: ":") else { return nil }
        return "\(coordinator[..<colon]):\(port)"
    }
}
