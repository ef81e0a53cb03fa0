import Foundation
import Logging
import Prometheus
import Protocol
import ServiceLifecycle
import ShoalSupport
import ZeroMQ

/// The endpoints a coordinator actually bound (ports chosen when `*` or 0 was asked).
public struct BoundEndpoints: Sendable, Equatable {
    public var control: String
    public var events: String
    /// The metrics address (`host:port`), when metrics are served.
    public var metrics: String?

    public init(control: String, events: String, metrics: String? = nil) {
        self.control = control
        self.events = events
        self.metrics = metrics
    }

    /// The TCP port of an endpoint such as `tcp://127.0.0.1:7400`.
    public static func port(of endpoint: String) -> Int? {
        guard let colon = endpoint.lastIndex(of: ":") else { return nil }
        return Int(endpoint[endpoint.index(after: colon)...])
    }
}

/// The coordinator as a service: one thread owns the ROUTER and XPUB sockets
/// and runs the core; the service's task waits for it and stops it on
/// graceful shutdown or cancellation.
public final class CoordinatorService: Service {
    private let configuration: CoordinatorConfiguration
    private let logger: Logger
    private let onReady: @Sendable (BoundEndpoints) -> Void
    private let context: Context

    /// - Parameters:
    ///   - onReady: called once both sockets are bound, with their real endpoints.
    public init(
        configuration: CoordinatorConfiguration, logger: Logger, context: Context = Context(),
        onReady: @escaping @Sendable (BoundEndpoints) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.logger = logger
        self.context = context
        self.onReady = onReady
    }

    /// Runs until graceful shutdown or cancellation.
    /// - Throws: `ShoalError` when the journal cannot be opened or a socket cannot bind.
    public func run() async throws {
        // A file size limit reached is a failed write (EFBIG), reported and
        // stopped on like a full disk, not a signal that kills the process.
        signal(SIGXFSZ, SIG_IGN)
        let journal = try Journal(
            path: configuration.journalPath, sync: configuration.journalSync, backgroundCheckpoints: true)
        try journal.checkKey()
        if journal.wasEmpty && !journal.keyCreated {
            logger.warning(
                "the journal is empty but its key file exists: the state of earlier runs is not there",
                metadata: ["journal": "\(journal.path)", "key": "\(journal.keyPath)"])
        }
        let loop = ReactorLoop()
        let configuration = configuration
        let logger = logger
        let context = context
        let onReady = onReady
        let run: @Sendable (PrometheusCollectorRegistry?, String?) async throws -> Void = { registry, metrics in
            try await withTaskCancellationHandler {
                try await withGracefulShutdownHandler {
                    try await loop.run { stop in
                        try CoordinatorService.serve(
                            configuration: configuration, journal: journal, context: context, logger: logger,
                            metrics: registry.map(CoordinatorMetrics.init), stop: stop
                        ) { bound in
                            var bound = bound
                            bound.metrics = metrics
                            onReady(bound)
                        }
                    }
                } onGracefulShutdown: {
                    loop.stop()
                } 
            } onCancel: {
                loop.stop()
            }
        }
        if let listen = configuration.metricsListen {
            try await MetricsServer(listen: listen, logger: logger).serving { try await run($0, $1) }
        } else {
            try await run(nil, nil)
        }
    }

