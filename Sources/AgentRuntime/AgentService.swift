import FoundationEssentials
import Logging
import Protocol
import ServiceLifecycle
import ShoalCore
import ZeroMQ

/// An agent as a service: a thread owns the DEALER and SUB sockets and the
/// delivery rules (hello, heartbeats, acks, idempotency, result resend);
/// each step runs in a task of its own (`StepRunner`), cancelled when its lease is lost.
public final class AgentService: Service {
    private let configuration: AgentConfiguration
    private let handler: any StepHandler
    private let logger: Logger
    private let context: Context
    private let loop = ReactorLoop()

    public init(configuration: AgentConfiguration, handler: any StepHandler, logger: Logger, context: Context = Context()) {
        self.configuration = configuration
        self.handler = handler
        self.context = context
        var logger = logger
        logger[metadataKey: "agent.id"] = "\(configuration.id)"
        self.logger = logger
    }

    /// Shuts the agent down as a graceful shutdown of its service group would (for a process that runs it
    /// without one); safe from any thread, before or during `run()`.
    public func stop() { loop.stop() }

    /// Runs until graceful shutdown (or `stop()`) or cancellation. On graceful shutdown running steps may finish within the
    /// drain timeout; those still running then are handed back: they end without a result (never as failed),
    /// and the coordinator gives them to another agent.
    public func run() async throws {
        let results = Mailbox<(StepKey, StepResult)>()
        let abandoned = AbandonedSteps()
        let leases = LeaseBook()
        let record = try IdempotencyRecord(
            directory: configuration.stateDirectory, agent: configuration.id,
            sealingSecret: configuration.curve?.keyPair.secretKey)
        let loop = loop
        let runner = StepRunner(
            handler: handler, configuration: configuration, logger: logger, results: results, abandoned: abandoned)
        let configuration = configuration
        let logger = logger
        let context = context
        let served: Result<Void, any Error>
        do {
            try await withTaskCancellationHandler {
                try await withGracefulShutdownHandler {
                    try await loop.run { stop in
                        var session = AgentSession(
                            configuration: configuration, context: context, logger: logger, results: results,
                            runner: runner, record: record, abandoned: abandoned, leases: leases)
                        try session.serve(stop: stop)
                    }
                } onGracefulShutdown: {
                    loop.stop()
                }
            } onCancel: {
                loop.stop()
            }
            served = .success(())
        } catch {
            served = .failure(error)
        }
        // The session ends first (after its bye); steps still running then are handed back.
        leases.revokeAll()
        await runner.cancelAndWait()
        try served.get()
    }

    /// Runs one attempt; nil when it must not report (its lease was lost or it was handed back).
    fileprivate static func execute(
        _ key: StepKey, _ assignment: StepAssignment, artifacts: [Artifact], lease: StepLease,
        handler: any StepHandler, configuration: AgentConfiguration, logger: Logger
    ) async -> StepResult? {
        let logger = logger.forStep(key)
        let context = StepContext(
            key: key, assignment: assignment, artifacts: artifacts, agentID: configuration.id, logger: logger,
            lease: lease)
        guard lease.isHeld else {
            logger.warning("step lease lost before it started, abandoning it")
            return nil
        }
        logger.info("step started")
        let started = now()
        let outcome: StepOutcome
        let output: StepOutput
        let error: String?
        do {
            output = try await handler.run(context)
            outcome = .succeeded
            error = nil
        } catch let failure {
            if failure is LeaseLost || failure is CancellationError || Task.isCancelled || !lease.isHeld {
                logger.warning("step handed back without a result", metadata: ["reason": "\(failure)"])
                return nil
            }
            outcome = .failed
            error = "\(failure)"
            output = StepOutput(summary: "failed: \(failure)")
        }
        if Task.isCancelled || !lease.isHeld {
            logger.warning("step finished after its lease was lost; its result is dropped")
            return nil
        }
        logger.info("step ended", metadata: ["outcome": "\(outcome.rawValue)"])
        return StepResult(
            outcome: outcome, output: output, error: error, agent: configuration.id, host: configuration.host,
            pid: configuration.pid, startedAt: started, finishedAt: now())
    }
}

func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

/// Runs each step in a task of its own, started by the socket thread once the step's artifacts are at hand, and
/// keeps the tasks to cancel and await when the agent stops.
final class StepRunner: @unchecked Sendable {  // `tasks`, `endedEarly` and `started` are guarded by `lock`
    private let lock = Lock()
    private var tasks: [Int: Task<Void, Never>] = [:]
    /// Tasks that ended before `start` kept them.
    private var endedEarly: Set<Int> = []
    private var started = 0
    private let handler: any StepHandler
    private let configuration: AgentConfiguration
    private let logger: Logger
    private let results: Mailbox<(StepKey, StepResult)>
    private let abandoned: AbandonedSteps

