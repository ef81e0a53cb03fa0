import Foundation
import Logging
import Protocol
import ShoalSupport

/// Workflows that act on an earlier one (`shoal validate` and `shoal destroy`
/// through a coordinator), steps pinned to one agent, and the `logs` and
/// `artifacts` requests.
///
/// An operation workflow starts with a `plan` step whose params name the
/// operation, its target and (destroy) the agent that ran the target's
/// `provision` step; the planner turns them into steps. Those steps receive
/// the target's values and artifacts (the kubeconfig, the simulated
/// cluster's state, the monitoring step's values, the join token) as if they
/// came after the target's steps.
extension CoordinatorCore {
    // MARK: Submit

    /// Creates the workflow of an operation on an earlier workflow.
    /// - Throws: `DecodeError(.unknownWorkflow)` for an unknown target,
    ///   `DecodeError(.invalidRequest)` when the operation cannot run on it now.
    func submitOperation(_ operation: WorkflowOperation, identity: [UInt8], header: Header) throws {
        do {
            try Names.validateWorkflowID(operation.target)
        } catch let error as ShoalError {
            throw DecodeError(.invalidRequest, error.message)
        }
        let target = try snapshot(operation.target)
        let name = "\(operation.kind.rawValue) of \(target.id)"
        if let other = target.operation {
            throw DecodeError(
                .invalidRequest,
                "workflow \(target.id) is itself a \(other.kind.rawValue) of \(other.target); name the workflow "
                    + "that created the cluster")
        }
        guard target.state != .running else {
            throw DecodeError(
                .invalidRequest, "cannot run a \(name): it is still running; wait for it or cancel it")
        }
        guard target.state != .destroyed else {
            throw DecodeError(.invalidRequest, "cannot run a \(name): its cluster was destroyed")
        }
        if let busy = workflows.values.first(where: {
            $0.snapshot.state == .running && $0.snapshot.operation?.target == target.id
                && ($0.snapshot.operation?.kind == .destroy || operation.kind == .destroy)
        }) {
            throw DecodeError(
                .invalidRequest,
                "cannot run a \(name): \(busy.id) (a \(busy.snapshot.operation?.kind.rawValue ?? "?") of it) is "
                    + "still running")
        }
        var params = OperationPlanParams(operation: operation.kind, target: target.id)
        let provision = target.step(.provision)
        switch operation.kind {
        case .validate:
            guard provision?.state == .succeeded else {
                throw DecodeError(
                    .invalidRequest, "cannot run a \(name): its provision step did not succeed, so there is no cluster")
            }
        case .destroy:
            guard let agent = provision?.agent, (provision?.attempt ?? 0) > 0 else {
                throw DecodeError(
                    .invalidRequest,
                    "cannot run a \(name): its provision step never ran on an agent, so nothing was provisioned")
            }
            params.infraAgent = agent
        }
        let id = try startWorkflow(
            target.request, planner: .planner, params: try StepContract.object(params, step: .plan, part: "params"),
            operation: operation, header: header, identity: identity)
        logger.info(
            "operation submitted",
            metadata: [
                "workflow.id": "\(id)", "operation": "\(operation.kind.rawValue)", "target": "\(target.id)",
            ])
    }

    // MARK: What the target hands on

    /// Adds the target's values and artifacts under those of the workflow's own steps: the steps of the target
    /// that built the cluster (its own checks and report are left out, so the new checks stand alone).
    func inherit(
        _ live: Live, inputs: inout [String: [String: JSONValue]], artifacts: inout [String: ArtifactRef]
    ) throws {
        guard let target = live.snapshot.operation?.target, let stored = try journal.workflow(target) else { return }
        let handedOn = stored.steps.filter {
            $0.state == .succeeded && $0.kind.check == nil && $0.kind != .healthReport
        }.sorted { ($0.finishedAt ?? 0, $0.name) < ($1.finishedAt ?? 0, $1.name) }
        for step in handedOn where inputs[step.name] == nil && !step.values.isEmpty {
            inputs[step.name] = step.values
        }
        var inherited: [String: ArtifactRef] = [:]
        for (_, ref) in try journal.artifactRefs(workflow: target, steps: handedOn.map(\.name)) {
            inherited[ref.name] = ref
        }
        artifacts.merge(inherited) { own, _ in own }
    }

    /// An operation workflow ended: a destroy that succeeded marks its target destroyed.
    func operationFinished(_ live: Live) {
        guard let operation = live.snapshot.operation, operation.kind == .destroy, live.snapshot.state == .succeeded
        else { return }
        if let target = workflows[operation.target] {
            target.snapshot.state = .destroyed
            changed(target)
        } else {
            do {
                guard var stored = try journal.workflow(operation.target) else { return }
                stored.state = .destroyed
                stored.revision += 1
                batch.saveHeader(of: stored)
            } catch {
                logger.error("journal read failed", metadata: ["error": "\(error)"])
                return
            }
        }
        logger.info("workflow destroyed", metadata: ["workflow.id": "\(operation.target)", "by": "\(live.id)"])
    }

