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

    @OptionGroup var roleOptions: AgentRoleOptions
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
    @Option(help: "Directory for the agent's idempotency record, so a restarted agent with the same --id never runs a step twice.")
    var stateDir: String?
    @Option(
        help: ArgumentHelp(
            "How long the step worker that runs the role's handlers stays without a step before it stops, 1s to 24h "
                + "(the agent itself stays; the next step starts a new worker)."))
    var workerIdle = ShoalDuration(.seconds(30))
    @Flag(
        help: ArgumentHelp(
            "Run the role's handlers in this process rather than in a step worker started on demand (used by "
                + "`shoal create`; an idle agent then keeps Foundation and the handlers mapped)."))
    var inProcess = false
    @Flag(help: "Exit when the parent process exits (used by `shoal create`).") var exitWithParent = false
    @OptionGroup var parent: ParentOptions
    @OptionGroup var security: ClientSecurityOptions

    func validate() throws {
        _ = try security.curveKeys()
        try workerIdle.validate(in: .seconds(1) ... .seconds(86_400), option: "--worker-idle")
        if let id, !Names.isAgentID(id) {
            throw ValidationError("--id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        }
        guard (1...64).contains(capacity) else { throw ValidationError("--capacity must be between 1 and 64") }
        try idleHeartbeat.validate(in: .milliseconds(50) ... .seconds(3600), option: "--idle-heartbeat")
        guard coordinator.hasPrefix("tcp://") || coordinator.hasPrefix("ipc://") || coordinator.hasPrefix("inproc://")
        else { throw ValidationError("--coordinator must be an endpoint such as tcp://host:7401") }
    }

    func run() async throws {
        try parent.bind(exitWithParent: exitWithParent)
        let logger = roleOptions.logging.bootstrap(label: "shoal.agent")
        let role = roleOptions.parsedRole
        var configuration = AgentConfiguration(role: role, coordinator: coordinator, id: id)
        configuration.events = events
        configuration.capacity = capacity
        configuration.idleHeartbeatInterval = idleHeartbeat.duration
        configuration.stateDirectory = stateDir
        configuration.curve = try security.curveKeys()
        security.warnIfInsecure()
        let options = roleOptions.agentOptions
        // An agent that serves the GitOps repositories is a server for the cluster's whole life: it keeps its
        // handlers. The others hand the bus to the lean agent, which returns here only when it cannot start.
        if !inProcess && !(role == .monitoring && options.gitopsAdvertise != nil) {
            LeanAgent.replaceProcess(
                configuration: configuration, workerArguments: roleOptions.workerArguments(parentPID: getpid()),
                workerIdle: workerIdle.duration, logLevel: roleOptions.logging.logLevel, exitWithParent: exitWithParent,
                logger: logger)
        }
        do {
            let handler = try AgentHandlers.make(role: role, options: options, logger: logger)
            let service = AgentService(configuration: configuration, handler: handler, logger: logger)
            try await runService(service, logger: logger, exitWithParent: exitWithParent)
        } catch let error as ShoalError {
            fail(error.description)
        }
    }
}

/// What the handlers of a role need, shared by `shoal agent` and the step worker it may run them in
/// (`shoal agent-worker`).
struct AgentRoleOptions: ParsableArguments {
    @Argument(help: "The role: planner, infra, argocd, monitoring, validation, docs.") var role: String
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
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard Role(rawValue: role) != nil else {
            throw ValidationError(
                "unknown role '\(role.prefix(40))'; use one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
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
    }

    /// The role, checked by `validate()`.
    var parsedRole: Role { Role(rawValue: role)! }

    var agentOptions: AgentOptions {
        var options = AgentOptions(workDirectory: workDir)
        options.gitopsListen = gitopsListen
        options.gitopsAdvertise = gitopsAdvertise
        options.gitopsPushURL = gitopsPushURL
        options.advertiseAddress = advertiseAddress
        return options
    }

    /// The arguments (after the executable) of the `shoal agent-worker` that runs the steps with these options.
    /// - Parameter parentPID: the agent's pid, which the worker checks is still its parent when it starts.
    func workerArguments(parentPID: Int32) -> [String] {
        var arguments = [
            "agent-worker", role, "--work-dir", workDir, "--gitops-listen", gitopsListen, "--log-level",
            logging.logLevel,
        ]
        // An agent that is pid 1 (a container's) cannot be named: the worker follows the parent it starts with.
        if parentPID > 1 { arguments += ["--parent-pid", "\(parentPID)"] }
        if let gitopsAdvertise { arguments += ["--gitops-advertise", gitopsAdvertise] }
        if let gitopsPushURL { arguments += ["--gitops-push-url", gitopsPushURL] }
        if let advertiseAddress { arguments += ["--advertise-address", advertiseAddress] }
        return arguments
    }
}

/// `shoal agent-worker ROLE ...`: the step worker of an agent that holds the bus connection in another process (the
/// protocol is `WorkerFrame`'s). It runs the role's steps it reads on standard input and writes their replies on
/// standard output, logs to standard error, and exits 0 once its standard input ends and its steps are answered.
/// Its life is its parent's: SIGINT and SIGTERM are ignored (the agent stops it by closing its input), and it is
/// killed when the parent dies.
struct AgentWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent-worker",
        abstract: "Run the steps of one role for an agent, over standard input and output (started by the agent).",
        shouldDisplay: false)

    @OptionGroup var roleOptions: AgentRoleOptions
    @OptionGroup var parent: ParentOptions

    func validate() throws {
        if let pid = parent.parentPid, pid <= 1 { throw ValidationError("--parent-pid must be a process id above 1") }
    }

    func run() async throws {
        // Before any thread starts: the pipes move off descriptors 0 and 1, which programs the handlers run inherit.
        let streams: (input: Int32, output: Int32)
        do {
            streams = try StepWorker.takeStandardStreams()
        } catch {
            fail(error.description)
        }
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        // The agent may be pid 1 (a container): without --parent-pid, the parent it has now is the one to follow;
        // one that died before this call closed the request pipe, which ends the worker all the same.
        ParentDeath.bind(expectedParent: parent.parentPid ?? getppid(), signal: SIGKILL)
        let logger = roleOptions.logging.bootstrap(label: "shoal.agent-worker")
        let role = roleOptions.parsedRole
        let handler: any StepHandler
        do {
            handler = try AgentHandlers.make(role: role, options: roleOptions.agentOptions, logger: logger)
        } catch {
            // Every step then fails with the reason, where the agent's operator sees it; the next worker tries again.
            logger.error("step worker cannot start the role's handlers", metadata: ["error": "\(error)"])
            handler = UnavailableHandler(message: "\(role.rawValue) agent cannot start its step handlers: \(error)")
        }
        do {
            try await StepWorker.serve(handler: handler, input: streams.input, output: streams.output, logger: logger)
        } catch {
            fail(String(describing: error))
        }
    }
}

/// The handler of a worker whose role could not start: each step fails with why.
private struct UnavailableHandler: StepHandler {
    let message: String

    func run(_ context: StepContext) async throws -> StepOutput {
        throw ShoalError(.launchFailed, message)
    }
}
