/// How a coordinator runs. Every field has a documented default; CLI flags map onto it.
public struct CoordinatorConfiguration: Sendable {
    /// ROUTER socket for agents and clients (default `tcp://*:7401`).
    public var controlEndpoint = "tcp://*:7401"
    /// XPUB socket for steps and events (default `tcp://*:7400`).
    public var eventsEndpoint = "tcp://*:7400"
    /// The SQLite journal (default `shoal-journal.sqlite`).
    public var journalPath = "shoal-journal.sqlite"
    /// Where the user's output tree is written (default `output`).
    public var outputDirectory = "output"
    /// Heartbeat period, both ways (default 1 s).
    public var heartbeatInterval: Duration = .seconds(1)
    /// Missed heartbeats before a peer counts as dead (default 3).
    public var liveness = 3
    /// The longest heartbeat interval granted to an agent that holds no step, which asks for one in its hello
    /// (default 10 s; at most `heartbeatInterval` turns it off). Such an agent counts as dead after `liveness`
    /// of its idle intervals; once it is given a step, after `liveness` of `heartbeatInterval` again.
    public var maxIdleHeartbeatInterval: Duration = .seconds(10)
    /// How long an agent has to acknowledge a step before it is published
    /// again, and then given to another agent (default 2 s).
    public var ackTimeout: Duration = .seconds(2)
    /// Attempts per step before the step fails (default 3).
    public var maxAttempts = 3
    /// Longest a single step may run (default 30 min).
    public var stepTimeout: Duration = .seconds(1800)
    /// How long a step pinned to one agent (the `destroy` of a workflow, on
    /// the infra agent that holds its Terraform state) waits for that agent
    /// to be connected before it fails (default 2 min).
    public var pinnedAgentWait: Duration = .seconds(120)
    /// How hard each journal commit waits for the disk (default `.normal`:
    /// nothing is lost when the process crashes; the last commits may be
    /// lost on power loss). `.full` syncs every commit.
    public var journalSync: Journal.Sync = .normal
    /// Finished workflows older than this are deleted from the journal
    /// (default nil: kept for good).
    public var retain: Duration?
    /// Messages read from each socket per loop turn at most, so a burst
    /// never holds back heartbeats, timers and confirms (default 256).
    public var messagesPerTurn = 256
    /// CURVE keys and the allow-list. nil runs both sockets over plain TCP,
    /// which anyone who can reach the ports can read and join: only for
    /// `--insecure` and tests that say so (default nil).
    public var security: CoordinatorSecurity?
    /// Where Prometheus metrics are served over HTTP (`/metrics`); nil
    /// serves none (default nil).
    public var metricsListen: MetricsServer.Listen?
    /// At start, mark the journal's unfinished workflows `interrupted` instead of resuming them (the embedded
    /// coordinator of `shoal create`, whose runs end with the command). Default false: a durable coordinator
    /// resumes every unfinished workflow.
    public var interruptUnfinished = false

    public init() {}
}
