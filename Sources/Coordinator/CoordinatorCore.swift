import Foundation
import Logging
import Protocol
import ShoalSupport
import ZeroMQ

/// What the core asks the socket layer to send.
enum Outgoing: Equatable {
    /// To one peer of the ROUTER socket.
    case send(identity: [UInt8], frames: [[UInt8]])
    /// On the PUB socket (the first frame is the topic).
    case publish([[UInt8]])
}

/// The coordinator's state machine: agents, workflows as DAGs, delivery
/// rules. It owns no socket: the service feeds it decoded input and timer
/// ticks and sends what it returns, so every rule is testable directly.
/// It is used from the one thread that owns the sockets.
///
/// Its cost per step does not grow with the size of a workflow or the number
/// of workflows: ready steps come from dependency counters and per-role
/// queues, deadlines from a heap, the journal gets the rows that changed in
/// one transaction per loop turn, and events carry the steps that changed.
/// Only running workflows are kept in memory; finished ones are read from
/// the journal when asked for.
final class CoordinatorCore {
    /// Per-step delivery state that is not worth journaling: it is rebuilt
    /// (conservatively) after a restart.
    struct Delivery {
        var ackDeadline: Int64?
        var publishes = 0
        var runDeadline: Int64?
        /// Agents that already failed this step, tried last next time.
        var avoid: Set<String> = []
        /// When a step whose agent is unknown (after a restart) is given up.
        var orphanDeadline: Int64?
        /// Backoff: a requeued step waits until then.
        var notBefore: Int64 = 0
    }

    /// A running workflow with its indexes.
    final class Live {
        var snapshot: WorkflowSnapshot
        /// Step position by name.
        var index: [String: Int] = [:]
        /// Positions of each step's needs.
        var needs: [[Int]] = []
        /// Steps that need each step.
        var dependents: [[Int]] = []
        /// Needs of each step that have not succeeded yet.
        var waiting: [Int] = []
        var unfinished = 0
        var deliveries: [Int: Delivery] = [:]
        /// Steps changed since the last event (and journal commit).
        var changed: Set<Int> = []
        var publishedRevision: Int
        /// Steps that returned artifacts, and references to those artifacts once read.
        var withArtifacts: Set<Int> = []
        var artifacts: [Int: [ArtifactRef]] = [:]
        /// For each step whose assignment was built: the ancestors that
        /// produced values or artifacts (what its assignment carries).
        var producers: [Int: [Int]] = [:]
        var submitID: String?
        /// The request, encoded once: the header row and every assignment carry it.
        lazy var requestJSON: [UInt8] = WireJSON.encode(snapshot.request)

        init(_ snapshot: WorkflowSnapshot, publishedRevision: Int) {
            self.snapshot = snapshot
            self.publishedRevision = publishedRevision
            // Two passes: a stored workflow's steps need not come after their needs.
            for (position, step) in snapshot.steps.enumerated() { index[step.name] = position }
            needs = snapshot.steps.map { $0.needs.compactMap { index[$0] } }
            dependents = Array(repeating: [], count: snapshot.steps.count)
            for (position, needed) in needs.enumerated() {
                for need in needed { dependents[need].append(position) }
            }
            waiting = needs.map { $0.filter { snapshot.steps[$0].state != .succeeded }.count }
            unfinished = snapshot.steps.filter { !$0.state.isFinished }.count
        }

        var id: String { snapshot.id }

        /// Appends a step; its needs must already be in the workflow.
        func add(_ step: StepSnapshot) {
            let position = snapshot.steps.count
            snapshot.steps.append(step)
            index[step.name] = position
            let needed = step.needs.compactMap { index[$0] }
            needs.append(needed)
            dependents.append([])
            for need in needed { dependents[need].append(position) }
            waiting.append(needed.filter { snapshot.steps[$0].state != .succeeded }.count)
            if !step.state.isFinished { unfinished += 1 }
        }

        func produces(_ position: Int) -> Bool {
            !snapshot.steps[position].values.isEmpty || withArtifacts.contains(position)
        }

        var hasActiveSteps: Bool {
            snapshot.steps.contains { $0.state == .assigned || $0.state == .running }
        }
    }

    /// A step in a per-role ready queue.
    struct ReadyStep {
        var workflow: String
        var step: Int
    }

    let configuration: CoordinatorConfiguration
    let journal: Journal
    let logger: Logger
    let clock: @Sendable () -> Int64
    let eventsPort: Int?
    /// With CURVE on, the keys allowed now; every message's ZAP user id (the
    /// sender's public key) is checked against it. nil on a plain-TCP bus.
    private let allowList: CurveAllowList?
    /// Prometheus metrics, when served (see Metrics.swift).
    private let metrics: CoordinatorMetrics?

    /// Running workflows (and finished ones with steps still out on agents).
    var workflows: [String: Live] = [:]
    var submits: [String: String] = [:]
    var ready: [Role: RingQueue<ReadyStep>] = [:]
    private var deadlines = DeadlineHeap()
    var registry = AgentRegistry()
    var dirty: [String: Live] = [:]
    var batch = JournalBatch()
    private var outbox: [Outgoing] = []
    /// Steps published this turn, whose ack deadline starts once they are sent.
    private var published: [(workflow: String, step: Int, attempt: Int)] = []
    private var pendingOutputs: [(workflow: String, artifacts: [Artifact])] = []
    private var lastLivenessCheck: Int64 = 0
    /// The heartbeat that answers agents' heartbeats, encoded once per interval (its `sentAt` is informational).
    private var heartbeatReply: (encodedAt: Int64, frames: [[UInt8]])?
    struct OutgoingStepsKey: Hashable {
        var agent: String
        var workflow: String
    }
    /// Steps published this turn, by agent and workflow: one `step` message for each (v4).
    private var outgoingSteps:
        [OutgoingStepsKey: (request: [UInt8], steps: [(name: String, attempt: Int, assignment: AssignmentWithoutRequest)])] =
            [:]
    /// Results confirmed and not told yet, by agent connection: one `confirm` per connection lists them (v4).
    private var confirms: [[UInt8]: (re: String, keys: [StepKey])] = [:]
    /// When the oldest of `confirms` was queued, and how many keys they hold.
    private var confirmsPendingSince: Int64?
    private var confirmKeys = 0
    /// How long a confirm may wait for more to the same agent (milliseconds): a chain of quick steps confirms
    /// several results in one message, not one per loop turn. Far below any agent's resend interval.
    static let confirmDelay: Int64 = 5
    private var lastPrune: Int64 = 0
    var journalWorkflows = 0
    /// Ready steps waiting for the one agent they are pinned to (`CoordinatorCore+Operations`).
    var pinnedWaits: [String: PinnedWait] = [:]
    /// Set when a turn stopped at its bound with work left.
    private(set) var hasMoreWork = false
    /// Rejected frames by reason.
    private(set) var rejections = RejectionCounter()
    /// The artifact last read for a `fetch`, and the chunks served so far (`stats`).
    var lastFetched: (digest: String, data: Data)?
    var fetchedChunks = 0

    /// Steps given out per loop turn at most, so heartbeats and confirms
    /// are never held behind a burst.
    static let assignmentsPerTurn = 512
    /// Deadlines handled per loop turn at most.
    static let deadlinesPerTurn = 2048

    /// The workflows found unfinished at start and marked `interrupted` (`interruptUnfinished`).
    private(set) var interruptedAtStart: [String] = []

