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
final class CoordinatorCore {
    /// Per-step delivery state that is not worth journaling: it is rebuilt
    /// (conservatively) after a restart.
    private struct Delivery {
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

    let configuration: CoordinatorConfiguration
    let journal: Journal
    let logger: Logger
    private let clock: @Sendable () -> Int64
    private let eventsPort: Int?
    /// With CURVE on, the keys allowed now; every message's ZAP user id (the
    /// sender's public key) is checked against it. nil on a plain-TCP bus.
    private let allowList: CurveAllowList?

    private var workflows: [String: WorkflowSnapshot] = [:]
    private var deliveries: [String: [String: Delivery]] = [:]
    private var registry = AgentRegistry()
    private var dirty: Set<String> = []
    private var outbox: [Outgoing] = []
    private var lastHeartbeatSent: Int64 = 0
    /// Rejected frames by reason.
    private(set) var rejections = RejectionCounter()

    init(
        configuration: CoordinatorConfiguration, journal: Journal, logger: Logger, eventsPort: Int?,
        allowList: CurveAllowList? = nil,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) throws {
        self.configuration = configuration
        self.allowList = allowList
        self.journal = journal
        self.logger = logger
        self.clock = clock
        self.eventsPort = eventsPort
        let now = clock()
        let grace = 2 * livenessMilliseconds
        for workflow in try journal.workflows() {
            workflows[workflow.id] = workflow
            guard workflow.state == .running else { continue }
            logger.info("resuming workflow", metadata: ["workflow.id": "\(workflow.id)"])
            for step in workflow.steps where step.state == .assigned || step.state == .running {
                deliveries[workflow.id, default: [:]][step.name] = Delivery(orphanDeadline: now + grace)
            }
        }
    }

    private var livenessMilliseconds: Int64 {
        configuration.heartbeatInterval.milliseconds * Int64(configuration.liveness)
    }

    /// Takes what is to be sent since the last call.
    func drainOutbox() -> [Outgoing] {
        publishDirtyWorkflows()
        defer { outbox = [] }
        return outbox
    }

    // MARK: Input

    /// A subscription or unsubscription seen by the XPUB socket.
    func subscriptionChanged(_ topic: String, subscribed: Bool) {
        registry.subscriptionChanged(topic, subscribed: subscribed)
        if subscribed { schedule() }
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
            logger.error("journal failure", metadata: ["error": "\(error)"])
            reply(identity, Header(type: .error, re: envelope.header.id), ErrorReply(reason: "internal", message: "\(error)"))
        }
    }

    private func dispatch(_ envelope: Envelope, from identity: [UInt8], key: String?) throws {
        let header = envelope.header
        // An agent id belongs to the key it registered with: another allowed
        // peer may not speak for it (nor take its steps).
        if [.hello, .heartbeat, .ack, .result, .bye].contains(header.type), let sender = header.sender,
            let owner = registry[sender]?.key, owner != key
        {
            throw DecodeError(.keyMismatch, "agent '\(sender.prefix(64))' is registered with another key")
        }
        switch header.type {
        case .hello:
            try hello(envelope.decode(Hello.self), identity: identity, header: header, key: key)
        case .heartbeat:
            try heartbeat(envelope.decode(Heartbeat.self), identity: identity, header: header)
        case .ack:
            try ack(identity: identity, header: header)
        case .result:
            let (cleaned, redacted) = Redaction.redact(try envelope.decode(StepResult.self))
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
        case .submit:
            try submit(envelope.decode(Submit.self), identity: identity, header: header)
        case .status:
            guard let id = header.workflow, let workflow = workflows[id] else {
                throw DecodeError(.unknownWorkflow, "no workflow '\(header.workflow ?? "")'")
            }
            reply(identity, Header(type: .statusReply, workflow: id, re: header.id), StatusReply(workflow: workflow))
        case .list:
            let all = workflows.values.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
            reply(identity, Header(type: .listReply, re: header.id), ListReply(workflows: all))
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
        case .stats:
            let stats = Stats(
                rejected: rejections.byName,
                workflows: workflows.count, agents: registry.all.count, residentBytes: residentMemoryBytes())
            reply(identity, Header(type: .statsReply, re: header.id), stats)
        default:
            throw DecodeError(.unexpectedType, "'\(header.type.rawValue)' is not accepted on the control socket")
        }
    }