    // MARK: Pinned steps

    /// The agent a step is pinned to, when its params name one.
    func pinnedAgent(_ live: Live, _ position: Int) -> String? {
        live.snapshot.steps[position].pinnedAgent
    }

    /// Gives out the ready steps pinned to an agent once that agent is there,
    /// and fails those whose agent did not come within
    /// `configuration.pinnedAgentWait`. A step waits from the first time it
    /// was ready.
    func schedulePinned(now: Int64) {
        guard !pinnedWaits.isEmpty else { return }
        for (key, wait) in pinnedWaits {
            guard let live = workflows[wait.workflow], live.snapshot.state == .running,
                wait.step < live.snapshot.steps.count, live.snapshot.steps[wait.step].state == .pending,
                live.waiting[wait.step] == 0, (live.deliveries[wait.step]?.notBefore ?? 0) <= now
            else {
                let steps = workflows[wait.workflow]?.snapshot.steps ?? []
                if wait.step >= steps.count || steps[wait.step].state != .pending { pinnedWaits[key] = nil }
                continue
            }
            if let agent = registry[wait.agent], agent.hello.role == live.snapshot.steps[wait.step].role,
                registry.isReachable(wait.agent)
            {
                // Connected: it gets the step once it has room, however long that takes.
                guard agent.hasCapacity else { continue }
                pinnedWaits[key] = nil
                assign(live, wait.step, to: wait.agent, now: now)
            } else if now >= wait.since + configuration.pinnedAgentWait.milliseconds {
                pinnedWaits[key] = nil
                let step = live.snapshot.steps[wait.step]
                let seconds = configuration.pinnedAgentWait.milliseconds / 1000
                live.snapshot.steps[wait.step].state = .failed
                live.snapshot.steps[wait.step].finishedAt = now
                live.snapshot.steps[wait.step].error =
                    "\(step.role.rawValue) agent '\(wait.agent)' is not connected (waited \(seconds)s): step "
                    + "'\(step.name)' runs only there"
                    + (step.role == .infra
                        ? ", where the Terraform state of \(live.snapshot.operation?.target ?? "the workflow") is; "
                            + "start that agent again (same --id and --work-dir) and retry" : "")
                live.deliveries[wait.step] = nil
                logger.warning(
                    "pinned agent missing",
                    metadata: ["workflow.id": "\(live.id)", "step": "\(step.name)", "agent.id": "\(wait.agent)"])
                changed(live, wait.step)
                finished(live, wait.step, now: now)
            }
        }
    }

    /// A ready step pinned to `agent` waits for it (apart from the role's queue, which it would block).
    func park(_ live: Live, _ position: Int, agent: String, now: Int64) {
        let key = "\(live.id)/\(position)"
        if pinnedWaits[key] == nil {
            pinnedWaits[key] = PinnedWait(workflow: live.id, step: position, agent: agent, since: now)
        }
    }

    // MARK: Requests

    /// The log lines of a workflow's steps, from the journal.
    func logs(_ request: LogsRequest, identity: [UInt8], header: Header) throws {
        let workflow = try snapshot(header.workflow)
        if let step = request.step, workflow.step(step) == nil {
            throw DecodeError(.unknownStep, "workflow \(workflow.id) has no step '\(step.prefix(100))'")
        }
        let steps = try journal.stepLogs(of: workflow, step: request.step)
        reply(
            identity, Header(type: .logsReply, workflow: workflow.id, re: header.id),
            LogsReply(workflow: workflow.id, state: workflow.state, steps: steps))
    }

    /// A workflow's artifacts that have a place in the output tree, the latest of each path.
    func artifacts(_ request: ArtifactsRequest, identity: [UInt8], header: Header) throws {
        let workflow = try snapshot(header.workflow)
        let reply = try journal.outputArtifacts(of: workflow, sensitive: request.sensitive)
        if reply.artifacts.contains(where: \.sensitive) {
            logger.notice("sensitive artifacts sent to a client", metadata: ["workflow.id": "\(workflow.id)"])
        }
        self.reply(identity, Header(type: .artifactsReply, workflow: workflow.id, re: header.id), reply)
    }

    // MARK: Artifacts by digest