    init(
        configuration: CoordinatorConfiguration, journal: Journal, logger: Logger, eventsPort: Int?,
        allowList: CurveAllowList? = nil, metrics: CoordinatorMetrics? = nil,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) throws {
        self.configuration = configuration
        self.metrics = metrics
        self.allowList = allowList
        self.journal = journal
        self.logger = logger
        self.clock = clock
        self.eventsPort = eventsPort
        let now = clock()
        let grace = 2 * livenessMilliseconds
        journalWorkflows = try journal.workflowCount()
        if configuration.interruptUnfinished {
            interruptedAtStart = try journal.interruptUnfinished(at: now)
            for id in interruptedAtStart { logger.info("workflow interrupted", metadata: ["workflow.id": "\(id)"]) }
        }
        for workflow in try journal.workflows(unfinishedOnly: true) {
            let live = Live(workflow, publishedRevision: workflow.revision)
            live.withArtifacts = Set(try journal.stepsWithArtifacts(workflow: workflow.id).compactMap { live.index[$0] })
            workflows[workflow.id] = live
            logger.info("resuming workflow", metadata: ["workflow.id": "\(workflow.id)"])
            for (position, step) in live.snapshot.steps.enumerated() {
                if step.state == .assigned || step.state == .running {
                    live.deliveries[position] = Delivery(orphanDeadline: now + grace)
                    deadlines.push(at: now + grace, .orphan, workflow: workflow.id, step: position, attempt: step.attempt)
                } else if step.state == .pending && live.waiting[position] == 0 {
                    enqueue(live, position)
                }
            }
        }
        try metrics?.start(counts: journal.workflowCounts(), running: Array(workflows.keys))
    }

    private var livenessMilliseconds: Int64 {
        configuration.heartbeatInterval.milliseconds * Int64(configuration.liveness)
    }

    /// Attempts a step may use in all, charged or not: a bound for a step
    /// that takes down every agent it is given to.
    private var attemptLimit: Int { max(20, 10 * configuration.maxAttempts) }

    /// Ends the loop turn: gives out ready steps, writes the turn's changes
    /// to the journal in one transaction, and only then returns what is to
    /// be sent (rule 6: nothing is acted on before it is recorded). Ack
    /// deadlines of the steps published start now, as they leave.
    /// - Throws: `ShoalError(.io)` when the journal cannot be written: the
    ///   coordinator must stop, as it cannot record what it would do.
    func drainOutbox() throws -> [Outgoing] {
        schedule()
        flushSteps()
        publishChanges()
        let commitStarted = ContinuousClock.now
        try journal.commit(batch)
        if let metrics, !batch.isEmpty {
            metrics.journalCommit(took: ContinuousClock.now - commitStarted)
            metrics.committed(journal, logger: logger)
            metrics.readySteps { ready[$0]?.count ?? 0 }
        }
        batch = JournalBatch()
        let now = clock()
        for step in published {
            guard let live = workflows[step.workflow], live.snapshot.steps[step.step].attempt == step.attempt,
                live.snapshot.steps[step.step].state == .assigned
            else { continue }
            let deadline = now + configuration.ackTimeout.milliseconds
            live.deliveries[step.step, default: Delivery()].ackDeadline = deadline
            deadlines.push(at: deadline, .ack, workflow: step.workflow, step: step.step, attempt: step.attempt)
        }
        published = []
        if let since = confirmsPendingSince, now - since >= Self.confirmDelay || confirmKeys >= KeyList.maxKeys {
            flushConfirms()
        }
        for output in pendingOutputs { writeOutputs(output.artifacts, workflow: output.workflow) }
        pendingOutputs = []
        defer { outbox = [] }
        return outbox
    }

    /// The confirms held for more, to send now (the coordinator stops).
    func takeHeldConfirms() -> [Outgoing] {
        flushConfirms()
        defer { outbox = [] }
        return outbox
    }

    /// Milliseconds until the confirms held are due, for the loop's poll; nil when none wait.
    var confirmsDueIn: Int64? {
        confirmsPendingSince.map { max(0, $0 + Self.confirmDelay - clock()) }
    }

    /// One `confirm` per agent connection for the results confirmed since the last.
    private func flushConfirms() {
        for (identity, confirmed) in confirms {
            if confirmed.keys.count == 1, let key = confirmed.keys.first {
                let header = Header(
                    type: .confirm, workflow: key.workflow, step: key.step, attempt: key.attempt, re: confirmed.re)
                outbox.append(
                    .send(identity: identity, frames: [identity] + Codec.frames(header, body: CompactJSON.emptyObject)))
            } else {
                for start in stride(from: 0, to: confirmed.keys.count, by: KeyList.maxKeys) {
                    let keys = Array(confirmed.keys[start..<min(start + KeyList.maxKeys, confirmed.keys.count)])
                    let frames = Codec.frames(Header(type: .confirm), body: KeyList(keys: keys).compactJSON)
                    outbox.append(.send(identity: identity, frames: [identity] + frames))
                }
            }
        }
        confirms = [:]
        confirmsPendingSince = nil
        confirmKeys = 0
    }

    // MARK: Input

    /// A subscription or unsubscription seen by the XPUB socket.
    func subscriptionChanged(_ topic: String, subscribed: Bool) {
        registry.subscriptionChanged(topic, subscribed: subscribed)
    }

    /// A message on the ROUTER socket: identity frame first.
    /// - Parameter userID: the sender's CURVE public key as the ZAP handler
    ///   vouched for it; nil on a plain-TCP bus.
    func handleControl(_ frames: [[UInt8]], userID: String? = nil) {
        guard let identity = frames.first, !identity.isEmpty else {
            reject(nil, DecodeError(.frameCount, "message without routing identity"))
            return
        }
        // ZAP checked the key at the handshake; a key revoked since then may
        // still have a connection until it is reset, so check every message.
        if let allowList {
            guard let userID, allowList.contains(userID) else {
                reject(identity, DecodeError(.keyNotAllowed, "the sender's key is not on the allow-list"))
                return
            }
        }
        let envelope: Envelope
        do {
            envelope = try Codec.decode(frames.dropFirst())
        } catch {
            reject(identity, error)
            return
        }
        do {
            try dispatch(envelope, from: identity, key: userID)
        } catch let error as DecodeError {
            reject(identity, error, re: envelope.header.id)
        } catch {
            logger.error("journal read failed", metadata: ["error": "\(error)"])
            reply(
                identity, Header(type: .error, re: envelope.header.id),
                ErrorReply(reason: "internal", message: "\(error)"))
        }
    }

    private func dispatch(_ envelope: Envelope, from identity: [UInt8], key: String?) throws {
        let header = envelope.header
        // An agent id belongs to the key it registered with: another allowed
        // peer may not speak for it (nor take its steps).
        if [.hello, .heartbeat, .ack, .result, .bye, .fetch].contains(header.type), let sender = header.sender,
            let owner = registry.key(of: sender), owner != key
        {
            throw DecodeError(.keyMismatch, "agent '\(sender.prefix(64))' is registered with another key")
        }
        switch header.type {
        case .hello:
            try hello(envelope.decode(Hello.self), identity: identity, header: header, key: key)
        case .heartbeat:
            try heartbeat(Heartbeat.decode(envelope.body), identity: identity, header: header)
        case .ack:
            try ack(identity: identity, header: header, body: envelope.body)
        case .result:
            let (cleaned, redacted) = Redaction.redact(StepLogBound.bound(try StepResult.decode(envelope.body)))
            if redacted > 0 {
                logger.warning(
                    "secrets removed from a step result",
                    metadata: [
                        "step": "\(header.step ?? "?")", "sender": "\(header.sender ?? "?")", "count": "\(redacted)",
                    ])
            }
            try result(cleaned, identity: identity, header: header)
        case .bye:
            bye(identity: identity, header: header)
        case .fetch:
            try fetch(envelope.decode(FetchRequest.self), identity: identity, header: header)
        case .submit:
            try submit(envelope.decode(Submit.self), identity: identity, header: header)
        case .status:
            let workflow = try snapshot(header.workflow)
            reply(
                identity, Header(type: .statusReply, workflow: workflow.id, re: header.id),
                StatusReply(workflow: workflow, eventsPort: eventsPort))
        case .list:
            reply(identity, Header(type: .listReply, re: header.id), ListReply(workflows: try journal.summaries()))
        case .agents:
            let infos = registry.all.map {
                AgentInfo(
                    id: $0.id, role: $0.hello.role, host: $0.hello.host, pid: $0.hello.pid,
                    inFlight: $0.inFlight.sorted { $0.description < $1.description }, lastHeartbeat: $0.lastSeen,
                    subscribed: registry.isReachable($0.id), rejected: $0.rejected)
            }
            reply(identity, Header(type: .agentsReply, re: header.id), AgentsReply(agents: infos))
        case .cancel:
            try cancel(workflow: header.workflow, identity: identity, header: header)
        case .resume:
            try resume(workflow: header.workflow, identity: identity, header: header)
        case .logs:
            try logs(envelope.decode(LogsRequest.self), identity: identity, header: header)
        case .artifacts:
            try artifacts(envelope.decode(ArtifactsRequest.self), identity: identity, header: header)
        case .stats:
            let stats = Stats(
                rejected: rejections.byName, workflows: journalWorkflows, running: workflows.count,
                agents: registry.count, residentBytes: residentMemoryBytes(), fetchedChunks: fetchedChunks)
            reply(identity, Header(type: .statsReply, re: header.id), stats)
        default:
            throw DecodeError(.unexpectedType, "'\(header.type.rawValue)' is not accepted on the control socket")
        }
    }