    init(
        handler: any StepHandler, configuration: AgentConfiguration, logger: Logger,
        results: Mailbox<(StepKey, StepResult)>, abandoned: AbandonedSteps
    ) {
        self.handler = handler
        self.configuration = configuration
        self.logger = logger
        self.results = results
        self.abandoned = abandoned
    }

    /// Starts the step. It runs until it ends, loses its lease (the agent stalled or lost the coordinator, and
    /// the step goes to another agent) or is handed back at shutdown: a lost lease cancels its task. Only a step
    /// that ended with its lease held has a result; cancelling the others stops their subprocesses (process
    /// groups).
    ///
    /// The task is created outside the lock: a quick step's task ends on another thread at once, and finding the
    /// lock held by this thread would put both threads through a futex wait and wake-up.
    func start(_ key: StepKey, _ assignment: StepAssignment, artifacts: [Artifact], lease: StepLease) {
        let id = lock.withLock {
            started += 1
            return started
        }
        let task = Task { [self] in
            let result = await lease.cancellingOnLoss {
                await AgentService.execute(
                    key, assignment, artifacts: artifacts, lease: lease, handler: handler,
                    configuration: configuration, logger: logger)
            }
            if let result, lease.isHeld {
                results.post((key, result))
            } else {
                abandoned.insert(key)
                results.post((key, abandonedResult(key)))
            }
            lock.withLock {
                if tasks.removeValue(forKey: id) == nil { endedEarly.insert(id) }
            }
        }
        lock.withLock {
            if endedEarly.remove(id) == nil { tasks[id] = task }
        }
    }

    /// Cancels the steps still running and waits until they have ended; called once no more steps start.
    func cancelAndWait() async {
        let running = lock.withLock { Array(tasks.values) }
        for task in running { task.cancel() }
        for task in running { await task.value }
    }
}

/// A step acknowledged and waiting for the artifacts it names.
struct WaitingStep {
    var assignment: StepAssignment
    /// Bytes found so far, by digest (kept here, so the cache may evict them meanwhile).
    var found: [String: Data]
    var missing: Set<String>
}

/// An artifact being fetched from the coordinator, chunk by chunk.
struct ArtifactFetch {
    var ref: ArtifactRef
    var received: Data
    /// The id of the last `fetch` sent, which an `error` reply names in `re`.
    var requestID = ""
    var lastSent: Int64 = 0
    /// Fetches from offset 0 started so far; a second bad copy fails the steps that wait.
    var rounds = 1
    var waiters: Set<StepKey>
}

/// Placeholder posted for an abandoned step so the session can forget it; never sent.
private func abandonedResult(_ key: StepKey) -> StepResult {
    StepResult(outcome: .failed, output: StepOutput(summary: "abandoned"), error: "abandoned", agent: "", host: "", pid: 0, startedAt: 0, finishedAt: 0)
}

/// Steps the session gave up on, shared with the tasks that run them.
final class AbandonedSteps: @unchecked Sendable {  // `keys` is guarded by `lock`
    private let lock = Lock()
    private var keys: Set<StepKey> = []

    func insert(_ key: StepKey) { lock.withLock { _ = keys.insert(key) } }
    func contains(_ key: StepKey) -> Bool { lock.withLock { keys.contains(key) } }
    /// Returns whether the key was abandoned, forgetting it.
    func take(_ key: StepKey) -> Bool { lock.withLock { keys.remove(key) != nil } }
}

/// The agent's side of the delivery rules, on the socket thread.
struct AgentSession {
    let configuration: AgentConfiguration
    let context: Context
    let logger: Logger
    let results: Mailbox<(StepKey, StepResult)>
    let runner: StepRunner
    let abandoned: AbandonedSteps
    let leases: LeaseBook

