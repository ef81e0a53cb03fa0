import Foundation
import Protocol
import ShoalSupport
import ZeroMQ

/// A client of a coordinator (the CLI): requests over a DEALER, workflow
/// events over a SUB. Blocking; use it from one thread.
public final class CoordinatorClient {
    private let context: Context
    private let dealer: Socket
    private var subscriber: Socket?
    private let monitor: SocketMonitor
    private let endpoint: String
    private let curve: CurveClientKeys?
    /// Handshakes that broke off without a reason, and whether one ever completed.
    private var failedHandshakes = 0
    private var handshakeSucceeded = false
    /// How long to wait for a reply before sending the request again.
    public var replyTimeout: Duration = .seconds(2)
    /// Sends of one request before giving up.
    public var attempts = 5

    /// Connects (lazily: libzmq connects in the background).
    /// - Parameters:
    ///   - curve: this client's key pair and the coordinator's public key;
    ///     nil speaks plain TCP, which a coordinator with CURVE refuses.
    /// - Throws: `ShoalError(.invalidInput)` for a malformed endpoint or key.
    public init(endpoint: String, curve: CurveClientKeys?, context: Context = Context()) throws {
        self.context = context
        self.endpoint = endpoint
        self.curve = curve
        do {
            dealer = try Socket(context: context, type: .dealer)
            try dealer.set(.maxMessageSize, Int64(WireFormat.maxMessageBytes))
            if let curve { try dealer.makeCurveClient(curve) }
            monitor = try SocketMonitor(dealer)
            try dealer.connect(endpoint)
        } catch {
            throw ShoalError(.invalidInput, "cannot connect to coordinator '\(endpoint)'", cause: "\(error)")
        }
    }

    /// Sends a request and waits for its reply; resends with the same id
    /// (requests are idempotent by id) until `attempts` run out.
    /// - Throws: `ShoalError(.unreachable)` when no reply comes,
    ///   `ShoalError(.invalidInput)` when the coordinator refuses the request.
    func call<Body: Encodable>(_ header: Header, _ body: Body) throws -> Envelope {
        let frames = Codec.encode(header, body)
        let started = ContinuousClock.now
        for _ in 0..<attempts {
            // Never blocks: a connection refused at the handshake leaves the
            // DEALER without a peer, and a blocking send would wait forever.
            _ = try dealer.send(frames, wait: false)
            let deadline = ContinuousClock.now + replyTimeout
            while ContinuousClock.now < deadline {
                var poller = Poller()
                poller.add(dealer)
                poller.add(monitor.socket)
                let remaining = Int((deadline - ContinuousClock.now).milliseconds)
                let ready = try poller.poll(timeoutMilliseconds: max(1, remaining))
                if ready[1] { try checkHandshakes() }
                // A reachable coordinator completes a CURVE handshake in milliseconds; one that keeps breaking
                // them off does not know this client's idea of its key, and waiting longer changes nothing.
                if !handshakeSucceeded && failedHandshakes > 0 && ContinuousClock.now - started >= handshakeGrace {
                    throw wrongKeyError()
                }
                guard ready[0] else { continue }
                guard let reply = try dealer.receive(wait: false),
                    let envelope = try? Codec.decode(reply[...]), envelope.header.re == header.id
                else { continue }
                if envelope.header.type == .error {
                    let error = try? envelope.decode(ErrorReply.self)
                    throw ShoalError(.invalidInput, error?.message ?? "the coordinator refused the request", cause: nil)
                }
                return envelope
            }
        }
        if !handshakeSucceeded && failedHandshakes > 0 { throw wrongKeyError() }
        throw ShoalError(
            .unreachable,
            "no answer from the coordinator at \(endpoint) after \(attempts) tries; is `shoal coordinator` running there?")
    }

    /// How long handshakes may break off before the client says its coordinator key is wrong (default 3 s).
    public var handshakeGrace: Duration = .seconds(3)

    /// The server drops a CURVE client that does not know its real key without a word.
    private func wrongKeyError() -> ShoalError {
        ShoalError(
            .forbidden,
            "the handshake with the coordinator at \(endpoint) never completed (\(failedHandshakes) tries): "
                + (curve == nil
                    ? "it requires CURVE; pass --key and --coordinator-key"
                    : "is --coordinator-key that coordinator's public key?"))
    }

    /// Turns a refused handshake into an error that says what to fix.
    private func checkHandshakes() throws {
        for event in monitor.drain() {
            switch event {
            case .refused(let status):
                throw ShoalError(
                    .forbidden,
                    "the coordinator at \(endpoint) refused this client's key (ZAP status \(status)); "
                        + "its operator must allow it: shoal keys allow NAME.pub")
            case .protocolError(let code):
                throw ShoalError(
                    .forbidden,
                    "the handshake with the coordinator at \(endpoint) failed (libzmq protocol error \(code)): "
                        + (curve == nil
                            ? "it requires CURVE; pass --key and --coordinator-key"
                            : "it runs --insecure, or --coordinator-key is not its public key"))
            case .succeeded:
                handshakeSucceeded = true
            case .failed:
                failedHandshakes += 1
            }
        }
    }

    private func decode<Body: Decodable>(_ type: Body.Type, _ envelope: Envelope) throws -> Body {
        do {
            return try envelope.decode(type)
        } catch {
            throw ShoalError(.protocolViolation, "unexpected answer from the coordinator", cause: "\(error)")
        }
    }