    /// A workflow as it is now: from memory while it runs, else from the journal.
    func snapshot(_ id: String?) throws -> WorkflowSnapshot {
        guard let id else { throw DecodeError(.unknownWorkflow, "no workflow ''") }
        if let live = workflows[id] { return live.snapshot }
        guard let stored = try journal.workflow(id) else { throw DecodeError(.unknownWorkflow, "no workflow '\(id)'") }
        return stored
    }

    private func reject(_ identity: [UInt8]?, _ error: DecodeError, re: String? = nil) {
        rejections.count(error, logger: logger)
        metrics?.rejected(error.reason)
        if let identity {
            reply(identity, Header(type: .error, re: re), ErrorReply(reason: error.reason.rawValue, message: error.detail))
        }
    }

    func reply<Body: Encodable>(_ identity: [UInt8], _ header: Header, _ body: Body) {
        outbox.append(.send(identity: identity, frames: [identity] + Codec.encode(header, body)))
    }

    private func sender(of header: Header) throws -> String {
        guard let sender = header.sender, Names.isAgentID(sender) else {
            throw DecodeError(.invalidField, "'\(header.type.rawValue)' needs a valid 'sender'")
        }
        return sender
    }

    // MARK: Agents

    private func hello(_ hello: Hello, identity: [UInt8], header: Header, key: String?) throws {
        guard Names.isAgentID(hello.agent), hello.agent == header.sender else {
            throw DecodeError(.invalidField, "hello: agent id must be valid and equal the header's sender")
        }
        guard (1...64).contains(hello.capacity), hello.host.utf8.count <= 255 else {
            throw DecodeError(.invalidField, "hello: capacity must be 1-64 and host at most 255 bytes")
        }
        if let idle = hello.idleHeartbeatIntervalMilliseconds, !(50...3_600_000).contains(idle) {
            throw DecodeError(.invalidField, "hello: idleHeartbeatIntervalMilliseconds must be 50-3600000")
        }
        let now = clock()
        if let previous = registry[hello.agent], previous.hello.pid != hello.pid || previous.hello.host != hello.host {
            agentRestarted(hello.agent)
        }
        try journal.recordAgent(hello, at: now)
        var entry = registry[hello.agent] ?? AgentEntry(hello: hello, identity: identity, lastSeen: now)
        entry.key = key
        entry.hello = hello
        entry.identity = identity
        entry.lastSeen = now
        // Judged on the short interval until a heartbeat says it holds no step.
        let idleInterval = grantedIdleInterval(hello.idleHeartbeatIntervalMilliseconds)
        entry.idleInterval = idleInterval ?? 0
        entry.idle = false
        registry[hello.agent] = entry
        logger.info(
            "agent joined",
            metadata: ["agent.id": "\(hello.agent)", "agent.role": "\(hello.role.rawValue)", "agent.host": "\(hello.host)"])
        let welcome = Welcome(
            heartbeatIntervalMilliseconds: Int(configuration.heartbeatInterval.milliseconds),
            liveness: configuration.liveness, eventsPort: eventsPort, eventsEndpoint: nil,
            idleHeartbeatIntervalMilliseconds: idleInterval.map(Int.init))
        reply(identity, Header(type: .welcome, re: header.id), welcome)
    }

    /// The idle interval an agent asked for, within `maxIdleHeartbeatInterval`; nil when it asked for none or
    /// it would not be longer than the heartbeat interval.
    private func grantedIdleInterval(_ asked: Int?) -> Int64? {
        let interval = configuration.heartbeatInterval.milliseconds
        guard let asked, Int64(asked) > interval, configuration.maxIdleHeartbeatInterval.milliseconds > interval
        else { return nil }
        return min(Int64(asked), configuration.maxIdleHeartbeatInterval.milliseconds)
    }

    /// Refreshes a known agent; unknown agents are asked to introduce themselves again.
    private func touch(_ agent: String, identity: [UInt8]) -> Bool {
        guard registry.touch(agent, identity: identity, now: clock()) else {
            reply(identity, Header(type: .rehello), Empty())
            return false
        }
        return true
    }

    private func heartbeat(_ heartbeat: Heartbeat, identity: [UInt8], header: Header) throws {
        let agent = try sender(of: header)
        guard touch(agent, identity: identity) else { return }
        // The coordinator's heartbeats are answers: an agent hears from it once per heartbeat it sends.
        answerHeartbeat(identity)
        registry.setIdle(agent, heartbeat.inFlight.isEmpty)
        registry.setRejected(agent, heartbeat.rejected)
        // After a restart the journal knows which steps were given out; an
        // agent that still runs one claims it here.
        for key in heartbeat.inFlight.prefix(64) {
            guard let live = workflows[key.workflow], let position = live.index[key.step] else { continue }
            let step = live.snapshot.steps[position]
            guard step.attempt == key.attempt, step.agent == agent, step.state == .assigned || step.state == .running
            else { continue }
            registry[agent]?.inFlight.insert(key)
            live.deliveries[position]?.orphanDeadline = nil
        }
        dropped(by: agent, listing: heartbeat.inFlight)
    }

    private func answerHeartbeat(_ identity: [UInt8]) {
        let now = clock()
        if heartbeatReply == nil || now - heartbeatReply!.encodedAt >= configuration.heartbeatInterval.milliseconds {
            heartbeatReply = (now, Codec.encode(Header(type: .heartbeat), Heartbeat()))
        }
        outbox.append(.send(identity: identity, frames: [identity] + heartbeatReply!.frames))
    }

    /// A step the agent acknowledged and no longer lists in its heartbeat, without a result, was dropped: the
    /// agent lost its lease (it heard nothing from this coordinator for its liveness while this coordinator
    /// still heard it) or stalled. The agent's DEALER keeps order: its ack came before this heartbeat, and a
    /// result would have come before it too. The step goes to another attempt, not charged.
    private func dropped(by agent: String, listing inFlight: [StepKey]) {
        // A heartbeat lists every step its agent runs only below the 64 that are looked at.
        guard inFlight.count < 64, let entry = registry[agent], !entry.inFlight.isEmpty else { return }
        let listed = Set(inFlight)
        for key in entry.inFlight.sorted(by: { $0.description < $1.description }) where !listed.contains(key) {
            guard let live = workflows[key.workflow], let position = live.index[key.step] else { continue }
            let step = live.snapshot.steps[position]
            guard step.attempt == key.attempt, step.agent == agent, step.state == .running else { continue }
            registry[agent]?.inFlight.remove(key)
            requeue(key, avoiding: agent, reason: "agent \(agent) no longer runs it", charged: false)
        }
    }