    /// Steps being run now.
    private var running: Set<StepKey> = []
    /// Results kept for idempotency: a step seen again is answered from here.
    private var record: IdempotencyRecord
    /// When each unconfirmed result was last sent.
    private var lastSent: [StepKey: Int64] = [:]
    /// Steps received in this loop pass, acknowledged together at its end unless their result goes first
    /// (a result implies the ack).
    private var pendingAcks: [StepKey] = []
    /// When the oldest of `pendingAcks` was received.
    private var acksPendingSince: Int64 = 0
    private var lastLoop: Int64 = 0
    private var welcomed = false
    private var heartbeatInterval: Int64
    private var liveness: Int
    private var lastHeard: Int64 = 0
    private var lastHeartbeat: Int64 = 0
    /// The heartbeat interval the coordinator granted for while this agent holds no step (0: none).
    private var idleHeartbeatInterval: Int64 = 0
    /// When the first heartbeat not answered yet (by anything from the coordinator) was sent.
    private var unansweredHeartbeat: Int64?
    /// The last loop turn at which this agent held no step: a step's liveness window starts there at the latest.
    private var lastIdle: Int64 = 0
    /// Whether the last heartbeat sent listed no step. Until one has, the coordinator judges this agent on the
    /// short window, so the agent keeps the short interval until it has said it holds nothing.
    private var reportedIdle = false
    /// Set when the agent stalled: start over on fresh sockets.
    private var mustReconnect = false
    private var lastHello: Int64 = 0
    private var draining = false
    /// Since when the agent has been trying to register without an answer.
    private var unansweredSince: Int64 = 0
    private var warnedUnanswered = false
    private var drainDeadline: Int64 = 0
    /// Rejected frames by reason.
    private(set) var rejections = RejectionCounter()
    /// Artifact bytes kept between steps.
    private var cache: ArtifactCache
    /// Steps acknowledged and waiting for artifacts, and the fetches they wait for, by digest.
    private var waiting: [StepKey: WaitingStep] = [:]
    private var fetches: [String: ArtifactFetch] = [:]
    /// The last workflow request decoded: a workflow's steps all carry the same one.
    private var requests = RequestCache()

    init(
        configuration: AgentConfiguration, context: Context, logger: Logger, results: Mailbox<(StepKey, StepResult)>,
        runner: StepRunner, record: IdempotencyRecord,
        abandoned: AbandonedSteps, leases: LeaseBook
    ) {
        self.record = record
        self.abandoned = abandoned
        self.leases = leases
        self.configuration = configuration
        self.context = context
        self.logger = logger
        self.results = results
        self.runner = runner
        self.heartbeatInterval = configuration.heartbeatInterval.milliseconds
        self.liveness = configuration.liveness
        self.cache = ArtifactCache(
            maxBytes: configuration.artifactCacheBytes, maxEntries: configuration.artifactCacheEntries)
    }

    private struct Sockets {
        let dealer: Socket
        let subscriber: Socket
        let monitor: SocketMonitor
    }

    private func connect() throws -> Sockets {
        let dealer = try Socket(context: context, type: .dealer)
        try dealer.set(.maxMessageSize, Int64(WireFormat.maxMessageBytes))
        try dealer.set(.sendHighWaterMark, 10_000)
        let subscriber = try Socket(context: context, type: .sub)
        try subscriber.set(.maxMessageSize, Int64(WireFormat.maxMessageBytes))
        if let curve = configuration.curve {
            try dealer.makeCurveClient(curve)
            try subscriber.makeCurveClient(curve)
        }
        let monitor = try SocketMonitor(dealer)
        try dealer.connect(configuration.coordinator)
        return Sockets(dealer: dealer, subscriber: subscriber, monitor: monitor)
    }

    /// Says why the coordinator is out of reach when the handshake tells; true when a handshake succeeded
    /// (a connection, or a reconnection after the coordinator restarted).
    private func logHandshakes(_ monitor: SocketMonitor) -> Bool {
        var succeeded = false
        for event in monitor.drain() {
            switch event {
            case .refused(let status):
                logger.error(
                    "coordinator refused this agent's key; allow its .pub on the coordinator",
                    metadata: ["zap.status": "\(status)", "key": "\(configuration.curve?.keyPair.publicKey ?? "-")"])
            case .protocolError(let code):
                logger.error(
                    "handshake with the coordinator failed; CURVE on one side only, or a wrong --coordinator-key",
                    metadata: ["zmq.protocolError": "\(code)"])
            case .succeeded:
                succeeded = true
            case .failed:
                continue
            }
        }
        return succeeded
    }

    /// How long acks wait for their steps' results (milliseconds): a step that ends sooner is acknowledged by
    /// its result alone, which the coordinator handles in one loop turn (one journal commit, one event) instead
    /// of two. Far below any ack timeout; heartbeats and a bye send the waiting acks first.
    static let ackDelay: Int64 = 5