    /// The socket loop; runs on its own thread.
    private static func serve(
        configuration: CoordinatorConfiguration, journal: Journal, context: Context, logger: Logger,
        metrics: CoordinatorMetrics?, stop: ReactorLoop.StopSignal, onReady: @Sendable (BoundEndpoints) -> Void
    ) throws {
        // The ZAP handler must answer before the first CURVE socket binds.
        let busGuard = try configuration.security.map { try BusGuard(security: $0, context: context, logger: logger) }
        defer { busGuard?.stop() }
        if busGuard == nil {
            logger.warning("bus security off: plain TCP, no authentication (--insecure)")
        }
        let router = try Socket(context: context, type: .router)
        try router.set(.routerMandatory, 1)
        try router.set(.maxMessageSize, Int64(WireFormat.maxMessageBytes))
        try router.set(.sendHighWaterMark, 10_000)
        let publisher = try Socket(context: context, type: .xpub)
        try publisher.set(.xpubVerbose, 1)
        try publisher.set(.sendHighWaterMark, 100_000)
        try publisher.set(.maxMessageSize, 1024)
        do {
            try busGuard?.secure(router)
            try busGuard?.secure(publisher)
        } catch {
            throw ShoalError(.invalidInput, "the coordinator's key cannot be used", cause: "\(error)")
        }
        do {
            try router.bind(configuration.controlEndpoint)
            try publisher.bind(configuration.eventsEndpoint)
        } catch {
            throw ShoalError(
                .io, "cannot bind \(configuration.controlEndpoint) and \(configuration.eventsEndpoint)",
                cause: "\(error)")
        }
        let bound = BoundEndpoints(control: try router.lastEndpoint, events: try publisher.lastEndpoint)
        let core = try CoordinatorCore(
            configuration: configuration, journal: journal, logger: logger,
            eventsPort: BoundEndpoints.port(of: bound.events), allowList: busGuard?.allowList, metrics: metrics)
        logger.info("coordinator ready", metadata: ["control": "\(bound.control)", "events": "\(bound.events)"])
        onReady(bound)

        var poller = Poller()
        let routerIndex = poller.add(router)
        let publisherIndex = poller.add(publisher)
        let wakeIndex = poller.add(fileDescriptor: stop.wakeup.fileDescriptor)
        let tickMilliseconds = Int(max(10, min(100, configuration.heartbeatInterval.milliseconds / 4)))
        let perTurn = max(1, configuration.messagesPerTurn)
        var busy = false
        // What thousands of closed connections leave in libzmq's arena goes back to the system.
        var trimmer = HeapTrimmer()
        while !stop.isStopped {
            let timeout = busy ? 0 : min(tickMilliseconds, core.confirmsDueIn.map { Int($0) } ?? tickMilliseconds)
            let ready = try poller.poll(timeoutMilliseconds: timeout)
            if ready[wakeIndex] { stop.wakeup.drain() }
            // A socket is read when the poll found it readable or the last turn left messages there: each read
            // that finds nothing costs libzmq a system call.
            let readRouter = busy || ready[routerIndex]
            let readPublisher = busy || ready[publisherIndex]
            busy = false
            // Bounded turns keep timers, heartbeats and confirms served under
            // load; what is left is read in the next turn, without waiting.
            var handled = 0
            while readRouter, handled < perTurn, let message = try router.receiveMessage(wait: false) {
                core.handleControl(message.frames, userID: message.userID)
                handled += 1
            }
            busy = handled == perTurn
            handled = 0
            while readPublisher, handled < perTurn, let frames = try publisher.receive(wait: false) {
                handled += 1
                guard let first = frames.first, let kind = first.first, kind == 0 || kind == 1 else { continue }
                core.subscriptionChanged(String(decoding: first.dropFirst(), as: UTF8.self), subscribed: kind == 1)
            }
            busy = busy || handled == perTurn
            if let busGuard {
                let revoked = busGuard.reloadIfChanged()
                if !revoked.isEmpty {
                    // ZAP runs only at the handshake: dropping every
                    // connection makes each peer handshake again, and the
                    // revoked ones are refused. The others reconnect at once.
                    try rebind(router, bound.control, logger: logger)
                    try rebind(publisher, bound.events, logger: logger)
                    core.revoke(keys: revoked)
                }
            }
            core.tick()
            if let free = trimmer.tick() {
                logger.debug("free memory handed back to the system", metadata: ["free.mib": "\(free >> 20)"])
            }
            let outgoing: [Outgoing]
            do {
                outgoing = try core.drainOutbox()
            } catch {
                // Nothing of this turn may be sent: it is not recorded.
                logger.critical(
                    "journal write failed, stopping",
                    metadata: ["journal": "\(configuration.journalPath)", "error": "\(error)"])
                throw ShoalError(.io, "cannot write the journal \(configuration.journalPath)", cause: "\(error)")
            }
            busy = busy || core.hasMoreWork
            for message in outgoing {
                switch message {
                case .send(_, let frames):
                    // Never block on a slow or vanished peer: drop, and let the
                    // protocol's resends recover.
                    sendDroppingUnreachable(router, frames, logger: logger)
                case .publish(let frames):
                    try publisher.send(frames, wait: false)
                }
            }
        }
        // Confirms held for more, and whatever the last turn queued, leave before the sockets close: an agent
        // draining for its shutdown is not left waiting for a confirm until its resend or its drain timeout.
        for case .send(_, let frames) in core.takeHeldConfirms() {
            sendDroppingUnreachable(router, frames, logger: logger)
        }
        try? router.set(.linger, 200)
        try? publisher.set(.linger, 200)
        logger.info("coordinator stopped")
    }
}

/// Unbinds an endpoint, which closes the connections accepted there, and
/// binds it again; the unbind completes on libzmq's I/O thread, so the port
/// may be busy for a moment.
/// - Throws: `ShoalError(.io)` when the port cannot be bound again within 5 s.
private func rebind(_ socket: Socket, _ endpoint: String, logger: Logger) throws {
    do {
        try socket.unbind(endpoint)
    } catch {
        logger.error("cannot unbind", metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
        return
    }
    let deadline = ContinuousClock.now + .seconds(5)
    while true {
        do {
            try socket.bind(endpoint)
            logger.info("connections reset after a revocation", metadata: ["endpoint": "\(endpoint)"])
            return
        } catch {
            guard ContinuousClock.now < deadline else {
                throw ShoalError(.io, "cannot bind \(endpoint) again after a revocation", cause: "\(error)")
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }
}

/// Sends on a ROUTER without blocking; a peer that is gone or full is not an error.
private func sendDroppingUnreachable(_ socket: Socket, _ frames: [[UInt8]], logger: Logger) {
    do {
        try socket.send(frames, wait: false)
    } catch {
        logger.debug("peer unreachable", metadata: ["error": "\(error)"])
    }
}