    private func bye(identity: [UInt8], header: Header) {
        guard let agent = header.sender, registry[agent] != nil else { return }
        agentGone(agent, reason: "left")
    }

    /// Cuts off the agents whose keys left the allow-list: they get no more
    /// steps, and what they were running goes to others. The service has
    /// just reset every connection, so no agent is reachable until its
    /// subscription arrives again: a step published now would be lost.
    func revoke(keys: Set<String>) {
        registry.connectionsReset()
        for agent in registry.all where agent.key.map(keys.contains) == true {
            agentGone(agent.id, reason: "key revoked")
        }
    }

    /// A new incarnation of an agent said hello: the old one is gone, but what it held may not be. With
    /// `--state-dir` the new one holds every result the old one recorded, also one that died before it left:
    /// given to another agent at once, that step would run twice. So its steps wait as they do after a
    /// coordinator restart (`.orphan`): the new incarnation claims those it holds in its first heartbeat and
    /// resends their results; at the deadline the others are published again to it, same attempt, or go to
    /// another agent when it is not back. Not charged either way.
    private func agentRestarted(_ agent: String) {
        guard let entry = registry.remove(agent) else { return }
        logger.warning("agent lost", metadata: ["agent.id": "\(agent)", "reason": "restarted"])
        let now = clock()
        let deadline = now + livenessMilliseconds
        for key in entry.inFlight.sorted(by: { $0.description < $1.description }) {
            guard let live = workflows[key.workflow], let position = live.index[key.step],
                live.snapshot.steps[position].attempt == key.attempt, !live.snapshot.steps[position].state.isFinished
            else { continue }
            // As after a coordinator restart: no ack is awaited from the old incarnation (a publication it missed
            // would count against the step); the run deadline stands, so a step never answered still times out.
            var delivery = live.deliveries[position] ?? Delivery()
            delivery.ackDeadline = nil
            delivery.publishes = 0
            delivery.orphanDeadline = deadline
            live.deliveries[position] = delivery
            deadlines.push(at: deadline, .orphan, workflow: key.workflow, step: position, attempt: key.attempt)
        }
    }

    /// Forgets an agent and hands its in-flight steps to others. They lost
    /// their attempt through no fault of their own: it is not charged.
    private func agentGone(_ agent: String, reason: String) {
        guard let entry = registry.remove(agent) else { return }
        logger.warning("agent lost", metadata: ["agent.id": "\(agent)", "reason": "\(reason)"])
        for key in entry.inFlight.sorted(by: { $0.description < $1.description }) {
            requeue(key, avoiding: agent, reason: "agent \(agent) \(reason)", charged: false)
        }
    }

    // MARK: Steps

    /// Marks a step as changed: journaled and published at the end of the turn.
    func changed(_ live: Live, _ position: Int) {
        live.changed.insert(position)
        live.snapshot.revision += 1
        dirty[live.id] = live
    }

    /// The workflow-level fields changed.
    func changed(_ live: Live) {
        live.snapshot.revision += 1
        dirty[live.id] = live
    }

    /// An ack or result for a workflow that is not in memory: finished (or
    /// unknown). Returns the stored step, or throws the reason to reject.
    private func storedStep(_ key: StepKey) throws -> StepSnapshot {
        let stored = try journal.step(workflow: key.workflow, name: key.step)
        guard stored.exists else { throw DecodeError(.unknownWorkflow, "no workflow for \(key)") }
        guard let step = stored.step else { throw DecodeError(.unknownStep, "no step for \(key)") }
        return step
    }

    /// An `ack` names its step in its header, or (v4) several in its body.
    private func ack(identity: [UInt8], header: Header, body: [UInt8]) throws {
        let agent = try sender(of: header)
        _ = touch(agent, identity: identity)
        if let key = header.stepKey {
            try ack(key, agent: agent)
            return
        }
        guard header.workflow == nil, header.step == nil, header.attempt == nil else {
            throw DecodeError(.invalidField, "ack needs workflow, step and attempt")
        }
        for key in try KeyList.decode(body).keys {
            do {
                try ack(key, agent: agent)
            } catch let error as DecodeError {
                // One stale key does not hide the others of the list.
                rejections.count(error, logger: logger)
            }
        }
    }

    private func ack(_ key: StepKey, agent: String) throws {
        guard let live = workflows[key.workflow] else {
            _ = try storedStep(key)  // a late ack of a finished workflow: nothing to do
            return
        }
        guard let position = live.index[key.step] else { throw DecodeError(.unknownStep, "ack for \(key)") }
        let step = live.snapshot.steps[position]
        guard step.attempt == key.attempt, step.agent == agent else { return }  // a late ack of an old attempt
        live.deliveries[position]?.ackDeadline = nil
        live.deliveries[position]?.orphanDeadline = nil
        // A late ack of a step that already returned its result (which implies the ack) changes nothing.
        guard !step.state.isFinished else { return }
        registry[agent]?.inFlight.insert(key)
        guard step.state == .assigned else { return }
        let now = clock()
        live.snapshot.steps[position].state = .running
        live.snapshot.steps[position].startedAt = now
        // Journaled in the step's row; the attempt's row gets the time when the attempt ends.
        changed(live, position)
        let deadline = now + configuration.stepTimeout.milliseconds
        live.deliveries[position, default: Delivery()].runDeadline = deadline
        deadlines.push(at: deadline, .run, workflow: key.workflow, step: position, attempt: key.attempt)
    }

    private func result(_ result: StepResult, identity: [UInt8], header: Header) throws {
        let agent = try sender(of: header)
        _ = touch(agent, identity: identity)
        guard let key = header.stepKey else { throw DecodeError(.invalidField, "result needs workflow, step and attempt") }
        guard let live = workflows[key.workflow] else {
            // A finished workflow: a resend whose confirm was lost, or a late attempt.
            let stored = try storedStep(key)
            guard key.attempt <= stored.attempt else {
                throw DecodeError(.notAssigned, "result for \(key), which was never assigned")
            }
            registry[agent]?.inFlight.remove(key)
            confirm(key, to: identity, re: header.id)
            return
        }
        guard let position = live.index[key.step] else { throw DecodeError(.unknownStep, "result for \(key)") }
        // Attempts are numbered in order and journaled before they are sent,
        // so every attempt up to the step's current one was assigned.
        guard key.attempt <= live.snapshot.steps[position].attempt else {
            throw DecodeError(.notAssigned, "result for \(key), which was never assigned")
        }
        registry[agent]?.inFlight.remove(key)
        // A step finishes once: a duplicate (a resend, or a late attempt)
        // is confirmed so its agent stops resending, and otherwise ignored.
        guard !live.snapshot.steps[position].state.isFinished else {
            confirm(key, to: identity, re: header.id)
            return
        }
        let now = clock()
        var step = live.snapshot.steps[position]
        let ackedAt = step.attempt == key.attempt && step.state == .running ? step.startedAt : nil
        if let previous = step.agent, previous != agent || step.attempt != key.attempt {
            registry[previous]?.inFlight.remove(StepKey(workflow: key.workflow, step: key.step, attempt: step.attempt))
        }
        let succeeded = result.outcome == .succeeded
        step.state = succeeded ? .succeeded : .failed
        step.attempt = key.attempt
        step.agent = result.agent
        step.host = result.host
        step.pid = result.pid
        // A result that stands for its ack: the step started as long before now as the agent ran it (a
        // duration on the agent's one clock, so no skew between hosts).
        step.startedAt = step.startedAt ?? Self.started(before: now, ran: result)
        step.finishedAt = now
        step.summary = result.output.summary
        step.error = result.error
        step.values = succeeded ? result.output.values : [:]
        if !succeeded { step.failures = (step.failures ?? 0) + 1 }
        // The plan is kept as the workflow's steps (and in the result row),
        // not again in the plan step's values that later steps receive.
        if succeeded && position == 0 && key.kind == .plan {
            // Before the plan step counts as succeeded, so its new dependents count it as a need.
            do {
                let (plan, kept) = try result.output.splitPlan()
                step.values = kept
                expand(live, with: plan, now: now)
            } catch {
                step.values = [:]
                fail(live, planError: error, now: now)
            }
        }
        live.snapshot.steps[position] = step
        live.deliveries[position] = nil
        if succeeded && !result.output.artifacts.isEmpty {
            live.withArtifacts.insert(position)
            live.artifacts[position] = result.output.artifacts.map(Journal.reference)
        }
        batch.result(key, result, at: now, ackedAt: ackedAt)
        metrics?.stepFinished(step)
        changed(live, position)
        finished(live, position, now: now)
        confirm(key, to: identity, re: header.id)
        logger.info(
            "step finished",
            metadata: [
                "workflow.id": "\(key.workflow)", "step": "\(key.step)", "agent.id": "\(agent)",
                "outcome": "\(result.outcome.rawValue)",
            ])
        if !result.output.artifacts.isEmpty {
            pendingOutputs.append((key.workflow, result.output.artifacts))
        }
    }

