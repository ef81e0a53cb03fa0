import AgentRuntime
import Agents
import ArgumentParser
import Coordinator
import Foundation
import Logging
import Protocol
import ServiceLifecycle
import ShoalSupport

/// `--parent-pid` of the embedded children: set the parent-death signal and check the parent first thing.
struct ParentOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The pid of the `shoal create` that started this process (set by it).", visibility: .hidden))
    var parentPid: Int32?

    /// Binds this process's life to its parent's when `--exit-with-parent` or `--parent-pid` was given.
    func bind(exitWithParent: Bool) throws {
        if let parentPid, parentPid <= 1 { throw ValidationError("--parent-pid must be a process id above 1") }
        guard exitWithParent || parentPid != nil else { return }
        ParentDeath.bind(expectedParent: parentPid)
    }
}

struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the coordinator: publishes workflow steps to agents and collects their results.",
        discussion: HelpExamples.coordinator)

    @Option(help: "PUB endpoint for steps and events.") var events = "tcp://*:7400"
    @Option(help: "ROUTER endpoint for agents and clients.") var control = "tcp://*:7401"
    @Option(help: "SQLite journal file.") var journal = "shoal-journal.sqlite"
    @OptionGroup var directory: OutputDirectoryOption
    @Option(help: "Heartbeat interval, 50ms to 1m, e.g. 1s or 250ms.") var heartbeat = ShoalDuration(.seconds(1))
    @Option(help: "Missed heartbeats before a peer is declared dead.") var liveness = 3
    @Option(
        help: ArgumentHelp(
            "Longest heartbeat interval granted to an agent holding no step (it asks in its hello), 50ms to 1h; "
                + "at most --heartbeat grants none."))
    var maxIdleHeartbeat = ShoalDuration(.seconds(10))
    @Option(help: "Time an agent has to acknowledge a step, 50ms to 10m.") var ackTimeout = ShoalDuration(.seconds(2))
    @Option(help: "Attempts per step before it fails.") var maxAttempts = 3
    @Option(help: "Longest a single step may run before it is given to another agent, 100ms to 7 days, e.g. 1h30m.")
    var stepTimeout = ShoalDuration(.seconds(1800))
    @Option(
        help: ArgumentHelp(
            "How long a step pinned to one agent (a destroy, on the infra agent with the Terraform state) waits "
                + "for it, 100ms to 24h, e.g. 2m."))
    var pinnedWait = ShoalDuration(.seconds(120))
    @Option(
        help: """
            Journal commits: normal (a process crash loses nothing, a power loss may lose the last commits) \
            or full (every commit synced to disk).
            """)
    var journalSync = "normal"
    @Option(help: "Delete finished workflows from the journal after this long, e.g. 7d or 24h (default: keep).")
    var retain: String?
    @Option(help: "Serve Prometheus metrics on HOST:PORT at /metrics, e.g. 0.0.0.0:9464 (default: off).")
    var metricsListen: String?
    @Flag(
        help: ArgumentHelp(
            "Mark unfinished workflows found in the journal at start interrupted instead of resuming them "
                + "(used by `shoal create`; `shoal resume` runs them on)."))
    var interruptUnfinished = false
    @Flag(help: "Exit when the parent process exits (used by `shoal create`).") var exitWithParent = false
    @OptionGroup var parent: ParentOptions
    @OptionGroup var security: ServerSecurityOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        _ = try security.security()
        try heartbeat.validate(in: .milliseconds(50) ... .seconds(60), option: "--heartbeat")
        try maxIdleHeartbeat.validate(in: .milliseconds(50) ... .seconds(3600), option: "--max-idle-heartbeat")
        try ackTimeout.validate(in: .milliseconds(50) ... .seconds(600), option: "--ack-timeout")
        guard (2...100).contains(liveness) else { throw ValidationError("--liveness must be between 2 and 100") }
        guard (1...100).contains(maxAttempts) else { throw ValidationError("--max-attempts must be between 1 and 100") }
        try stepTimeout.validate(in: .milliseconds(100) ... .seconds(7 * 86_400), option: "--step-timeout")
        try pinnedWait.validate(in: .milliseconds(100) ... .seconds(86_400), option: "--pinned-wait")
        if let metricsListen {
            do {
                _ = try MetricsServer.Listen(parsing: metricsListen)
            } catch let error as ShoalError {
                throw ValidationError("--metrics-listen: \(error.message), got '\(metricsListen.prefix(80))'")
            }
        }
        guard Journal.Sync(rawValue: journalSync) != nil else {
            throw ValidationError("--journal-sync must be normal or full")
        }
        if let retain {
            guard let duration = retainDuration(retain), duration >= .seconds(1) else {
                throw ValidationError("--retain must be a duration of at least 1s, e.g. 7d or 24h")
            }
        }
    }

    /// `--retain` also takes whole days (`7d`).
    private func retainDuration(_ text: String) -> Duration? {
        if text.hasSuffix("d"), let days = Int(text.dropLast()), (1...3650).contains(days) {
            return .seconds(days * 86_400)
        }
        return (try? ShoalDuration(parsing: text))?.duration
    }

    func run() async throws {
        try parent.bind(exitWithParent: exitWithParent)
        let logger = logging.bootstrap(label: "shoal.coordinator")
        // One coordinator per journal: a second one would run the same workflows again.
        let owner: OwnerLock
        do {
            owner = try OwnerLock.acquire(absolutePath(journal) + ".lock", subject: "the journal \(journal)")
        } catch let error as ShoalError {
            fail(error.description)
        }
        defer { withExtendedLifetime(owner) {} }
        var configuration = CoordinatorConfiguration()
        configuration.eventsEndpoint = events
        configuration.controlEndpoint = control
        configuration.journalPath = journal
        configuration.outputDirectory = directory.path
        configuration.heartbeatInterval = heartbeat.duration
        configuration.liveness = liveness
        configuration.maxIdleHeartbeatInterval = maxIdleHeartbeat.duration
        configuration.ackTimeout = ackTimeout.duration
        configuration.maxAttempts = maxAttempts
        configuration.stepTimeout = stepTimeout.duration
        configuration.pinnedAgentWait = pinnedWait.duration
        configuration.journalSync = Journal.Sync(rawValue: journalSync) ?? .normal
        configuration.retain = retain.flatMap(retainDuration)
        configuration.security = try security.security()
        configuration.metricsListen = try metricsListen.map(MetricsServer.Listen.init(parsing:))
        configuration.interruptUnfinished = interruptUnfinished
        security.warnIfInsecure()
        let service = CoordinatorService(configuration: configuration, logger: logger) { bound in
            // One line on stdout that `shoal create` (and scripts) wait for.
            let metrics = bound.metrics.map { " metrics=\($0)" } ?? ""
            print("ready control=\(bound.control) events=\(bound.events)\(metrics)")
            fflush(nil)
        }
        do {
            try await runService(service, logger: logger, exitWithParent: exitWithParent)
        } catch let error as ShoalError {
            fail(error.description)
        }
    }
}

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run an agent of one role: planner, infra, argocd, monitoring, validation or docs.",
        discussion: HelpExamples.agent)

    @Argument(help: "The role: planner, infra, argocd, monitoring, validation, docs.") var role: String
    @Option(help: "The coordinator's control endpoint, e.g. tcp://10.0.0.5:7401.") var coordinator: String
    @Option(help: "Agent id, unique on the bus (default: <role>-<host>-<pid>).") var id: String?
    @Option(help: "The coordinator's events endpoint (default: its host, with the port it announces).")
    var events: String?
    @Option(help: "Steps this agent runs at the same time.") var capacity = 2
    @Option(
        help: ArgumentHelp(
            "Heartbeat interval asked of the coordinator while this agent holds no step, 50ms to 1h "
                + "(the coordinator grants at most its --max-idle-heartbeat)."))
    var idleHeartbeat = ShoalDuration(.seconds(10))
    @Option(help: "Working directory for files the agent keeps (terraform state, the GitOps repository).")
    var workDir = "output"
    @Option(help: "Address the GitOps repository is served on (monitoring role), host:port.")
    var gitopsListen = "127.0.0.1:0"
    @Option(help: "Serve the GitOps repositories from this agent at this host name or address (default: push them to the in-cluster git server).")
    var gitopsAdvertise: String?
    @Option(help: "Base URL to push to the in-cluster git server through, e.g. http://127.0.0.1:8080 (monitoring role).")
    var gitopsPushURL: String?
    @Option(
        help: ArgumentHelp(
            "Address other hosts reach the clusters this agent provisions at (infra role, local and docker targets): "
                + "the kubeconfig's server, a TLS SAN, where NodePorts are published; a request's "
                + "--advertise-address wins.", valueName: "address"))
    var advertiseAddress: String?
    @Option(help: "Directory for the agent's idempotency record, so a restarted agent with the same --id never runs a step twice.")
    var stateDir: String?
    @Flag(help: "Exit when the parent process exits (used by `shoal create`).") var exitWithParent = false
    @OptionGroup var parent: ParentOptions
    @OptionGroup var security: ClientSecurityOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        _ = try security.curveKeys()
        guard Role(rawValue: role) != nil else {
            throw ValidationError(
                "unknown role '\(role.prefix(40))'; use one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let id, !Names.isAgentID(id) {
            throw ValidationError("--id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        }
        guard (1...64).contains(capacity) else { throw ValidationError("--capacity must be between 1 and 64") }
        try idleHeartbeat.validate(in: .milliseconds(50) ... .seconds(3600), option: "--idle-heartbeat")
        do {
            try gitopsAdvertise.map(GitOpsAddresses.validateAdvertise)
            try gitopsPushURL.map(GitOpsAddresses.validatePushURL)
        } catch let error as ShoalError {
            throw ValidationError(error.message)
        }
        if let advertiseAddress, !RequestInputs.isAddress(advertiseAddress) {
            throw ValidationError(
                "invalid --advertise-address '\(RequestInputs.printable(advertiseAddress))': use a host name or an IP "
                    + "address that other hosts reach (not 0.0.0.0 or ::)")
        }
        guard coordinator.hasPrefix("tcp://") || coordinator.hasPrefix("ipc://") || coordinator.hasPrefix("inproc://")
        else { throw ValidationError("--coordinator must be an endpoint such as tcp://host:7401") }
    }

    func run() async throws {
        try parent.bind(exitWithParent: exitWithParent)
        let logger = logging.bootstrap(label: "shoal.agent")
        let role = Role(rawValue: role)!
        var configuration = AgentConfiguration(role: role, coordinator: coordinator, id: id)
        configuration.events = events
        configuration.capacity = capacity
        configuration.idleHeartbeatInterval = idleHeartbeat.duration
        configuration.stateDirectory = stateDir
        configuration.curve = try security.curveKeys()
        security.warnIfInsecure()
        var options = AgentOptions(workDirectory: workDir)
        options.gitopsListen = gitopsListen
        options.gitopsAdvertise = gitopsAdvertise
        options.gitopsPushURL = gitopsPushURL
        options.advertiseAddress = advertiseAddress
        do {
            let handler = try AgentHandlers.make(role: role, options: options, logger: logger)
            let service = AgentService(configuration: configuration, handler: handler, logger: logger)
            try await runService(service, logger: logger, exitWithParent: exitWithParent)
        } catch let error as ShoalError {
            fail(error.description)
        }
    }
}