    /// How long a step's lease lasts without news from the coordinator: its liveness window for this agent.
    private var leaseWindow: Duration { .milliseconds(heartbeatInterval * Int64(liveness)) }

    mutating func serve(stop: ReactorLoop.StopSignal) throws {
        var sockets = try connect()
        unansweredSince = now()
        var subscribed = false
        sendHello(sockets.dealer)
        lastHeard = now()
        lastLoop = now()
        while true {
            let loopTime = now()
            if loopTime - lastLoop > heartbeatInterval * Int64(liveness) { abandonAfterStall() }
            lastLoop = loopTime
            if stop.isStopped && !draining {
                draining = true
                drainDeadline = now() + configuration.drainTimeout.milliseconds
                // Steps still waiting for artifacts have not started: they are handed back at once.
                dropWaitingSteps()
                logger.info("agent draining", metadata: ["running": "\(running.count)"])
            }
            if draining && ((running.isEmpty && record.unconfirmed.isEmpty) || now() >= drainDeadline) {
                if !running.isEmpty {
                    logger.info("agent handing back its running steps", metadata: ["running": "\(running.count)"])
                }
                leases.revokeAll()
                sendAcks(sockets.dealer)
                send(sockets.dealer, Header(type: .bye, sender: configuration.id), Empty())
                break
            }
            if !welcomed && !warnedUnanswered && now() - unansweredSince >= 2500 {
                // A wrong --coordinator-key fails the CURVE handshake without any event on this side: the
                // coordinator just drops the connection. Silence within 3 s is said once, with the likely causes.
                warnedUnanswered = true
                logger.error(
                    "no answer from the coordinator within 3s: it is down or unreachable, or --coordinator-key is not its key",
                    metadata: ["coordinator": "\(configuration.coordinator)"])
            }
            var poller = Poller()
            let dealerIndex = poller.add(sockets.dealer)
            let subscriberIndex = poller.add(sockets.subscriber)
            let resultsIndex = poller.add(fileDescriptor: results.wakeup.fileDescriptor)
            let stopIndex = poller.add(fileDescriptor: stop.wakeup.fileDescriptor)
            let monitorIndex = poller.add(sockets.monitor.socket)
            var timeout = max(10, min(100, heartbeatInterval / 4))
            if !pendingAcks.isEmpty { timeout = max(1, min(timeout, acksPendingSince + Self.ackDelay - now())) }
            let ready = try poller.poll(timeoutMilliseconds: Int(timeout))
            // A freeze mostly strikes in the poll: found here, it costs one reconnection in this turn, not one for
            // the silence now and another for the stall at the next turn's start.
            if now() - lastLoop > heartbeatInterval * Int64(liveness) {
                abandonAfterStall()
                lastLoop = now()
            }
            if ready[stopIndex] { stop.wakeup.drain() }
            // A new connection (the coordinator restarted, or the network came back): a heartbeat at once, which
            // a restarted coordinator answers with `rehello`.
            if ready[monitorIndex], logHandshakes(sockets.monitor), welcomed { lastHeartbeat = 0 }
            if ready[dealerIndex] {
                for _ in 0..<1000 {
                    guard let frames = try sockets.dealer.receive(wait: false) else { break }
                    lastHeard = now()
                    unansweredHeartbeat = nil
                    leases.renewAll(window: leaseWindow)
                    if let eventsEndpoint = handleControl(frames, dealer: sockets.dealer), !subscribed {
                        try sockets.subscriber.connect(eventsEndpoint)
                        try sockets.subscriber.subscribe(WireFormat.agentTopic(configuration.id))
                        try sockets.subscriber.subscribe(WireFormat.roleTopic(configuration.role))
                        subscribed = true
                        logger.debug("subscribed", metadata: ["events": "\(eventsEndpoint)"])
                    }
                }
            }
            if ready[subscriberIndex] {
                for _ in 0..<1000 {
                    guard let frames = try sockets.subscriber.receive(wait: false) else { break }
                    handleStep(frames, dealer: sockets.dealer)
                }
            }
            if ready[resultsIndex] { results.wakeup.drain() }
            // Leases that ran out without news from the coordinator end their steps' races.
            leases.endLapsed()
            var sentResults = false
            for (key, result) in results.takeAll() {
                leases.remove(key)
                if abandoned.take(key) {
                    running.remove(key)
                    continue
                }
                running.remove(key)
                record.record(key, result)
                lastSent[key] = now()
                sendResult(key, result, dealer: sockets.dealer)
                sentResults = true
            }
            if sentResults && !pendingAcks.isEmpty { pendingAcks.removeAll { record.unconfirmed.contains($0) } }
            let time = now()
            if !pendingAcks.isEmpty && time - acksPendingSince >= Self.ackDelay { sendAcks(sockets.dealer) }
            if !welcomed && time - lastHello >= heartbeatInterval {
                sendHello(sockets.dealer)
            }
            // Holding no step, an agent heartbeats at its granted idle interval; holding one, at the interval.
            let holdsSteps = !running.isEmpty || !record.unconfirmed.isEmpty
            if !holdsSteps { lastIdle = time }
            if holdsSteps { reportedIdle = false }
            let beat =
                welcomed && !holdsSteps && reportedIdle && idleHeartbeatInterval > 0
                ? idleHeartbeatInterval : heartbeatInterval
            if time - lastHeartbeat >= beat {
                lastHeartbeat = time
                if unansweredHeartbeat == nil { unansweredHeartbeat = time }
                let rejected = rejections.byName
                // A step whose result is not confirmed yet is still this agent's: listing it keeps the coordinator
                // from taking it for dropped when the result was lost with a reconnect and is on its way again.
                let held = running.union(record.unconfirmed).sorted { $0.description < $1.description }
                reportedIdle = held.isEmpty
                sendAcks(sockets.dealer)
                send(
                    sockets.dealer, Header(type: .heartbeat, sender: configuration.id),
                    Heartbeat(inFlight: held, rejected: rejected.isEmpty ? nil : rejected))
            }
            resendFetches(dealer: sockets.dealer, at: time)
            for key in record.unconfirmed where welcomed && time - (lastSent[key] ?? 0) >= configuration.resendInterval.milliseconds {
                if let result = record.results[key] {
                    lastSent[key] = time
                    sendResult(key, result, dealer: sockets.dealer)
                }
            }
            // The coordinator answers every heartbeat. It went quiet when a heartbeat had no answer for the
            // liveness window, or, while this agent holds steps (or waits for its welcome), when nothing came
            // from it for that window (since the agent last held none).
            let window = heartbeatInterval * Int64(liveness)
            let silent =
                unansweredHeartbeat.map { time - $0 > window } == true
                || ((holdsSteps || !welcomed) && time - max(lastHeard, welcomed ? lastIdle : 0) > window)
            if silent || mustReconnect {
                // Start over on fresh sockets; the hello and the resend of unconfirmed results follow.
                logger.warning("coordinator silent, reconnecting")
                sockets = try connect()
                subscribed = false
                if welcomed { unansweredSince = time }
                welcomed = false
                lastHeard = time
                unansweredHeartbeat = nil
                mustReconnect = false
                sendHello(sockets.dealer)
            }
        }
    }