    /// Confirms a result once the turn is journaled: with the others of this turn to the same connection.
    private func confirm(_ key: StepKey, to identity: [UInt8], re: String) {
        if confirmsPendingSince == nil { confirmsPendingSince = clock() }
        confirms[identity, default: (re, [])].keys.append(key)
        confirmKeys += 1
    }

    /// A step reached a final state: its dependents move on (or are skipped),
    /// and the workflow finishes when nothing is left.
    func finished(_ live: Live, _ position: Int, now: Int64) {
        live.unfinished -= 1
        let step = live.snapshot.steps[position]
        if step.state == .succeeded {
            for dependent in live.dependents[position] {
                live.waiting[dependent] -= 1
                if live.waiting[dependent] == 0 && live.snapshot.steps[dependent].state == .pending {
                    enqueue(live, dependent)
                }
            }
        } else {
            if step.critical && step.state == .failed && live.snapshot.state == .running {
                live.snapshot.state = .failed
                live.snapshot.error = "critical step '\(step.name)' failed: \(step.error ?? "no reason given")"
                live.snapshot.finishedAt = now
                changed(live)
                stopPending(live, as: .cancelled, now: now)
            }
            // Steps after one that did not succeed cannot run: skip them, transitively.
            var frontier = [position]
            while let next = frontier.popLast() {
                for dependent in live.dependents[next] where live.snapshot.steps[dependent].state == .pending {
                    live.snapshot.steps[dependent].state = .skipped
                    live.snapshot.steps[dependent].error = "skipped: '\(live.snapshot.steps[next].name)' did not succeed"
                    live.unfinished -= 1
                    changed(live, dependent)
                    frontier.append(dependent)
                }
            }
        }
        settle(live, now: now)
    }

    /// Cancels (or skips) every pending step of a workflow that stopped.
    /// `now` less the agent's reported run time, which is clamped to zero and to `now` (untrusted numbers).
    static func started(before now: Int64, ran result: StepResult) -> Int64 {
        let (ran, overflow) = result.finishedAt.subtractingReportingOverflow(result.startedAt)
        guard !overflow, ran > 0 else { return now }
        return now - min(ran, max(now, 0))
    }

    private func stopPending(_ live: Live, as state: StepSnapshot.State, now: Int64) {
        for position in live.snapshot.steps.indices where live.snapshot.steps[position].state == .pending {
            live.snapshot.steps[position].state = state
            live.unfinished -= 1
            changed(live, position)
        }
    }

    /// Finishes the workflow once every step is final.
    private func settle(_ live: Live, now: Int64) {
        guard live.unfinished == 0, live.snapshot.state == .running else { return }
        let failed = live.snapshot.steps.filter { $0.state == .failed }
        let notRun = live.snapshot.steps.filter { $0.state == .skipped || $0.state == .cancelled }.count
        if failed.isEmpty && notRun == 0 {
            live.snapshot.state = .succeeded
        } else {
            live.snapshot.state = .failed
            var reasons = failed.map { "\($0.name): \($0.error ?? "failed")" }
            if notRun > 0 { reasons.append("\(notRun) step(s) after it did not run") }
            live.snapshot.error = reasons.joined(separator: "; ")
        }
        live.snapshot.finishedAt = now
        changed(live)
        operationFinished(live)
    }

    /// Adds the planner's steps to the workflow, or fails it on a bad plan.
    private func expand(_ live: Live, with plan: Plan, now: Int64) {
        do {
            let problems = CoordinatorCore.problems(of: plan, existing: Set(live.index.keys))
            guard problems.isEmpty else {
                throw ShoalError(.protocolViolation, "invalid plan: \(problems.prefix(10).joined(separator: "; "))")
            }
            // In an order where every step comes after its needs.
            for planned in CoordinatorCore.ordered(plan) {
                let step = StepSnapshot(
                    name: planned.name, role: planned.role, needs: planned.needs, critical: planned.critical,
                    params: planned.params.isEmpty ? nil : planned.params)
                live.add(step)
                let position = live.snapshot.steps.count - 1
                changed(live, position)
                if live.waiting[position] == 0 { enqueue(live, position) }
            }
        } catch {
            fail(live, planError: error, now: now)
        }
    }

    /// Fails a workflow whose plan step returned no valid plan.
    private func fail(_ live: Live, planError error: any Error, now: Int64) {
        live.snapshot.state = .failed
        live.snapshot.error = "\(error)"
        live.snapshot.finishedAt = now
        changed(live)
    }

    /// A plan's problems, found in time linear in its size: names unique and
    /// at most 100 bytes, needs known, no cycle.
    static func problems(of plan: Plan, existing: Set<String>) -> [String] {
        var problems: [String] = []
        var names = existing
        for step in plan.steps {
            if step.name.isEmpty || step.name.utf8.count > 100 { problems.append("bad step name '\(step.name.prefix(100))'") }
            if !names.insert(step.name).inserted { problems.append("duplicate step '\(step.name.prefix(100))'") }
        }
        for step in plan.steps {
            for need in step.needs where !names.contains(need) {
                problems.append("step '\(step.name.prefix(100))' needs unknown step '\(need.prefix(100))'")
            }
        }
        guard problems.isEmpty else { return problems }
        let sorted = ordered(plan)
        if sorted.count < plan.steps.count {
            let placed = Set(sorted.map(\.name))
            let cycle = plan.steps.map(\.name).filter { !placed.contains($0) }
            problems.append("dependency cycle among \(cycle.prefix(20).joined(separator: ", "))")
        }
        return problems
    }

    /// The plan's steps in dependency order (Kahn); steps on a cycle are left out.
    static func ordered(_ plan: Plan) -> [PlannedStep] {
        var position: [String: Int] = [:]
        for (index, step) in plan.steps.enumerated() { position[step.name] = index }
        var waiting = [Int](repeating: 0, count: plan.steps.count)
        var dependents = [[Int]](repeating: [], count: plan.steps.count)
        for (index, step) in plan.steps.enumerated() {
            for need in Set(step.needs) {
                guard let needed = position[need] else { continue }
                waiting[index] += 1
                dependents[needed].append(index)
            }
        }
        var queue = RingQueue<Int>()
        for index in plan.steps.indices where waiting[index] == 0 { queue.append(index) }
        var result: [PlannedStep] = []
        result.reserveCapacity(plan.steps.count)
        while let next = queue.popFirst() {
            result.append(plan.steps[next])
            for dependent in dependents[next] {
                waiting[dependent] -= 1
                if waiting[dependent] == 0 { queue.append(dependent) }
            }
        }
        return result
    }