    private func reject(_ identity: [UInt8]?, _ error: DecodeError, re: String? = nil) {
        rejections.count(error, logger: logger)
        if let identity {
            reply(identity, Header(type: .error, re: re), ErrorReply(reason: error.reason.rawValue, message: error.detail))
        }
    }

    private func reply<Body: Encodable>(_ identity: [UInt8], _ header: Header, _ body: Body) {
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
        let now = clock()
        if let previous = registry[hello.agent], previous.hello.pid != hello.pid || previous.hello.host != hello.host {
            // A new incarnation: whatever the old one held is lost with it.
            agentGone(hello.agent, reason: "restarted")
        }
        try journal.recordAgent(hello, at: now)
        var entry = registry[hello.agent] ?? AgentEntry(hello: hello, identity: identity, lastSeen: now)
        entry.key = key
        entry.hello = hello
        entry.identity = identity
        entry.lastSeen = now
        registry[hello.agent] = entry
        logger.info(
            "agent joined",
            metadata: ["agent.id": "\(hello.agent)", "agent.role": "\(hello.role.rawValue)", "agent.host": "\(hello.host)"])
        let welcome = Welcome(
            heartbeatIntervalMilliseconds: Int(configuration.heartbeatInterval.milliseconds),
            liveness: configuration.liveness, eventsPort: eventsPort, eventsEndpoint: nil)
        reply(identity, Header(type: .welcome, re: header.id), welcome)
        schedule()
    }

    /// Refreshes a known agent; unknown agents are asked to introduce themselves again.
    private func touch(_ agent: String, identity: [UInt8]) -> Bool {
        guard var entry = registry[agent] else {
            reply(identity, Header(type: .rehello), Empty())
            return false
        }
        entry.lastSeen = clock()
        entry.identity = identity
        registry[agent] = entry
        return true
    }