    /// This process was frozen (SIGSTOP, a VM pause) longer than its liveness: the coordinator has given its
    /// steps to others, so finishing them now would do their work twice. Starts over on fresh sockets.
    private mutating func abandonAfterStall() {
        logger.warning("agent stalled, abandoning its running steps", metadata: ["running": "\(running.count)"])
        for key in running where waiting[key] == nil { abandoned.insert(key) }
        dropWaitingSteps()
        leases.revokeAll()
        running.removeAll()
        mustReconnect = true
    }

    private mutating func sendHello(_ dealer: Socket) {
        lastHello = now()
        let hello = Hello(
            agent: configuration.id, role: configuration.role, host: configuration.host, pid: configuration.pid,
            capacity: configuration.capacity, version: WireFormat.softwareVersion,
            idleHeartbeatIntervalMilliseconds: configuration.idleHeartbeatInterval.map { Int($0.milliseconds) })
        send(dealer, Header(type: .hello, sender: configuration.id), hello)
    }

    private func send<Body: Encodable>(_ dealer: Socket, _ header: Header, _ body: Body) {
        do {
            try dealer.send(Codec.encode(header, body), wait: false)
        } catch {
            logger.debug("send failed", metadata: ["error": "\(error)"])
        }
    }

    private func sendResult(_ key: StepKey, _ result: StepResult, dealer: Socket) {
        let header = Header(type: .result, workflow: key.workflow, step: key.step, attempt: key.attempt, sender: configuration.id)
        do {
            try dealer.send(Codec.frames(header, body: result.compactJSON), wait: false)
        } catch {
            logger.debug("send failed", metadata: ["error": "\(error)"])
        }
    }