    /// Puts a step back to pending for another attempt, or fails it when its
    /// attempts are used up. Only a `charged` requeue (the step's own
    /// timeout) counts against `--max-attempts`.
    private func requeue(_ key: StepKey, avoiding agent: String?, reason: String, charged: Bool) {
        guard let live = workflows[key.workflow], let position = live.index[key.step],
            live.snapshot.steps[position].attempt == key.attempt, !live.snapshot.steps[position].state.isFinished
        else { return }
        let now = clock()
        var delivery = live.deliveries[position] ?? Delivery()
        if let agent { delivery.avoid.insert(agent) }
        delivery.ackDeadline = nil
        delivery.runDeadline = nil
        delivery.orphanDeadline = nil
        delivery.publishes = 0
        var step = live.snapshot.steps[position]
        if charged { step.failures = (step.failures ?? 0) + 1 }
        let failures = step.failures ?? 0
        batch.attemptEnded(
            key, outcome: charged ? "timed-out" : "requeued", at: now,
            ackedAt: step.state == .running ? step.startedAt : nil)
        if failures >= configuration.maxAttempts || key.attempt >= attemptLimit {
            step.state = .failed
            step.finishedAt = now
            step.error = "gave up after \(key.attempt) attempts; last: \(reason)"
        } else if live.snapshot.state != .running {
            step.state = .cancelled
            step.finishedAt = now
        } else {
            step.state = .pending
            step.agent = nil
            delivery.notBefore = charged ? now + backoffMilliseconds(afterAttempt: failures) : now
        }
        live.snapshot.steps[position] = step
        live.deliveries[position] = delivery
        logger.warning(
            "step requeued",
            metadata: [
                "workflow.id": "\(key.workflow)", "step": "\(key.step)", "reason": "\(reason)",
                "charged": "\(charged)",
            ])
        changed(live, position)
        if step.state == .pending {
            if delivery.notBefore > now {
                deadlines.push(at: delivery.notBefore, .backoff, workflow: key.workflow, step: position, attempt: key.attempt)
            } else {
                enqueue(live, position)
            }
        } else {
            finished(live, position, now: now)
        }
    }

    /// Exponential backoff between attempts: 250 ms, 500 ms, 1 s, ... capped at 10 s.
    func backoffMilliseconds(afterAttempt attempt: Int) -> Int64 {
        min(10_000, 250 << Int64(min(max(attempt - 1, 0), 10)))
    }

    // MARK: Clients

    private func cancel(workflow id: String?, identity: [UInt8], header: Header) throws {
        guard let id, let live = workflows[id], live.snapshot.state == .running else {
            let workflow = try snapshot(header.workflow)
            reply(identity, Header(type: .statusReply, workflow: workflow.id, re: header.id), StatusReply(workflow: workflow))
            return
        }
        let now = clock()
        live.snapshot.state = .cancelled
        live.snapshot.error = "cancelled by a client"
        for position in live.snapshot.steps.indices where !live.snapshot.steps[position].state.isFinished {
            let step = live.snapshot.steps[position]
            if let agent = step.agent {
                registry[agent]?.inFlight.remove(StepKey(workflow: id, step: step.name, attempt: step.attempt))
            }
            live.snapshot.steps[position].state = .cancelled
            live.snapshot.steps[position].finishedAt = now
            changed(live, position)
        }
        live.unfinished = 0
        live.snapshot.finishedAt = now
        live.deliveries = [:]
        changed(live)
        logger.info("workflow cancelled", metadata: ["workflow.id": "\(id)"])
        reply(identity, Header(type: .statusReply, workflow: id, re: header.id), StatusReply(workflow: live.snapshot))
    }

    /// Runs a failed, cancelled or interrupted workflow again from where it stopped:
    /// steps that succeeded keep their results and never run again; the
    /// others run with their planned params and a fresh attempt budget.
    private func resume(workflow id: String?, identity: [UInt8], header: Header) throws {
        let current = try snapshot(id)
        guard current.state == .failed || current.state == .cancelled || current.state == .interrupted else {
            reply(identity, Header(type: .statusReply, workflow: current.id, re: header.id), StatusReply(workflow: current))
            return
        }
        var workflow = current
        for index in workflow.steps.indices where workflow.steps[index].state != .succeeded {
            workflow.steps[index].state = .pending
            workflow.steps[index].error = nil
            workflow.steps[index].summary = nil
            workflow.steps[index].agent = nil
            workflow.steps[index].finishedAt = nil
            workflow.steps[index].values = [:]
            workflow.steps[index].failures = nil
        }
        workflow.state = .running
        workflow.error = nil
        workflow.finishedAt = nil
        let resumed = Live(workflow, publishedRevision: workflows[workflow.id]?.publishedRevision ?? current.revision)
        if let old = workflows[workflow.id] {
            resumed.withArtifacts = old.withArtifacts
            resumed.artifacts = old.artifacts
            resumed.submitID = old.submitID
        } else {
            resumed.withArtifacts = Set(
                try journal.stepsWithArtifacts(workflow: workflow.id).compactMap { resumed.index[$0] })
        }
        metrics?.resuming(workflow.id, from: current.state)
        workflows[workflow.id] = resumed
        for position in resumed.snapshot.steps.indices where current.steps[position].state != .succeeded {
            changed(resumed, position)
            if resumed.waiting[position] == 0 { enqueue(resumed, position) }
        }
        changed(resumed)
        logger.info("workflow resumed", metadata: ["workflow.id": "\(resumed.id)"])
        reply(
            identity, Header(type: .statusReply, workflow: resumed.id, re: header.id),
            StatusReply(workflow: resumed.snapshot))
    }

    private func submit(_ submit: Submit, identity: [UInt8], header: Header) throws {
        if let existing = try submits[header.id] ?? journal.workflowID(forSubmit: header.id) {
            reply(
                identity, Header(type: .accepted, workflow: existing, re: header.id),
                Accepted(workflow: existing, eventsPort: eventsPort))
            return
        }
        if let operation = submit.operation {
            try submitOperation(operation, identity: identity, header: header)
            return
        }
        var problems = submit.request.problems()
        let planner = submit.planner ?? .planner
        if planner != .planner && planner != .bench { problems.append("planner must be 'planner' or 'bench'") }
        guard problems.isEmpty else { throw DecodeError(.invalidRequest, problems.joined(separator: "; ")) }
        let id = try startWorkflow(
            submit.request, planner: planner, params: (submit.params?.isEmpty ?? true) ? nil : submit.params,
            operation: nil, header: header, identity: identity)
        logger.info("workflow submitted", metadata: ["workflow.id": "\(id)"])
    }

    /// Creates a workflow whose one step is `plan`, journals it in this turn's batch, queues the plan step, and
    /// answers the submit with `accepted`.
    /// - Returns: the new workflow's id.
    func startWorkflow(
        _ request: WorkflowRequest, planner: Role, params: [String: JSONValue]?, operation: WorkflowOperation?,
        header: Header, identity: [UInt8]
    ) throws -> String {
        let id = try newWorkflowID(request)
        var plan = StepSnapshot(name: StepName.plan.wireName, role: planner, needs: [], critical: true, params: params)
        plan.state = .pending
        let workflow = WorkflowSnapshot(
            id: id, state: .running, request: request, createdAt: clock(), finishedAt: nil, steps: [plan],
            error: nil, revision: 0, operation: operation)
        let live = Live(workflow, publishedRevision: 0)
        live.submitID = header.id
        batch.insert(workflow, submitID: header.id, request: live.requestJSON)
        workflows[id] = live
        submits[header.id] = id
        journalWorkflows += 1
        changed(live, 0)
        enqueue(live, 0)
        reply(identity, Header(type: .accepted, workflow: id, re: header.id), Accepted(workflow: id, eventsPort: eventsPort))
        return id
    }