    private func heartbeat(_ heartbeat: Heartbeat, identity: [UInt8], header: Header) throws {
        let agent = try sender(of: header)
        guard touch(agent, identity: identity) else { return }
        registry[agent]?.rejected = heartbeat.rejected
        // After a restart the journal knows which steps were given out; an
        // agent that still runs one claims it here.
        for key in heartbeat.inFlight.prefix(64) {
            guard let step = workflows[key.workflow]?.step(key.step), step.attempt == key.attempt,
                step.agent == agent, step.state == .assigned || step.state == .running
            else { continue }
            registry[agent]?.inFlight.insert(key)
            deliveries[key.workflow]?[key.step]?.orphanDeadline = nil
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

    /// Forgets an agent and hands its in-flight steps to others.
    private func agentGone(_ agent: String, reason: String) {
        guard let entry = registry.remove(agent) else { return }
        logger.warning("agent lost", metadata: ["agent.id": "\(agent)", "reason": "\(reason)"])
        for key in entry.inFlight.sorted(by: { $0.description < $1.description }) {
            requeue(key, avoiding: agent, reason: "agent \(agent) \(reason)")
        }
        schedule()
    }

    // MARK: Steps

    private func ack(identity: [UInt8], header: Header) throws {
        let agent = try sender(of: header)
        _ = touch(agent, identity: identity)
        guard let key = header.stepKey else { throw DecodeError(.invalidField, "ack needs workflow, step and attempt") }
        guard var workflow = workflows[key.workflow] else { throw DecodeError(.unknownWorkflow, "ack for \(key)") }
        guard let index = workflow.steps.firstIndex(where: { $0.name == key.step }) else {
            throw DecodeError(.unknownStep, "ack for \(key)")
        }
        var step = workflow.steps[index]
        guard step.attempt == key.attempt, step.agent == agent else { return }  // a late ack of an old attempt
        deliveries[key.workflow]?[key.step]?.ackDeadline = nil
        deliveries[key.workflow]?[key.step]?.orphanDeadline = nil
        registry[agent]?.inFlight.insert(key)
        guard step.state == .assigned else { return }
        let now = clock()
        step.state = .running
        step.startedAt = now
        workflow.steps[index] = step
        workflow.revision += 1
        try journal.recordAck(key, at: now)
        try journal.save(workflow, steps: [step])
        workflows[key.workflow] = workflow
        deliveries[key.workflow]?[key.step]?.runDeadline = now + configuration.stepTimeout.milliseconds
        dirty.insert(key.workflow)
    }

    private func result(_ result: StepResult, identity: [UInt8], header: Header) throws {
        let agent = try sender(of: header)
        _ = touch(agent, identity: identity)
        guard let key = header.stepKey else { throw DecodeError(.invalidField, "result needs workflow, step and attempt") }
        guard var workflow = workflows[key.workflow] else { throw DecodeError(.unknownWorkflow, "result for \(key)") }
        guard let index = workflow.steps.firstIndex(where: { $0.name == key.step }) else {
            throw DecodeError(.unknownStep, "result for \(key)")
        }
        guard key.attempt <= workflow.steps[index].attempt, try journal.assignee(of: key) != nil else {
            throw DecodeError(.notAssigned, "result for \(key), which was never assigned")
        }
        registry[agent]?.inFlight.remove(key)
        var step = workflow.steps[index]
        let confirm = Header(type: .confirm, workflow: key.workflow, step: key.step, attempt: key.attempt, re: header.id)
        // A step finishes once: a duplicate (a resend, or a late attempt)
        // is confirmed so its agent stops resending, and otherwise ignored.
        guard !step.state.isFinished else {
            reply(identity, confirm, Empty())
            return
        }
        let now = clock()
        step.state = result.outcome == .succeeded ? .succeeded : .failed
        step.attempt = key.attempt
        step.agent = result.agent
        step.host = result.host
        step.pid = result.pid
        step.startedAt = step.startedAt ?? now
        step.finishedAt = now
        step.summary = result.output.summary
        step.error = result.error
        step.values = result.outcome == .succeeded ? result.output.values : [:]
        workflow.steps[index] = step
        deliveries[key.workflow]?[key.step] = nil
        if result.outcome == .succeeded, key.step == "plan" {
            expand(&workflow, with: result.output.values["plan"])
        }
        workflow.revision += 1
        settle(&workflow, now: now)
        try journal.recordResult(key, result, workflow: workflow, step: step, at: now)
        try journal.save(workflow, steps: workflow.steps)
        workflows[key.workflow] = workflow
        reply(identity, confirm, Empty())
        logger.info(
            "step finished",
            metadata: [
                "workflow.id": "\(key.workflow)", "step": "\(key.step)", "agent.id": "\(agent)",
                "outcome": "\(result.outcome.rawValue)",
            ])
        writeOutputs(result.output.artifacts, workflow: key.workflow)
        dirty.insert(key.workflow)
        schedule()
    }

    /// Adds the planner's steps to the workflow, or fails it on a bad plan.
    private func expand(_ workflow: inout WorkflowSnapshot, with value: JSONValue?) {
        do {
            guard let value else { throw ShoalError(.protocolViolation, "the plan step returned no plan") }
            let plan = try JSONDecoder().decode(Plan.self, from: JSONEncoder().encode(value))
            let problems = plan.problems(existing: Set(workflow.steps.map(\.name)))
            guard problems.isEmpty else {
                throw ShoalError(.protocolViolation, "invalid plan: \(problems.joined(separator: "; "))")
            }
            for planned in plan.steps {
                var step = StepSnapshot(name: planned.name, role: planned.role, needs: planned.needs, critical: planned.critical)
                step.values = planned.params.isEmpty ? [:] : ["params": .object(planned.params)]
                workflow.steps.append(step)
            }
        } catch {
            workflow.state = .failed
            workflow.error = "\(error)"
        }
    }

    /// Applies the failure rules and finishes the workflow when nothing is left.
    private func settle(_ workflow: inout WorkflowSnapshot, now: Int64) {
        if workflow.state == .running,
            let critical = workflow.steps.first(where: { $0.critical && $0.state == .failed })
        {
            workflow.state = .failed
            workflow.error = "critical step '\(critical.name)' failed: \(critical.error ?? "no reason given")"
        }
        if workflow.state != .running {
            for index in workflow.steps.indices where workflow.steps[index].state == .pending {
                workflow.steps[index].state = .cancelled
            }
        }
        // Steps after a failed one cannot run: skip them, transitively.
        var changed = true
        while changed {
            changed = false
            let blocked = Set(workflow.steps.filter { $0.state == .failed || $0.state == .skipped || $0.state == .cancelled }.map(\.name))
            for index in workflow.steps.indices where workflow.steps[index].state == .pending {
                if let need = workflow.steps[index].needs.first(where: blocked.contains) {
                    workflow.steps[index].state = .skipped
                    workflow.steps[index].error = "skipped: '\(need)' did not succeed"
                    changed = true
                }
            }
        }
        let allFinished = workflow.steps.allSatisfy { $0.state.isFinished }
        if allFinished && workflow.state == .running {
            let failed = workflow.steps.filter { $0.state == .failed }
            let notRun = workflow.steps.filter { $0.state == .skipped || $0.state == .cancelled }.count
            if failed.isEmpty && notRun == 0 {
                workflow.state = .succeeded
            } else {
                workflow.state = .failed
                var reasons = failed.map { "\($0.name): \($0.error ?? "failed")" }
                if notRun > 0 { reasons.append("\(notRun) step(s) after it did not run") }
                workflow.error = reasons.joined(separator: "; ")
            }
        }
        if workflow.state != .running && workflow.finishedAt == nil {
            workflow.finishedAt = now
        }
    }

    /// Puts a step back to pending for another attempt, or fails it when its
    /// attempts are used up.
    private func requeue(_ key: StepKey, avoiding agent: String?, reason: String) {
        guard var workflow = workflows[key.workflow],
            let index = workflow.steps.firstIndex(where: { $0.name == key.step }),
            workflow.steps[index].attempt == key.attempt, !workflow.steps[index].state.isFinished
        else { return }
        var delivery = deliveries[key.workflow]?[key.step] ?? Delivery()
        if let agent { delivery.avoid.insert(agent) }
        delivery.ackDeadline = nil
        delivery.runDeadline = nil
        delivery.orphanDeadline = nil
        delivery.publishes = 0
        let now = clock()
        delivery.notBefore = now + backoffMilliseconds(afterAttempt: key.attempt)
        deliveries[key.workflow, default: [:]][key.step] = delivery
        if workflow.steps[index].attempt >= configuration.maxAttempts {
            workflow.steps[index].state = .failed
            workflow.steps[index].finishedAt = now
            workflow.steps[index].error = "gave up after \(key.attempt) attempts; last: \(reason)"
        } else {
            workflow.steps[index].state = .pending
            workflow.steps[index].agent = nil
        }
        logger.warning("step requeued", metadata: ["workflow.id": "\(key.workflow)", "step": "\(key.step)", "reason": "\(reason)"])
        workflow.revision += 1
        settle(&workflow, now: now)
        workflows[key.workflow] = workflow
        do {
            try journal.save(workflow, steps: workflow.steps)
        } catch {
            logger.error("journal failure", metadata: ["error": "\(error)"])
        }
        dirty.insert(key.workflow)
    }

    /// Exponential backoff between attempts: 250 ms, 500 ms, 1 s, ... capped at 10 s.
    func backoffMilliseconds(afterAttempt attempt: Int) -> Int64 {
        min(10_000, 250 << Int64(min(max(attempt - 1, 0), 10)))
    }

    // MARK: Clients

    private func cancel(workflow id: String?, identity: [UInt8], header: Header) throws {
        guard let id, var workflow = workflows[id] else {
            throw DecodeError(.unknownWorkflow, "no workflow '\(header.workflow ?? "")'")
        }
        if workflow.state == .running {
            let now = clock()
            workflow.state = .cancelled
            workflow.error = "cancelled by a client"
            for index in workflow.steps.indices where !workflow.steps[index].state.isFinished {
                let step = workflow.steps[index]
                if let agent = step.agent { registry[agent]?.inFlight.remove(StepKey(workflow: id, step: step.name, attempt: step.attempt)) }
                workflow.steps[index].state = .cancelled
                workflow.steps[index].finishedAt = now
            }
            workflow.finishedAt = now
            workflow.revision += 1
            try journal.save(workflow, steps: workflow.steps)
            workflows[id] = workflow
            deliveries[id] = nil
            dirty.insert(id)
            logger.info("workflow cancelled", metadata: ["workflow.id": "\(id)"])
        }
        reply(identity, Header(type: .statusReply, workflow: id, re: header.id), StatusReply(workflow: workflow))
    }

    /// Runs a failed or cancelled workflow again from where it stopped:
    /// steps that succeeded keep their results and never run again.
    private func resume(workflow id: String?, identity: [UInt8], header: Header) throws {
        guard let id, var workflow = workflows[id] else {
            throw DecodeError(.unknownWorkflow, "no workflow '\(header.workflow ?? "")'")
        }
        if workflow.state == .failed || workflow.state == .cancelled {
            for index in workflow.steps.indices where workflow.steps[index].state != .succeeded {
                workflow.steps[index].state = .pending
                workflow.steps[index].error = nil
                workflow.steps[index].summary = nil
                workflow.steps[index].agent = nil
                workflow.steps[index].finishedAt = nil
            }
            workflow.state = .running
            workflow.error = nil
            workflow.finishedAt = nil
            workflow.revision += 1
            deliveries[id] = nil
            try journal.save(workflow, steps: workflow.steps)
            workflows[id] = workflow
            dirty.insert(id)
            logger.info("workflow resumed", metadata: ["workflow.id": "\(id)"])
            schedule()
        }
        reply(identity, Header(type: .statusReply, workflow: id, re: header.id), StatusReply(workflow: workflows[id]!))
    }

    private func submit(_ submit: Submit, identity: [UInt8], header: Header) throws {
        if let existing = try journal.workflowID(forSubmit: header.id) {
            reply(identity, Header(type: .accepted, workflow: existing, re: header.id), Accepted(workflow: existing, eventsPort: eventsPort))
            return
        }
        let problems = submit.request.problems()
        guard problems.isEmpty else { throw DecodeError(.invalidRequest, problems.joined(separator: "; ")) }
        let id = newWorkflowID(submit.request)
        var plan = StepSnapshot(name: "plan", role: .planner, needs: [], critical: true)
        plan.state = .pending
        let workflow = WorkflowSnapshot(
            id: id, state: .running, request: submit.request, createdAt: clock(), finishedAt: nil, steps: [plan],
            error: nil, revision: 1)
        try journal.insert(workflow, submitID: header.id)
        workflows[id] = workflow
        logger.info("workflow submitted", metadata: ["workflow.id": "\(id)"])
        reply(identity, Header(type: .accepted, workflow: id, re: header.id), Accepted(workflow: id, eventsPort: eventsPort))
        dirty.insert(id)
        schedule()
    }

    private func newWorkflowID(_ request: WorkflowRequest) -> String {
        let environment = ["development": "dev", "staging": "stg", "production": "prod"][request.environment.rawValue] ?? "wf"
        while true {
            let suffix = String(UInt32.random(in: 0...0xFF_FFFF), radix: 16)
            let id = "\(request.platform)-\(environment)-" + String(repeating: "0", count: 6 - suffix.count) + suffix
            if workflows[id] == nil { return id }
        }
    }

    // MARK: Scheduling

    /// Gives every ready step to an agent, least loaded first.
    func schedule() {
        for id in workflows.keys.sorted() {
            guard var workflow = workflows[id], workflow.state == .running else { continue }
            let succeeded = Set(workflow.steps.filter { $0.state == .succeeded }.map(\.name))
            var assigned: [StepSnapshot] = []
            for index in workflow.steps.indices {
                let step = workflow.steps[index]
                guard step.state == .pending, step.needs.allSatisfy(succeeded.contains) else { continue }
                let avoid = deliveries[id]?[step.name]?.avoid ?? []
                if let notBefore = deliveries[id]?[step.name]?.notBefore, notBefore > clock() { continue }
                guard let agent = registry.pick(role: step.role, avoiding: avoid) else { continue }
                let now = clock()
                let key = StepKey(workflow: id, step: step.name, attempt: step.attempt + 1)
                var updated = step
                updated.state = .assigned
                updated.attempt = key.attempt
                updated.agent = agent
                updated.host = registry[agent]?.hello.host
                updated.pid = registry[agent]?.hello.pid
                updated.startedAt = nil
                do {
                    try journal.recordAssignment(key, agent: agent, at: now)
                } catch {
                    logger.error("journal failure", metadata: ["error": "\(error)"])
                    return
                }
                workflow.steps[index] = updated
                assigned.append(updated)
                registry[agent]?.inFlight.insert(key)
                registry[agent]?.lastAssigned = now
                var delivery = deliveries[id]?[step.name] ?? Delivery()
                delivery.publishes = 0
                deliveries[id, default: [:]][step.name] = delivery
            }
            guard !assigned.isEmpty else { continue }
            workflow.revision += 1
            workflows[id] = workflow
            do {
                try journal.save(workflow, steps: assigned)
            } catch {
                logger.error("journal failure", metadata: ["error": "\(error)"])
            }
            for step in assigned { publishStep(workflow: id, step: step.name) }
            dirty.insert(id)
        }
    }

    /// Publishes (or publishes again) the current attempt of a step to its agent.
    private func publishStep(workflow id: String, step name: String) {
        guard let workflow = workflows[id], let step = workflow.step(name), let agent = step.agent else { return }
        let assignment: StepAssignment
        do {
            assignment = try makeAssignment(workflow, step)
        } catch {
            logger.error("journal failure", metadata: ["error": "\(error)"])
            return
        }
        let header = Header(type: .step, workflow: id, step: name, attempt: step.attempt)
        outbox.append(.publish(Codec.encode(header, assignment, topic: WireFormat.agentTopic(agent))))
        deliveries[id]?[name]?.publishes += 1
        deliveries[id]?[name]?.ackDeadline = clock() + configuration.ackTimeout.milliseconds
        logger.debug("step published", metadata: ["workflow.id": "\(id)", "step": "\(name)", "agent.id": "\(agent)"])
    }

    /// The request, parameters, and the values and artifacts of every step
    /// the step depends on, directly or not; the latest artifact of a name wins.
    private func makeAssignment(_ workflow: WorkflowSnapshot, _ step: StepSnapshot) throws -> StepAssignment {
        var ancestors: Set<String> = []
        var frontier = step.needs
        while let next = frontier.popLast() {
            guard ancestors.insert(next).inserted, let dependency = workflow.step(next) else { continue }
            frontier.append(contentsOf: dependency.needs)
        }
        let ordered = workflow.steps.filter { ancestors.contains($0.name) }
            .sorted { ($0.finishedAt ?? 0, $0.name) < ($1.finishedAt ?? 0, $1.name) }
        var inputs: [String: [String: JSONValue]] = [:]
        for dependency in ordered { inputs[dependency.name] = dependency.values }
        var artifacts: [String: Artifact] = [:]
        for (_, artifact) in try journal.artifacts(workflow: workflow.id, steps: ordered.map(\.name)) {
            artifacts[artifact.name] = artifact
        }
        return StepAssignment(
            role: step.role, request: workflow.request, params: step.values["params"]?.objectValue ?? [:],
            inputs: inputs, artifacts: artifacts.values.sorted { $0.name < $1.name })
    }

    // MARK: Timers

    /// Heartbeats, ack timeouts, dead agents, step timeouts.
    func tick() {
        let now = clock()
        if now - lastHeartbeatSent >= configuration.heartbeatInterval.milliseconds {
            lastHeartbeatSent = now
            for agent in registry.all {
                outbox.append(.send(identity: agent.identity, frames: [agent.identity] + Codec.encode(Header(type: .heartbeat), Heartbeat())))
            }
        }
        for agent in registry.expired(now: now, timeoutMilliseconds: livenessMilliseconds) {
            agentGone(agent, reason: "missed \(configuration.liveness) heartbeats")
        }
        for (id, steps) in deliveries {
            for (name, delivery) in steps {
                guard let step = workflows[id]?.step(name) else { continue }
                let key = StepKey(workflow: id, step: name, attempt: step.attempt)
                if let deadline = delivery.ackDeadline, now >= deadline, step.state == .assigned {
                    if delivery.publishes < 2 {
                        publishStep(workflow: id, step: name)
                    } else {
                        if let agent = step.agent { registry[agent]?.inFlight.remove(key) }
                        requeue(key, avoiding: step.agent, reason: "no ack from \(step.agent ?? "?")")
                    }
                } else if let deadline = delivery.runDeadline, now >= deadline, step.state == .running {
                    if let agent = step.agent { registry[agent]?.inFlight.remove(key) }
                    requeue(key, avoiding: step.agent, reason: "step timed out after \(configuration.stepTimeout)")
                } else if let deadline = delivery.orphanDeadline, now >= deadline {
                    // After a restart nobody claimed this step: if its agent is
                    // back, publish the same attempt again (the agent runs it at
                    // most once); otherwise it goes to another agent.
                    deliveries[id]?[name]?.orphanDeadline = nil
                    if let agent = step.agent, registry[agent] != nil, registry.isReachable(agent) {
                        registry[agent]?.inFlight.insert(key)
                        if step.state == .running { updateStepState(key, to: .assigned) }
                        publishStep(workflow: id, step: name)
                    } else {
                        requeue(key, avoiding: step.agent, reason: "agent \(step.agent ?? "?") did not come back")
                    }
                }
            }
        }
        schedule()
    }

    /// Sets a step's state back (a running step whose ack must come again).
    private func updateStepState(_ key: StepKey, to state: StepSnapshot.State) {
        guard var workflow = workflows[key.workflow], let index = workflow.steps.firstIndex(where: { $0.name == key.step }) else {
            return
        }
        workflow.steps[index].state = state
        workflow.revision += 1
        workflows[key.workflow] = workflow
        dirty.insert(key.workflow)
    }

    private func publishDirtyWorkflows() {
        for id in dirty.sorted() {
            guard let workflow = workflows[id] else { continue }
            let header = Header(type: .event, workflow: id)
            outbox.append(.publish(Codec.encode(header, StatusReply(workflow: workflow), topic: WireFormat.workflowTopic(id))))
        }
        dirty = []
    }

    // MARK: Output tree

    private static let outputRoots: Set<String> = ["terraform", "kubeconfigs", "manifests", "gitops", "argocd-apps", "docs", "reports"]

    /// Writes a result's artifacts into the output tree; paths are checked
    /// (they come from the network): `<root>/<workflow>/...`, no `..`.
    private func writeOutputs(_ artifacts: [Artifact], workflow: String) {
        for artifact in artifacts {
            guard let path = artifact.path else { continue }
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count >= 3, CoordinatorCore.outputRoots.contains(String(parts[0])), parts[1] == workflow,
                !path.hasPrefix("/"), parts.allSatisfy({ !$0.isEmpty && $0 != ".." && $0 != "." })
            else {
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