    /// Acknowledges the steps received in this loop pass: one `ack` naming its step in the header, or one
    /// listing them all (v4).
    private mutating func sendAcks(_ dealer: Socket) {
        guard !pendingAcks.isEmpty else { return }
        defer { pendingAcks.removeAll(keepingCapacity: true) }
        if pendingAcks.count == 1, let key = pendingAcks.first {
            send(
                dealer,
                Header(type: .ack, workflow: key.workflow, step: key.step, attempt: key.attempt, sender: configuration.id),
                Empty())
            return
        }
        for start in stride(from: 0, to: pendingAcks.count, by: KeyList.maxKeys) {
            let keys = Array(pendingAcks[start..<min(start + KeyList.maxKeys, pendingAcks.count)])
            do {
                try dealer.send(
                    Codec.frames(Header(type: .ack, sender: configuration.id), body: KeyList(keys: keys).compactJSON),
                    wait: false)
            } catch {
                logger.debug("send failed", metadata: ["error": "\(error)"])
            }
        }
    }

    private mutating func queueAck(_ key: StepKey) {
        if pendingAcks.isEmpty { acksPendingSince = now() }
        pendingAcks.append(key)
    }

    private mutating func reject(_ error: DecodeError) {
        rejections.count(error, logger: logger)
    }

    /// Handles a message from the coordinator; returns the events endpoint
    /// once a welcome tells where it is.
    private mutating func handleControl(_ frames: [[UInt8]], dealer: Socket) -> String? {
        let envelope: Envelope
        do {
            envelope = try Codec.decode(frames[...])
        } catch {
            reject(error)
            return nil
        }
        switch envelope.header.type {
        case .welcome:
            do {
                let welcome = try envelope.decode(Welcome.self)
                welcomed = true
                warnedUnanswered = false
                heartbeatInterval = Int64(max(50, min(60_000, welcome.heartbeatIntervalMilliseconds)))
                liveness = max(2, min(100, welcome.liveness))
                idleHeartbeatInterval =
                    welcome.idleHeartbeatIntervalMilliseconds.map { Int64(min(3_600_000, $0)) }
                    .flatMap { $0 > heartbeatInterval ? $0 : nil } ?? 0
                // A heartbeat at once: claims the steps this agent still holds, and starts the idle rhythm.
                lastHeartbeat = 0
                logger.info("agent registered")
                // Whatever the coordinator has not confirmed goes again now, and so do fetches.
                lastSent = [:]
                for digest in fetches.keys { fetches[digest]?.lastSent = 0 }
                guard let endpoint = configuration.eventsEndpoint(announcedPort: welcome.eventsPort, announced: welcome.eventsEndpoint)
                else {
                    logger.error("coordinator announced no events endpoint; pass --events")
                    return nil
                }
                return endpoint
            } catch {
                reject(error)
            }
        case .confirm:
            if let key = envelope.header.stepKey {
                record.confirm(key)
                lastSent[key] = nil
            } else {
                do {
                    for key in try KeyList.decode(envelope.body).keys {
                        record.confirm(key)
                        lastSent[key] = nil
                    }
                } catch {
                    reject(error)
                }
            }
        case .rehello:
            if welcomed { unansweredSince = now() }
            welcomed = false
            sendHello(dealer)
        case .heartbeat:
            break
        case .fetchReply:
            do {
                fetched(try envelope.decode(FetchReply.self), dealer: dealer)
            } catch {
                reject(error)
            }
        case .error:
            if let reply = try? envelope.decode(ErrorReply.self) {
                logger.warning("coordinator refused a message", metadata: ["reason": "\(reply.reason)", "detail": "\(reply.message)"])
                if let re = envelope.header.re, let digest = fetches.first(where: { $0.value.requestID == re })?.key {
                    fetchRefused(digest, reply, dealer: dealer)
                }
            }
        default:
            reject(DecodeError(.unexpectedType, "'\(envelope.header.type.rawValue)' is not expected from the coordinator"))
        }
        return nil
    }

    /// A step published to this agent (or, v4, several of one workflow): acknowledge each, then run it once.
    private mutating func handleStep(_ frames: [[UInt8]], dealer: Socket) {
        guard frames.count == 3 else {
            reject(DecodeError(.frameCount, "a step has 3 frames (topic, header, body), got \(frames.count)"))
            return
        }
        let steps: [(StepKey, StepAssignment)]
        do throws(DecodeError) {
            let envelope = try Codec.decode(frames.dropFirst())
            let header = envelope.header
            guard header.type == .step else {
                throw DecodeError(.unexpectedType, "'\(header.type.rawValue)' on the step topic")
            }
            if let key = header.stepKey {
                steps = [(key, try StepAssignment.decode(envelope.body, requests: &requests))]
            } else if let workflow = header.workflow, header.step == nil, header.attempt == nil {
                steps = try StepBatch.decode(envelope.body, workflow: workflow, requests: &requests)
            } else {
                throw DecodeError(.invalidField, "a step needs workflow, step and attempt")
            }
        } catch {
            reject(error)
            return
        }
        for (key, assignment) in steps { accept(key, assignment, dealer: dealer) }
    }