    func newWorkflowID(_ request: WorkflowRequest) throws -> String {
        let environment =
            ["development": "dev", "staging": "stg", "production": "prod"][request.environment.rawValue] ?? "wf"
        while true {
            let suffix = String(UInt32.random(in: 0...0xFF_FFFF), radix: 16)
            let id = "\(request.platform)-\(environment)-" + String(repeating: "0", count: 6 - suffix.count) + suffix
            if workflows[id] == nil, try !journal.step(workflow: id, name: StepName.plan.wireName).exists { return id }
        }
    }

    // MARK: Scheduling

    func enqueue(_ live: Live, _ position: Int) {
        ready[live.snapshot.steps[position].role, default: RingQueue()].append(
            ReadyStep(workflow: live.id, step: position))
    }

    /// Gives ready steps to agents, least loaded first, at most
    /// `assignmentsPerTurn` per turn.
    func schedule() {
        hasMoreWork = false
        var budget = CoordinatorCore.assignmentsPerTurn
        let now = clock()
        schedulePinned(now: now)
        for role in Array(ready.keys) {
            while let next = ready[role]?.first {
                guard let live = workflows[next.workflow], live.snapshot.state == .running,
                    live.snapshot.steps[next.step].state == .pending, live.waiting[next.step] == 0,
                    (live.deliveries[next.step]?.notBefore ?? 0) <= now
                else {
                    ready[role]?.popFirst()  // stale: the step moved on, or its backoff re-queues it
                    continue
                }
                guard budget > 0 else {
                    hasMoreWork = true
                    break
                }
                if let pinned = pinnedAgent(live, next.step) {
                    ready[role]?.popFirst()
                    park(live, next.step, agent: pinned, now: now)
                    continue
                }
                let avoid = live.deliveries[next.step]?.avoid ?? []
                guard let agent = registry.pick(role: role, avoiding: avoid) else { break }
                ready[role]?.popFirst()
                assign(live, next.step, to: agent, now: now)
                budget -= 1
            }
            if ready[role]?.isEmpty == true { ready[role] = nil }
        }
    }

    func assign(_ live: Live, _ position: Int, to agent: String, now: Int64) {
        let name = live.snapshot.steps[position].name
        let key = StepKey(workflow: live.id, step: name, attempt: live.snapshot.steps[position].attempt + 1)
        live.snapshot.steps[position].state = .assigned
        live.snapshot.steps[position].attempt = key.attempt
        live.snapshot.steps[position].agent = agent
        live.snapshot.steps[position].host = registry[agent]?.hello.host
        live.snapshot.steps[position].pid = registry[agent]?.hello.pid
        live.snapshot.steps[position].startedAt = nil
        batch.assigned(key, agent: agent, at: now)
        changed(live, position)
        registry[agent]?.inFlight.insert(key)
        registry[agent]?.lastAssigned = now
        live.deliveries[position, default: Delivery()].publishes = 0
        publishStep(live, position)
    }

    /// Publishes (or publishes again) the current attempt of a step to its
    /// agent; its ack deadline starts when the turn's messages are sent.
    private func publishStep(_ live: Live, _ position: Int) {
        let step = live.snapshot.steps[position]
        guard let agent = step.agent else { return }
        let assignment: AssignmentWithoutRequest
        do {
            assignment = try makeAssignment(live, position)
        } catch {
            logger.error("journal read failed", metadata: ["error": "\(error)"])
            return
        }
        outgoingSteps[OutgoingStepsKey(agent: agent, workflow: live.id), default: (live.requestJSON, [])].steps.append(
            (step.name, step.attempt, assignment))
        live.deliveries[position, default: Delivery()].publishes += 1
        published.append((live.id, position, step.attempt))
        logger.debug(
            "step published", metadata: ["workflow.id": "\(live.id)", "step": "\(step.name)", "agent.id": "\(agent)"])
    }

    /// The steps published this turn: one to an agent alone as `step` naming it in its header, several of one
    /// workflow as one `step` listing them (the workflow's request once).
    private func flushSteps() {
        for (key, outgoing) in outgoingSteps {
            let topic = WireFormat.agentTopic(key.agent)
            if outgoing.steps.count == 1, let step = outgoing.steps.first {
                let header = Header(type: .step, workflow: key.workflow, step: step.name, attempt: step.attempt)
                outbox.append(
                    .publish(
                        Codec.frames(header, body: step.assignment.compactJSON(request: outgoing.request), topic: topic)))
                continue
            }
            for start in stride(from: 0, to: outgoing.steps.count, by: StepBatch.maxSteps) {
                var json = CompactJSON(capacity: 256 + outgoing.request.count)
                json.beginObject()
                json.key("request")
                json.raw(outgoing.request)
                json.key("steps")
                json.beginArray()
                for step in outgoing.steps[start..<min(start + StepBatch.maxSteps, outgoing.steps.count)] {
                    step.assignment.write(to: &json, request: nil, step: (step.name, step.attempt))
                }
                json.endArray()
                json.endObject()
                outbox.append(.publish(Codec.frames(Header(type: .step, workflow: key.workflow), body: json.bytes, topic: topic)))
            }
        }
        outgoingSteps = [:]
    }

    /// The ancestors of a step that produced values or artifacts, computed
    /// once per step from those of its needs (iteratively: a chain may be
    /// long).
    private func producers(_ live: Live, _ position: Int) -> [Int] {
        if let known = live.producers[position] { return known }
        var stack: [(Int, Bool)] = [(position, false)]
        while let (node, expanded) = stack.popLast() {
            if live.producers[node] != nil { continue }
            if expanded {
                var found = Set<Int>()
                for need in live.needs[node] {
                    found.formUnion(live.producers[need] ?? [])
                    if live.produces(need) { found.insert(need) }
                }
                live.producers[node] = found.sorted()
            } else {
                stack.append((node, true))
                for need in live.needs[node] where live.producers[need] == nil { stack.append((need, false)) }
            }
        }
        return live.producers[position] ?? []
    }

    /// The request, parameters, and the values and artifacts of the steps
    /// the step depends on, directly or not, that produced any; the latest
    /// artifact of a name wins.
    private func makeAssignment(_ live: Live, _ position: Int) throws -> AssignmentWithoutRequest {
        let step = live.snapshot.steps[position]
        let ordered = producers(live, position).sorted {
            let a = live.snapshot.steps[$0]
            let b = live.snapshot.steps[$1]
            return (a.finishedAt ?? 0, a.name) < (b.finishedAt ?? 0, b.name)
        }
        var inputs: [String: [String: JSONValue]] = [:]
        var artifacts: [String: ArtifactRef] = [:]
        for producer in ordered {
            let dependency = live.snapshot.steps[producer]
            if !dependency.values.isEmpty { inputs[dependency.name] = dependency.values }
            guard live.withArtifacts.contains(producer) else { continue }
            if live.artifacts[producer] == nil {
                live.artifacts[producer] = try journal.artifactRefs(workflow: live.id, steps: [dependency.name])
                    .map(\.ref)
            }
            for artifact in live.artifacts[producer] ?? [] { artifacts[artifact.name] = artifact }
        }
        try inherit(live, inputs: &inputs, artifacts: &artifacts)
        return AssignmentWithoutRequest(
            role: step.role, params: step.params ?? [:], inputs: inputs,
            artifacts: artifacts.values.sorted { $0.name < $1.name })
    }

    // MARK: Timers

