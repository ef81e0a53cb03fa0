import CoreMetrics
import FlyingFox
import FlyingSocks
import Foundation
import Logging
import Prometheus
import Protocol
import ShoalSupport
import Synchronization

/// The coordinator's Prometheus metrics, updated by the core on its one
/// thread from what it already tracks: nothing is scanned per message.
///
/// The instruments are swift-metrics types over handlers that the
/// Prometheus registry makes with help text (swift-metrics' factory API
/// carries none, and `promtool check metrics` wants a `# HELP` per family).
/// The registry is thread safe: the HTTP server reads it while the core
/// writes.
final class CoordinatorMetrics {
    let registry: PrometheusCollectorRegistry

    /// A family's full name (its unit already in it) and its help line.
    static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    static let stepBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120),
        .seconds(300), .seconds(600), .seconds(1800), .seconds(3600),
    ]
    static let commitBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .seconds(1),
    ]
    /// Agent states as the metrics show them: `connecting` until its
    /// subscription is seen, then `idle`, `busy` or `full` (at capacity).
    static let agentStates = ["connecting", "idle", "busy", "full"]
    /// Distinct step kinds kept apart at most; more share the kind `other`.
    static let maxStepKinds = 64

    private static let workflowStates: [WorkflowSnapshot.State] = [
        .running, .succeeded, .failed, .cancelled, .destroyed,
    ]

    private var workflowGauges: [WorkflowSnapshot.State: Meter] = [:]
    private var workflowCounts: [WorkflowSnapshot.State: Int] = [:]
    /// The last state seen of each workflow in memory.
    private var known: [String: WorkflowSnapshot.State] = [:]
    private var stepTimers: [String: CoreMetrics.Timer] = [:]
    private var stepKinds: Set<String> = []
    private var agentGauges: [String: Meter] = [:]
    private var rejections: [RejectReason: CoreMetrics.Counter] = [:]
    private var readyGauges: [Role: Meter] = [:]
    private let commitTimer: CoreMetrics.Timer
    private var recountDue = false

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        commitTimer = CoreMetrics.Timer(
            label: "shoal_journal_commit_duration_seconds", dimensions: [],
            handler: registry.makeDurationHistogram(
                descriptor: CoordinatorMetrics.descriptor(
                    "shoal_journal_commit_duration_seconds",
                    "Time to commit one loop turn's changes to the journal (one SQLite transaction)."),
                buckets: CoordinatorMetrics.commitBuckets))
        for state in CoordinatorMetrics.workflowStates {
            let labels = [("state", state.rawValue)]
            workflowGauges[state] = Meter(
                label: "shoal_workflows", dimensions: labels,
                handler: registry.makeGauge(
                    descriptor: CoordinatorMetrics.descriptor("shoal_workflows", "Workflows in the journal, by state."),
                    labels: labels))
        }
        for role in Role.allCases {
            let labels = [("role", role.rawValue)]
            readyGauges[role] = Meter(
                label: "shoal_ready_steps", dimensions: labels,
                handler: registry.makeGauge(
                    descriptor: CoordinatorMetrics.descriptor(
                        "shoal_ready_steps", "Steps ready to run and waiting for an agent of their role (the queue depth)."),
                    labels: labels))
            for state in CoordinatorMetrics.agentStates {
                let labels = [("role", role.rawValue), ("state", state)]
                agentGauges["\(role.rawValue)/\(state)"] = Meter(
                    label: "shoal_agents", dimensions: labels,
                    handler: registry.makeGauge(
                        descriptor: CoordinatorMetrics.descriptor("shoal_agents", "Live agents, by role and state."),
                        labels: labels))
            }
        }
        for reason in RejectReason.allCases {
            let labels = [("reason", reason.rawValue)]
            rejections[reason] = CoreMetrics.Counter(
                label: "shoal_rejected_frames_total", dimensions: labels,
                handler: registry.makeCounter(
                    descriptor: CoordinatorMetrics.descriptor(
                        "shoal_rejected_frames_total", "Frames the coordinator refused, by reason."),
                    labels: labels))
        }
    }

    // MARK: Workflows

    /// The journal's counts at start, and the workflows resumed into memory.
    func start(counts: [WorkflowSnapshot.State: Int], running: [String]) {
        workflowCounts = counts
        for id in running { known[id] = .running }
        publishWorkflowCounts()
    }

    /// A workflow changed this turn (it may be new, or leaving memory).
    func workflow(_ id: String, state: WorkflowSnapshot.State, inMemory: Bool) {
        let previous = known[id]
        if previous != state {
            if let previous { workflowCounts[previous, default: 0] -= 1 }
            workflowCounts[state, default: 0] += 1
            workflowGauges[state]?.set(workflowCounts[state, default: 0])
            if let previous { workflowGauges[previous]?.set(workflowCounts[previous, default: 0]) }
        }
        known[id] = inMemory ? state : nil
    }

    /// A finished workflow is being resumed: it comes back into memory from
    /// the journal in `state`.
    func resuming(_ id: String, from state: WorkflowSnapshot.State) {
        if known[id] == nil { known[id] = state }
    }

    /// Workflows were deleted from the journal: count again after the commit.
    func pruned() {
        recountDue = true
    }

    /// After a commit: a full count when a prune made one due (at most once a minute).
    func committed(_ journal: Journal, logger: Logger) {
        guard recountDue else { return }
        recountDue = false
        do {
            workflowCounts = try journal.workflowCounts()
            publishWorkflowCounts()
        } catch {
            logger.error("journal read failed", metadata: ["error": "\(error)"])
        }
    }

    private func publishWorkflowCounts() {
        for (state, gauge) in workflowGauges { gauge.set(workflowCounts[state, default: 0]) }
    }

    // MARK: Steps, frames, journal

    /// A step finished on an agent: its run time, by role, kind (the name
    /// before any `/`: `validate/nodes` is a `validate`) and outcome.
    func stepFinished(_ step: StepSnapshot) {
        guard let started = step.startedAt, let finished = step.finishedAt else { return }
        var kind = step.role == .bench ? "bench" : String(step.name.split(separator: "/").first ?? "")
        if !stepKinds.contains(kind) {
            if stepKinds.count < CoordinatorMetrics.maxStepKinds { stepKinds.insert(kind) } else { kind = "other" }
        }
        let outcome = step.state == .succeeded ? "succeeded" : "failed"
        let key = "\(step.role.rawValue)/\(kind)/\(outcome)"
        let timer: CoreMetrics.Timer
        if let known = stepTimers[key] {
            timer = known
        } else {
            let labels = [("role", step.role.rawValue), ("step", kind), ("outcome", outcome)]
            timer = CoreMetrics.Timer(
                label: "shoal_step_duration_seconds", dimensions: labels,
                handler: registry.makeDurationHistogram(
                    descriptor: CoordinatorMetrics.descriptor(
                        "shoal_step_duration_seconds",
                        "Run time of finished steps, from the agent's ack to its result, by role and step kind."),
                    labels: labels, buckets: CoordinatorMetrics.stepBuckets))
            stepTimers[key] = timer
        }
        timer.recordMilliseconds(max(0, finished - started))
    }

    func rejected(_ reason: RejectReason) {
        rejections[reason]?.increment()
    }

    func journalCommit(took duration: Duration) {
        commitTimer.recordNanoseconds(
            duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    // MARK: Gauges refreshed once per heartbeat interval

    /// Agents by role and state, from the registry (once per heartbeat
    /// interval, when the core walks every agent anyway).
    func agents(_ registry: AgentRegistry) {
        var counts: [String: Int] = [:]
        for agent in registry.agents.values {
            let state: String
            if !registry.isReachable(agent.id) {
                state = "connecting"
            } else if agent.inFlight.isEmpty {
                state = "idle"
            } else {
                state = agent.hasCapacity ? "busy" : "full"
            }
            counts["\(agent.hello.role.rawValue)/\(state)", default: 0] += 1
        }
        for (key, gauge) in agentGauges { gauge.set(counts[key, default: 0]) }
    }

    /// Queue depth per role.
    func readySteps(_ depth: (Role) -> Int) {
        for (role, gauge) in readyGauges { gauge.set(depth(role)) }
    }
}

/// Serves a Prometheus registry at `/metrics` over HTTP (FlyingFox).
public struct MetricsServer: Sendable {
    /// The address to listen on: `HOST:PORT` with an IPv4 host, port 0 for any.
    public struct Listen: Sendable, Equatable {
        public var host: String
        public var port: UInt16

        /// - Throws: `ShoalError(.invalidInput)` unless `text` is `IPV4:PORT`.
        public init(parsing text: String) throws {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let port = UInt16(parts[1]),
                (try? sockaddr_in.inet(ip4: String(parts[0]), port: port)) != nil
            else {
                throw ShoalError(
                    .invalidInput, "the metrics address must be IPV4:PORT, e.g. 127.0.0.1:9464 or 0.0.0.0:9464",
                    cause: String(text.prefix(80)))
            }
            host = String(parts[0])
            self.port = port
        }
    }

    public let listen: Listen
    let registry: PrometheusCollectorRegistry
    let logger: Logger

    public init(listen: Listen, logger: Logger) {
        self.listen = listen
        self.registry = PrometheusCollectorRegistry()
        self.logger = logger
    }

    /// Runs the server while `body` runs, and stops it when `body` returns.
    /// - Parameter body: gets the registry to fill and the bound address (`host:port`).
    /// - Throws: `ShoalError(.io)` when the address cannot be listened on; what `body` throws.
    func serving<T: Sendable>(
        _ body: @escaping @Sendable (PrometheusCollectorRegistry, String) async throws -> T
    ) async throws -> T {
        let registry = registry
        let server = HTTPServer(
            address: try sockaddr_in.inet(ip4: listen.host, port: listen.port), logger: FlyingFoxLogger(logger: logger))
        await server.appendRoute("GET /metrics") { _ in
            HTTPResponse(
                statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: Data(registry.emitToBuffer()))
        }
        let failure = FailureBox()
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                do {
                    try await server.run()
                } catch {
                    failure.value.withLock { $0 = "\(error)" }
                    throw error
                }
                return nil
            }
            let deadline = ContinuousClock.now + .seconds(5)
            var bound: Socket.Address?
            while bound == nil {
                bound = await server.listeningAddress
                if bound != nil { break }
                if let cause = failure.value.withLock({ $0 }) ?? (ContinuousClock.now > deadline ? "timed out" : nil) {
                    group.cancelAll()
                    throw ShoalError(.io, "cannot listen for metrics on \(listen.host):\(listen.port)", cause: cause)
                }
                try await Task.sleep(for: .milliseconds(5))
            }
            var address = "\(listen.host):\(listen.port)"
            if case .ip4(let host, let port) = bound { address = "\(host):\(port)" }
            logger.info("metrics listening", metadata: ["address": "\(address)"])
            let result = try await body(registry, address)
            await server.stop(timeout: 1)
            group.cancelAll()
            return result
        }
    }
}

/// Why the server stopped, as the task that ran it saw it.
private final class FailureBox: Sendable {
    let value = Mutex<String?>(nil)
}

/// FlyingFox's log lines into swift-log, at debug (a library logs at debug).
private struct FlyingFoxLogger: FlyingSocks.Logging {
    let logger: Logger

    func logDebug(_ debug: @autoclosure () -> String) { logger.debug("http", metadata: ["detail": "\(debug())"]) }
    func logInfo(_ info: @autoclosure () -> String) { logger.debug("http", metadata: ["detail": "\(info())"]) }
    func logWarning(_ warning: @autoclosure () -> String) {
        logger.debug("http", metadata: ["detail": "\(warning())"])
    }
    func logError(_ error: @autoclosure () -> String) { logger.debug("http", metadata: ["detail": "\(error())"]) }
    func logCritical(_ critical: @autoclosure () -> String) {
        logger.debug("http", metadata: ["detail": "\(critical())"])
    }
}