    private mutating func accept(_ key: StepKey, _ assignment: StepAssignment, dealer: Socket) {
        guard assignment.role == configuration.role else {
            reject(DecodeError(.invalidField, "step for role \(assignment.role.rawValue) sent to a \(configuration.role.rawValue) agent"))
            return
        }
        // A draining agent does not acknowledge: the coordinator gives the step to another.
        if draining { return }
        if running.contains(key) {
            // Published again: the coordinator missed the ack, or waits for it.
            if !pendingAcks.contains(key) { queueAck(key) }
            return
        }
        if let result = record.results[key] {
            // Seen before: the stored result answers (and acknowledges), the step does not run again.
            sendResult(key, result, dealer: dealer)
            return
        }
        queueAck(key)
        running.insert(key)
        resolve(key, assignment, dealer: dealer)
    }

    // MARK: Artifacts by digest

    /// Finds the artifacts a step names in the cache and fetches the others; the step starts once it has them.
    private mutating func resolve(_ key: StepKey, _ assignment: StepAssignment, dealer: Socket) {
        var step = WaitingStep(assignment: assignment, found: [:], missing: [])
        for ref in assignment.artifacts {
            guard ArtifactRef.isDigest(ref.digest), (0...WireFormat.maxArtifactBytes).contains(ref.size) else {
                reject(DecodeError(.invalidField, "artifact '\(ref.name.prefix(64))' has no valid digest or size"))
                fail(
                    key, "the step names artifact '\(ref.name.prefix(64))' without a valid digest or size",
                    dealer: dealer)
                return
            }
            if step.found[ref.digest] != nil || step.missing.contains(ref.digest) { continue }
            if let data = cache.get(ref.digest) {
                step.found[ref.digest] = data
            } else {
                step.missing.insert(ref.digest)
            }
        }
        if step.missing.isEmpty {
            start(key, step)
            return
        }
        waiting[key] = step
        for digest in step.missing {
            if fetches[digest] != nil {
                fetches[digest]?.waiters.insert(key)
                continue
            }
            guard let ref = assignment.artifacts.first(where: { $0.digest == digest }) else { continue }
            var fetch = ArtifactFetch(ref: ref, received: Data(), waiters: [key])
            fetch.received.reserveCapacity(ref.size)
            fetches[digest] = fetch
            requestChunk(digest, dealer: dealer)
        }
    }

    private mutating func start(_ key: StepKey, _ step: WaitingStep) {
        let artifacts = step.assignment.artifacts.compactMap { ref in
            step.found[ref.digest].map { ref.artifact(data: $0) }
        }
        logger.debug(
            "step artifacts at hand",
            metadata: [
                "workflow.id": "\(key.workflow)", "step": "\(key.step)", "artifacts": "\(artifacts.count)",
                "artifact.cache.hits": "\(cache.hits)", "artifact.cache.entries": "\(cache.count)",
            ])
        runner.start(key, step.assignment, artifacts: artifacts, lease: leases.grant(key, window: leaseWindow))
    }

    private mutating func requestChunk(_ digest: String, dealer: Socket) {
        guard var fetch = fetches[digest] else { return }
        let header = Header(type: .fetch, sender: configuration.id)
        fetch.requestID = header.id
        fetch.lastSent = now()
        fetches[digest] = fetch
        send(dealer, header, FetchRequest(digest: digest, offset: fetch.received.count))
    }

    /// Fetches without an answer go again (the coordinator may have restarted, or the connection with it).
    private mutating func resendFetches(dealer: Socket, at time: Int64) {
        guard welcomed else { return }
        for (digest, fetch) in fetches where time - fetch.lastSent >= configuration.resendInterval.milliseconds {
            requestChunk(digest, dealer: dealer)
        }
    }