    /// Dead agents, ack timeouts, step timeouts, `--retain`. The coordinator sends no heartbeats of its own:
    /// it answers each agent's.
    func tick() {
        let now = clock()
        if now - lastLivenessCheck >= configuration.heartbeatInterval.milliseconds {
            lastLivenessCheck = now
            let interval = configuration.heartbeatInterval.milliseconds
            for agent in registry.expired(now: now, interval: interval, liveness: configuration.liveness) {
                agentGone(agent, reason: "missed \(configuration.liveness) heartbeats")
            }
            metrics?.agents(registry)
        }
        var handled = 0
        while handled < CoordinatorCore.deadlinesPerTurn, let due = deadlines.popDue(now: now) {
            handled += 1
            expire(due, now: now)
        }
        if handled == CoordinatorCore.deadlinesPerTurn { hasMoreWork = true }
        prune(now: now)
    }

    private func expire(_ due: DeadlineHeap.Entry, now: Int64) {
        guard let live = workflows[due.workflow], due.step < live.snapshot.steps.count else { return }
        let step = live.snapshot.steps[due.step]
        guard step.attempt == due.attempt, let delivery = live.deliveries[due.step] else { return }
        let key = StepKey(workflow: due.workflow, step: step.name, attempt: step.attempt)
        switch due.kind {
        case .ack:
            guard delivery.ackDeadline == due.at, step.state == .assigned else { return }
            if delivery.publishes < 2 {
                publishStep(live, due.step)
            } else {
                if let agent = step.agent { registry[agent]?.inFlight.remove(key) }
                requeue(key, avoiding: step.agent, reason: "no ack from \(step.agent ?? "?")", charged: true)
            }
        case .run:
            guard delivery.runDeadline == due.at, step.state == .running else { return }
            if let agent = step.agent { registry[agent]?.inFlight.remove(key) }
            requeue(
                key, avoiding: step.agent, reason: "step timed out after \(configuration.stepTimeout)", charged: true)
        case .orphan:
            guard delivery.orphanDeadline == due.at, step.state == .assigned || step.state == .running else { return }
            // After a restart nobody claimed this step: if its agent is
            // back, publish the same attempt again (the agent runs it at
            // most once); otherwise it goes to another agent.
            live.deliveries[due.step]?.orphanDeadline = nil
            if let agent = step.agent, registry[agent] != nil, registry.isReachable(agent) {
                registry[agent]?.inFlight.insert(key)
                if step.state == .running {
                    live.snapshot.steps[due.step].state = .assigned
                    changed(live, due.step)
                }
                publishStep(live, due.step)
            } else {
                requeue(key, avoiding: step.agent, reason: "agent \(step.agent ?? "?") did not come back", charged: false)
            }
        case .backoff:
            guard delivery.notBefore == due.at, step.state == .pending else { return }
            enqueue(live, due.step)
        }
    }

    /// Deletes finished workflows older than `--retain` from the journal,
    /// a bounded number per minute (or per `--retain`, when shorter).
    private func prune(now: Int64) {
        guard let retain = configuration.retain, now - lastPrune >= min(60_000, retain.milliseconds) else { return }
        lastPrune = now
        do {
            for id in try journal.finished(before: now - retain.milliseconds, limit: 1000) where workflows[id] == nil {
                batch.delete(workflow: id)
                journalWorkflows -= 1
                metrics?.pruned()
            }
        } catch {
            logger.error("journal read failed", metadata: ["error": "\(error)"])
        }
    }

    /// Journal rows and events for what changed this turn; finished
    /// workflows with nothing left on agents leave memory.
    private func publishChanges() {
        for (id, live) in dirty {
            let changed = live.changed.sorted()
            live.changed = []
            // Each changed step is encoded once, for its journal row and the event.
            var encodedSteps: [[UInt8]] = []
            encodedSteps.reserveCapacity(changed.count)
            for position in changed {
                let step = live.snapshot.steps[position]
                let encoded = step.compactJSON
                encodedSteps.append(encoded)
                batch.save(encoded: Data(encoded), state: step.state, name: step.name, workflow: id, position: position)
            }
            batch.saveHeader(
                id: id, state: live.snapshot.state, finishedAt: live.snapshot.finishedAt,
                snapshot: Data(live.snapshot.headerCompactJSON(request: live.requestJSON)))
            let event = WorkflowEvent(
                workflow: id, previousRevision: live.publishedRevision, revision: live.snapshot.revision,
                state: live.snapshot.state, error: live.snapshot.error, finishedAt: live.snapshot.finishedAt,
                steps: [])
            live.publishedRevision = live.snapshot.revision
            outbox.append(
                .publish(
                    Codec.frames(
                        Header(type: .event, workflow: id), body: event.compactJSON(encodedSteps: encodedSteps),
                        topic: WireFormat.workflowTopic(id))))
            if live.snapshot.state.isFinished && !live.hasActiveSteps {
                workflows[id] = nil
                if let submitID = live.submitID { submits[submitID] = nil }
            }
            metrics?.workflow(id, state: live.snapshot.state, inMemory: workflows[id] != nil)
        }
        dirty = [:]
    }

    // MARK: Output tree

    /// Writes a result's artifacts into the output tree; paths are checked
    /// (they come from the network): `<root>/<workflow>/...`, no `..`.
    private func writeOutputs(_ artifacts: [Artifact], workflow: String) {
        for artifact in artifacts {
            guard let path = artifact.path else { continue }
            guard Artifact.isOutputPath(path, workflow: workflow) else {
                logger.warning("artifact path refused", metadata: ["workflow.id": "\(workflow)", "path": "\(path.prefix(200))"])
                continue
            }
            let mode = artifact.sensitive ? 0o600 : mode_t(artifact.mode & 0o755)
            do {
                try SecureFile.write(artifact.data, to: "\(configuration.outputDirectory)/\(path)", mode: mode_t(mode))
            } catch {
                logger.error("cannot write output", metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
    }
}

/// This process's resident memory (Linux), for the stats reply.
func residentMemoryBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
        let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
    else { return 0 }
    return kilobytes * 1024
}

/// The workflow's request, encoded once per workflow: its header row and every step assignment carry it.
enum WireJSON {
    private static let encoder = JSONEncoder()

    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        do {
            return Array(try encoder.encode(value))
        } catch {
            preconditionFailure("wire types always encode: \(error)")
        }
    }
}

/// A step assignment as encoded before the workflow's request is spliced in
/// (the keys of `StepAssignment` but `request`).
struct AssignmentWithoutRequest: Encodable {
    var role: Role
    var params: [String: JSONValue]
    var inputs: [String: [String: JSONValue]]
    var artifacts: [ArtifactRef]

    /// The `StepAssignment` with `request` (encoded once per workflow) added, written directly.
    func compactJSON(request: [UInt8]) -> [UInt8] {
        var json = CompactJSON(capacity: 128 + request.count)
        write(to: &json, request: request, step: nil)
        return json.bytes
    }

    /// The object, with the request (a `StepAssignment`) or with the step's name and attempt (a
    /// `StepBatch.Entry`).
    func write(to json: inout CompactJSON, request: [UInt8]?, step: (name: String, attempt: Int)?) {
        json.beginObject()
        json.key("artifacts")
        json.beginArray()
        for artifact in artifacts {
            json.beginObject()
            json.key("digest")
            json.string(artifact.digest)
            json.key("mode")
            json.integer(artifact.mode)
            json.key("name")
            json.string(artifact.name)
            json.member("path", ifPresent: artifact.path)
            json.key("sensitive")
            json.bool(artifact.sensitive)
            json.key("size")
            json.integer(artifact.size)
            json.endObject()
        }
        json.endArray()
        json.member("attempt", ifPresent: step?.attempt)
        json.key("inputs")
        json.beginObject()
        for name in inputs.keys.sorted() {
            json.key(name)
            json.object(inputs[name]!)
        }
        json.endObject()
        json.key("params")
        json.object(params)
        json.member("request", ifPresent: request) { json, request in json.raw(request) }
        json.key("role")
        json.string(role.rawValue)
        json.member("step", ifPresent: step?.name)
        json.endObject()
    }
}