    /// Submits a workflow.
    /// - Returns: the workflow id and the events port.
    public func submit(_ request: WorkflowRequest) throws -> Accepted {
        try decode(Accepted.self, call(Header(type: .submit), Submit(request: request)))
    }

    /// Submits a workflow whose `plan` step goes to another planner role
    /// (`bench`), with params for it.
    public func submit(_ request: WorkflowRequest, planner: Role, params: [String: JSONValue]) throws -> Accepted {
        try decode(Accepted.self, call(Header(type: .submit), Submit(request: request, planner: planner, params: params)))
    }

    /// Submits a workflow as `submit` describes it (a planner role and typed params for its `plan` step:
    /// `Submit(request:planner:planParams:)`).
    public func submit(_ submit: Submit) throws -> Accepted {
        try decode(Accepted.self, call(Header(type: .submit), submit))
    }

    /// The current state of a workflow.
    public func status(_ workflow: String) throws -> WorkflowSnapshot {
        try statusReply(workflow).workflow
    }

    private func statusReply(_ workflow: String) throws -> StatusReply {
        try decode(StatusReply.self, call(Header(type: .status, workflow: workflow), Empty()))
    }

    public func list() throws -> [WorkflowSnapshot] {
        try decode(ListReply.self, call(Header(type: .list), Empty())).workflows
    }

    /// Cancels a running workflow; its steps in flight are not waited for.
    public func cancel(_ workflow: String) throws -> WorkflowSnapshot {
        try decode(StatusReply.self, call(Header(type: .cancel, workflow: workflow), Empty())).workflow
    }

    /// Runs a failed or cancelled workflow again; succeeded steps are kept.
    public func resume(_ workflow: String) throws -> WorkflowSnapshot {
        try decode(StatusReply.self, call(Header(type: .resume, workflow: workflow), Empty())).workflow
    }

    /// The coordinator's counters.
    public func stats() throws -> Stats {
        try decode(Stats.self, call(Header(type: .stats), Empty()))
    }

    public func agents() throws -> [AgentInfo] {
        try decode(AgentsReply.self, call(Header(type: .agents), Empty())).agents
    }

    /// Follows a workflow until it finishes: events (what changed) as they
    /// are published, a status request when an event shows a gap, and one
    /// whenever none came for a while (events are lossy).
    /// - Parameters:
    ///   - eventsPort: the coordinator's PUB port (from `submit`), on the same host; nil takes the one the
    ///     coordinator's status reply names (polling `status` alone when it names none).
    ///   - timeout: give up after this long; nil waits forever.
    ///   - update: called with each newer snapshot.
    /// - Returns: the final snapshot.
    public func follow(
        _ workflow: String, eventsPort: Int?, timeout: Duration? = nil, update: (WorkflowSnapshot) -> Void
    ) throws -> WorkflowSnapshot {
        var first: WorkflowSnapshot?
        var eventsPort = eventsPort
        if subscriber == nil, eventsPort == nil {
            let reply = try statusReply(workflow)
            first = reply.workflow
            eventsPort = reply.eventsPort
        }
        if subscriber == nil, let eventsPort, let colon = endpoint.lastIndex(of: ":") {
            let socket = try Socket(context: context, type: .sub)
            try socket.set(.maxMessageSize, Int64(WireFormat.maxMessageBytes))
            if let curve { try socket.makeCurveClient(curve) }
            try socket.connect("\(endpoint[..<colon]):\(eventsPort)")
            subscriber = socket
        }
        try subscriber?.subscribe(WireFormat.workflowTopic(workflow))
        defer { try? subscriber?.unsubscribe(WireFormat.workflowTopic(workflow)) }
        let deadline = timeout.map { ContinuousClock.now + $0 }
        // An event published between that first status and the subscription shows as a gap, and is asked for.
        var latest = try first ?? status(workflow)
        update(latest)
        var lastStatus = ContinuousClock.now
        while !latest.state.isFinished {
            if let deadline, ContinuousClock.now >= deadline {
                throw ShoalError(.timeout, "workflow \(workflow) did not finish in time; it is still \(latest.state.rawValue)")
            }
            var poller = Poller()
            if let subscriber { poller.add(subscriber) }
            if let subscriber, try poller.poll(timeoutMilliseconds: 200)[0] {
                var gap = false
                while let frames = try subscriber.receive(wait: false) {
                    guard frames.count == 3, let envelope = try? Codec.decode(frames.dropFirst()),
                        let event = try? envelope.decode(WorkflowEvent.self), event.workflow == workflow,
                        event.revision > latest.revision
                    else { continue }
                    // An event applies to the revision it names; any other
                    // means one was missed: the whole snapshot is asked for.
                    if event.apply(to: &latest) {
                        update(latest)
                    } else {
                        gap = true
                    }
                }
                if gap { lastStatus = ContinuousClock.now - .seconds(2) }
            } else if subscriber == nil {
                Thread.sleep(forTimeInterval: 0.2)
            }
            if ContinuousClock.now - lastStatus > .seconds(1) {
                lastStatus = ContinuousClock.now
                // A coordinator that is restarting does not answer for a while:
                // keep waiting for it (it resumes the workflow), within the timeout.
                let current: WorkflowSnapshot
                do {
                    current = try status(workflow)
                } catch let error as ShoalError where error.code == .unreachable {
                    continue
                }
                if current.revision > latest.revision || current.state.isFinished {
                    latest = current
                    update(latest)
                }
            }
        }
        return latest
    }
}