    /// A chunk from the coordinator: kept when it continues the fetch; the whole artifact is checked
    /// against its digest before any step sees it.
    private mutating func fetched(_ reply: FetchReply, dealer: Socket) {
        guard var fetch = fetches[reply.digest] else { return }  // a late duplicate of a finished fetch
        if reply.offset < fetch.received.count { return }  // a duplicate of a chunk already kept (a resend)
        if reply.offset > fetch.received.count {
            // Chunks are asked for in order: one past what is held answers a request of an earlier round (a
            // resend answered after the fetch started over), or nothing asked. Counted and dropped; the chunk
            // asked for comes, or is asked for again.
            reject(
                DecodeError(
                    .invalidOffset, "a fetch-reply ahead of the fetch of \(reply.digest.prefix(12)) (a stale answer)"))
            return
        }
        guard reply.total == fetch.ref.size,
            reply.data.count <= WireFormat.fetchChunkBytes, reply.offset + reply.data.count <= reply.total,
            !reply.data.isEmpty || reply.total == 0
        else {
            reject(
                DecodeError(
                    .invalidOffset, "a fetch-reply that does not continue the fetch of \(reply.digest.prefix(12))"))
            restartFetch(reply.digest, reason: "the coordinator sent a chunk that does not fit", dealer: dealer)
            return
        }
        fetch.received.append(reply.data)
        fetches[reply.digest] = fetch
        guard fetch.received.count == fetch.ref.size else {
            requestChunk(reply.digest, dealer: dealer)
            return
        }
        guard ArtifactCache.digest(fetch.received) == reply.digest else {
            reject(DecodeError(.digestMismatch, "artifact \(reply.digest.prefix(12)) does not match its digest"))
            restartFetch(reply.digest, reason: "its bytes do not match its digest", dealer: dealer)
            return
        }
        fetches[reply.digest] = nil
        cache.insert(reply.digest, fetch.received)
        logger.debug(
            "artifact fetched",
            metadata: [
                "artifact": "\(fetch.ref.name)", "artifact.digest": "\(reply.digest.prefix(12))",
                "artifact.size": "\(fetch.ref.size)", "artifact.cache.evictions": "\(cache.evictions)",
            ])
        for key in fetch.waiters {
            guard var step = waiting[key] else { continue }
            step.found[reply.digest] = fetch.received
            step.missing.remove(reply.digest)
            if step.missing.isEmpty {
                waiting[key] = nil
                start(key, step)
            } else {
                waiting[key] = step
            }
        }
    }

    /// Starts a fetch over from offset 0 once; a second failure fails the steps that wait for it.
    private mutating func restartFetch(_ digest: String, reason: String, dealer: Socket) {
        guard var fetch = fetches[digest] else { return }
        guard fetch.rounds < 2 else {
            failFetch(digest, "artifact '\(fetch.ref.name)' could not be fetched: \(reason)", dealer: dealer)
            return
        }
        fetch.rounds += 1
        fetch.received = Data()
        fetches[digest] = fetch
        requestChunk(digest, dealer: dealer)
    }

    private mutating func fetchRefused(_ digest: String, _ reply: ErrorReply, dealer: Socket) {
        guard let fetch = fetches[digest] else { return }
        if reply.reason == RejectReason.invalidOffset.rawValue {
            restartFetch(digest, reason: "the coordinator refused an offset", dealer: dealer)
        } else {
            failFetch(
                digest, "artifact '\(fetch.ref.name)' is not available from the coordinator (\(reply.reason))",
                dealer: dealer)
        }
    }

    private mutating func failFetch(_ digest: String, _ reason: String, dealer: Socket) {
        guard let fetch = fetches.removeValue(forKey: digest) else { return }
        logger.warning("artifact fetch failed", metadata: ["artifact": "\(fetch.ref.name)", "reason": "\(reason)"])
        for key in fetch.waiters where waiting[key] != nil {
            waiting[key] = nil
            fail(key, reason, dealer: dealer)
        }
    }

    /// Ends a step that could not start with a failed result, recorded and sent like any other.
    private mutating func fail(_ key: StepKey, _ reason: String, dealer: Socket) {
        running.remove(key)
        let time = now()
        let result = StepResult(
            outcome: .failed, output: StepOutput(summary: "failed: \(reason)"), error: reason,
            agent: configuration.id, host: configuration.host, pid: configuration.pid, startedAt: time,
            finishedAt: time)
        record.record(key, result)
        lastSent[key] = time
        sendResult(key, result, dealer: dealer)
    }

    /// Forgets the steps waiting for artifacts (they never started) and their fetches.
    private mutating func dropWaitingSteps() {
        for key in waiting.keys { running.remove(key) }
        waiting = [:]
        fetches = [:]
    }
}