    /// A chunk of an artifact, by digest, for an agent that does not hold it. The bytes come from the journal
    /// (through its digest index); the last artifact read is kept, so the chunks of one artifact read it once.
    /// - Throws: `DecodeError(.invalidField)` for a digest that is not one, `.unknownArtifact` when the journal
    ///   holds no artifact with it, `.invalidOffset` for an offset outside it.
    func fetch(_ request: FetchRequest, identity: [UInt8], header: Header) throws {
        guard ArtifactRef.isDigest(request.digest) else {
            throw DecodeError(.invalidField, "a fetch needs a SHA-256 digest of 64 lowercase hex digits")
        }
        let data: Data
        if let last = lastFetched, last.digest == request.digest {
            data = last.data
        } else {
            guard let found = try journal.artifactData(digest: request.digest) else {
                throw DecodeError(.unknownArtifact, "no artifact with digest \(request.digest.prefix(12))")
            }
            data = found
            lastFetched = (request.digest, found)
        }
        guard request.offset >= 0, request.offset < data.count || (request.offset == 0 && data.isEmpty) else {
            throw DecodeError(.invalidOffset, "offset \(request.offset) is outside an artifact of \(data.count) bytes")
        }
        let end = min(data.count, request.offset + WireFormat.fetchChunkBytes)
        let chunk = data.subdata(in: data.startIndex + request.offset..<data.startIndex + end)
        fetchedChunks += 1
        reply(
            identity, Header(type: .fetchReply, re: header.id),
            FetchReply(digest: request.digest, offset: request.offset, total: data.count, data: chunk))
    }
}

/// A ready step waiting for the one agent it is pinned to.
struct PinnedWait {
    var workflow: String
    var step: Int
    var agent: String
    /// When it was first ready, milliseconds since 1970.
    var since: Int64
}

/// Keeps a step's log within `StepLog.maxBytes`, the oldest lines dropped
/// first, with a line that says how many went.
enum StepLogBound {
    static let marker = "[shoal: earlier lines dropped: "

    static func bound(_ result: StepResult) -> StepResult {
        var total = result.output.log.reduce(0) { $0 + $1.utf8.count + 1 }
        guard total > StepLog.maxBytes else { return result }
        var copy = result
        var lines = copy.output.log[...]
        while total > StepLog.maxBytes - 128, let first = lines.first {
            total -= first.utf8.count + 1
            lines = lines.dropFirst()
        }
        // A single huge line is cut, not kept whole.
        var kept = lines.map { $0.utf8.count > StepLog.maxBytes / 2 ? String($0.prefix(StepLog.maxBytes / 8)) : $0 }
        let dropped = copy.output.log.count - kept.count
        kept.insert(marker + "\(dropped)]", at: 0)
        copy.output.log = kept
        return copy
    }

    /// How many lines the bound dropped from a stored log, and the log without its marker.
    static func split(_ log: [String]) -> (lines: [String], dropped: Int) {
        guard let first = log.first, first.hasPrefix(marker), first.hasSuffix("]"),
            let count = Int(first.dropFirst(marker.count).dropLast())
        else { return (log, 0) }
        return (Array(log.dropFirst()), count)
    }
}

extension Journal {
    /// The log of each step (or of one) of a workflow: its latest attempt that returned a result, in workflow
    /// order; steps without a result are left out.
    public func stepLogs(of workflow: WorkflowSnapshot, step name: String? = nil) throws -> [StepLog] {
        var logs: [StepLog] = []
        for step in workflow.steps where name == nil || step.name == name {
            guard step.attempt > 0 else { continue }
            for attempt in stride(from: step.attempt, through: 1, by: -1) {
                guard let result = try result(StepKey(workflow: workflow.id, step: step.name, attempt: attempt))
                else { continue }
                let (lines, dropped) = StepLogBound.split(result.output.log)
                logs.append(
                    StepLog(
                        step: step.name, attempt: attempt, agent: result.agent, host: result.host,
                        outcome: result.outcome, lines: lines, dropped: dropped, error: result.error))
                break
            }
        }
        return logs
    }

    /// A workflow's artifacts that have a place in the output tree, the latest of each path (steps that
    /// succeeded, in the order they finished); sensitive ones only with `sensitive`; at most
    /// `ArtifactsReply.maxBytes` in all.
    public func outputArtifacts(of workflow: WorkflowSnapshot, sensitive: Bool) throws -> ArtifactsReply {
        var latest: [String: Artifact] = [:]
        let ordered = workflow.steps.filter { $0.state == .succeeded }
            .sorted { ($0.finishedAt ?? 0, $0.name) < ($1.finishedAt ?? 0, $1.name) }
        for (_, artifact) in try artifacts(workflow: workflow.id, steps: ordered.map(\.name)) {
            guard let path = artifact.path else { continue }
            latest[path] = artifact
        }
        var chosen: [Artifact] = []
        var withheld: [String] = []
        var tooLarge: [String] = []
        var bytes = 0
        for (path, artifact) in latest.sorted(by: { $0.key < $1.key }) {
            if artifact.sensitive && !sensitive {
                withheld.append(path)
            } else if bytes + artifact.data.count > ArtifactsReply.maxBytes {
                tooLarge.append(path)
            } else {
                bytes += artifact.data.count
                chosen.append(artifact)
            }
        }
        return ArtifactsReply(workflow: workflow.id, artifacts: chosen, withheld: withheld, tooLarge: tooLarge)
    }
}
