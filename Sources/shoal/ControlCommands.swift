import ArgumentParser
import Coordinator
import Foundation
import Protocol
import ShoalSupport

/// The coordinator a command talks to, and the keys to talk to it with.
struct CoordinatorOption: ParsableArguments {
    @Option(
        help: "The coordinator's control endpoint, e.g. tcp://10.0.0.5:7401 (or $SHOAL_COORDINATOR, or the context's).")
    var coordinator: String?
    @OptionGroup var security: ClientSecurityOptions

    /// The endpoint, resolved: --coordinator, $SHOAL_COORDINATOR, the context's (`validate()` refuses none).
    var endpoint: String { ShoalConfig.coordinator(flag: coordinator).value ?? "" }

    func validate() throws {
        guard ShoalConfig.coordinator(flag: coordinator).value != nil else {
            throw ValidationError(
                "--coordinator is required (or $SHOAL_COORDINATOR, or a context: `shoal context set NAME "
                    + "--coordinator tcp://host:7401`)")
        }
        guard ShoalConfig.isEndpoint(endpoint) else {
            throw ValidationError("--coordinator must be an endpoint such as tcp://host:7401")
        }
        _ = try security.curveKeys()
    }

    /// Runs `body` with a client on its own thread; a ShoalError becomes a one-line error.
    func with<T: Sendable>(_ body: @escaping @Sendable (CoordinatorClient) throws -> T) async -> T {
        let endpoint = endpoint
        security.warnIfInsecure()
        do {
            let curve = try security.curveKeys()
            return try await runBlocking { try body(try CoordinatorClient(endpoint: endpoint, curve: curve)) }
        } catch let error as ShoalError {
            fail(error.description)
        } catch {
            fail("\(error)")
        }
    }
}

/// Checks a workflow id argument.
func checkWorkflowID(_ id: String) throws {
    do {
        try Names.validateWorkflowID(id)
    } catch let error as ShoalError {
        throw ValidationError(error.message)
    }
}

struct WaitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait", abstract: "Wait for a workflow to end; exit 0 when it succeeded, 1 otherwise.",
        discussion: HelpExamples.wait)

    @Argument(help: "The workflow id.", completion: .workflowIDs) var workflow: String
    @OptionGroup var target: CoordinatorOption
    @Option(help: "Give up after this long (e.g. 30m); waits forever by default.") var timeout: ShoalDuration?
    @Flag(help: "Print each step as it starts and ends.") var progress = false

    func validate() throws {
        try checkWorkflowID(workflow)
        try timeout?.validate(in: .milliseconds(100) ... ShoalDuration.maximum, option: "--timeout")
    }

    func run() async throws {
        let workflow = workflow
        let limit = timeout?.duration
        let display = progress ? ProgressDisplay() : nil
        let target = target
        // The client's own calls may wait for replies longer than the limit (a coordinator that does not
        // answer): the limit is kept here, whatever the socket is doing.
        let final: WorkflowSnapshot
        do {
            final = try await firstOf(
                {
                    await target.with { client in
                        try client.follow(workflow, eventsPort: nil, timeout: limit) { display?.update($0) }
                    }
                },
                {
                    guard let limit else { return }
                    try await Task.sleep(for: limit)
                    throw ShoalError(
                        .timeout, "workflow \(workflow) did not finish within \(ShoalDuration(limit)), or "
                            + "\(target.endpoint) did not answer")
                })
        } catch let error as ShoalError {
            fail(error.description)
        }
        print("workflow \(final.id): \(final.state.rawValue)" + (final.error.map { " (\($0))" } ?? ""))
        if final.state != .succeeded { throw ExitCode.failure }
    }
}

struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a running workflow.",
        discussion: HelpExamples.cancel)

    @Argument(help: "The workflow id.", completion: .workflowIDs) var workflow: String
    @OptionGroup var target: CoordinatorOption

    func validate() throws { try checkWorkflowID(workflow) }

    func run() async throws {
        let workflow = workflow
        let snapshot = await target.with { try $0.cancel(workflow) }
        print("workflow \(snapshot.id): \(snapshot.state.rawValue)")
    }
}

struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Run a failed, cancelled or interrupted workflow again; steps that succeeded are kept.",
        discussion: HelpExamples.discussion(
            """
            Without --coordinator, shoal runs it in embedded mode on the output directory of the `create` that \
            started it (-d): a coordinator and agents on loopback, the progress of `create`, exit 0 when it \
            succeeded, 1 otherwise. With --coordinator it asks that coordinator to resume it and returns.
            """, HelpExamples.resume))

    @Argument(help: "The workflow id.", completion: .workflowIDs) var workflow: String
    @Option(
        help: "The coordinator's control endpoint, e.g. tcp://10.0.0.5:7401 (or $SHOAL_COORDINATOR, or the context's).")
    var coordinator: String?
    @OptionGroup var directory: OutputDirectoryOption
    @Option(help: "Validation agents to start (embedded mode).") var validationWorkers = 2
    @OptionGroup var security: ClientSecurityOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var view: ProgressOptions

    func validate() throws {
        try checkWorkflowID(workflow)
        if let coordinator = endpoint {
            guard ShoalConfig.isEndpoint(coordinator) else {
                throw ValidationError("--coordinator must be an endpoint such as tcp://host:7401")
            }
            if directory.dir != nil {
                let source = ShoalConfig.coordinator(flag: self.coordinator).source
                throw ValidationError(
                    "--dir is for the embedded mode, and a coordinator is set (\(source)); "
                        + "SHOAL_CONTEXT= runs without the context's")
            }
            _ = try security.curveKeys()
        } else if security.key != nil || security.coordinatorKey != nil {
            throw ValidationError(
                "--key and --coordinator-key go with --coordinator; the embedded mode makes its own keys")
        }
        guard (1...32).contains(validationWorkers) else {
            throw ValidationError("--validation-workers must be between 1 and 32")
        }
    }

    /// The coordinator, resolved: --coordinator, $SHOAL_COORDINATOR, the context's; nil for the embedded mode.
    var endpoint: String? { ShoalConfig.coordinator(flag: coordinator).value }

    func run() async throws {
        let workflow = workflow
        // A context's `insecure` is about its coordinator: the embedded mode is insecure only with --insecure.
        if endpoint != nil { security.warnIfInsecure() } else if security.insecure { warnInsecure() }
        if let endpoint {
            do {
                let curve = try security.curveKeys()
                let snapshot = try await runBlocking {
                    try CoordinatorClient(endpoint: endpoint, curve: curve).resume(workflow)
                }
                print("workflow \(snapshot.id): \(snapshot.state.rawValue)")
            } catch let error as ShoalError {
                fail(error.description)
            }
            return
        }
        let output = directory.path
        let outputPath = absolutePath(output)
        guard FileManager.default.fileExists(atPath: outputPath + "/.shoal/journal.sqlite") else {
            fail("no workflows in '\(output)': it has no .shoal/journal.sqlite of an embedded run")
        }
        let owner = EmbeddedRun.takeOutputDirectory(output)
        defer { withExtendedLifetime(owner) {} }
        EmbeddedRun.reportLeftovers(output: output, except: workflow, quiet: view.quiet)
        let logger = logging.bootstrap(label: "shoal.resume")
        let display = ProgressDisplay(style: view.style())
        let cluster = EmbeddedCluster(
            executable: selfExecutable(), output: outputPath, validationWorkers: validationWorkers,
            logLevel: logging.logLevel, insecure: security.insecure, logger: logger)
        cluster.onInterrupt = EmbeddedRun.interruptedHook(output: output)
        cluster.onSignal = { display.finish() }
        let outcome: WorkflowSnapshot
        do {
            outcome = try await cluster.run { endpoints, curve in
                try await runBlocking {
                    let client = try CoordinatorClient(endpoint: endpoints.control, curve: curve)
                    let resumed = try client.resume(workflow)
                    guard resumed.state == .running else { return resumed }
                    print(display.style.quiet ? workflow : "workflow \(workflow) resumed")
                    fflush(nil)
                    display.following()
                    let eventsPort = endpoints.events.split(separator: ":").last.flatMap { Int($0) }
                    return try display.follow(client, workflow: workflow, eventsPort: eventsPort)
                }
            }
        } catch let error as ShoalError {
            display.finish()
            fail(error.description)
        }
        display.summary(outcome, output: output)
        if outcome.state != .succeeded { throw ExitCode.failure }
    }
}

struct AgentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "agents", abstract: "List the live agents of a coordinator.",
        discussion: HelpExamples.agents)

    @OptionGroup var target: CoordinatorOption
    @OptionGroup var format: OutputFormatOption

    func run() async throws {
        let agents = await target.with { try $0.agents() }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let items = agents.map { OutputDocuments.Agent($0, now: now) }
        if format.printDocument(OutputDocuments.List(kind: "AgentList", items: items)) { return }
        if format.format == .name {
            for agent in agents { print(agent.id) }
            return
        }
        let wide = format.format == .wide
        print(
            "\(pad("AGENT", 24)) \(pad("ROLE", 11)) \(pad("HOST", 16)) \(pad("PID", 8)) \(pad("IN FLIGHT", 28)) "
                + (wide ? "\(pad("SUBSCRIBED", 10)) \(pad("REJECTED", 20)) " : "") + "LAST HEARTBEAT")
        for agent in agents {
            let steps = agent.inFlight.map { "\($0.workflow)/\($0.step)" }.joined(separator: ",")
            let rejected = (agent.rejected ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                .joined(separator: ",")
            let more =
                wide ? "\(pad(agent.subscribed ? "yes" : "no", 10)) \(pad(rejected.isEmpty ? "-" : rejected, 20)) " : ""
            print(
                "\(pad(agent.id, 24)) \(pad(agent.role.rawValue, 11)) \(pad(agent.host, 16)) \(pad(String(agent.pid), 8)) "
                    + "\(pad(steps.isEmpty ? "-" : steps, 28)) \(more)"
                    + "\(Duration.milliseconds(max(0, now - agent.lastHeartbeat)).shortDescription) ago")
        }
    }
}

struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Show a coordinator's counters: workflows, agents, memory, rejected frames.",
        discussion: HelpExamples.stats)

    @OptionGroup var target: CoordinatorOption
    @OptionGroup var format: OutputFormatOption

    func validate() throws { format.refuseName("stats") }

    func run() async throws {
        let stats = await target.with { try $0.stats() }
        if format.printDocument(OutputDocuments.Stats(stats)) { return }
        print("workflows \(stats.workflows)")
        if format.format == .wide { print("running \(stats.running)") }
        print("agents \(stats.agents)")
        print("resident_bytes \(stats.residentBytes)")
        for (reason, count) in stats.rejected.sorted(by: { $0.key < $1.key }) { print("rejected.\(reason) \(count)") }
    }
}
