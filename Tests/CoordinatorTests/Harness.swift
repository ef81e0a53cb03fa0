import Foundation
import Logging
import Testing

@testable import Coordinator
@testable import Protocol
@testable import ZeroMQ

/// A coordinator running in this process on loopback, with a fresh journal.
/// CURVE is on unless `secure` is false: the coordinator has its own key,
/// and its allow-list holds `peerKeys` (shared by every test peer that does
/// not bring its own) plus whatever the test allows.
final class TestCoordinator: Sendable {
    let endpoints: BoundEndpoints
    let directory: String
    /// The coordinator's public key; nil on a plain-TCP bus.
    let serverKey: String?
    /// The key pair of test peers that bring none.
    let peerKeys: CurveKeyPair
    let logs: CapturedLogs
    private let task: Task<Void, any Error>

    var allowDirectory: String { directory + "/allow" }

    static func start(
        secure: Bool = true, allowing extra: [String: CurveKeyPair] = [:],
        _ tweak: (inout CoordinatorConfiguration) -> Void = { _ in }
    ) async throws -> TestCoordinator {
        let directory = NSTemporaryDirectory() + "shoal-test-\(UUID().uuidString)"
        let peerKeys = try CurveKeyPair.generate()
        let serverKeys = try CurveKeyPair.generate()
        var configuration = CoordinatorConfiguration()
        if secure {
            var security = CoordinatorSecurity(keyPair: serverKeys, allowDirectory: directory + "/allow")
            security.reloadInterval = .milliseconds(50)
            configuration.security = security
            try FileManager.default.createDirectory(atPath: directory + "/allow", withIntermediateDirectories: true)
            for (name, pair) in extra.merging(["test-peers": peerKeys], uniquingKeysWith: { first, _ in first }) {
                try KeyFile.writePublic(
                    .init(name: name, publicKey: pair.publicKey), to: "\(directory)/allow/\(name).pub")
            }
        }
        configuration.controlEndpoint = "tcp://127.0.0.1:*"
        configuration.eventsEndpoint = "tcp://127.0.0.1:*"
        configuration.journalPath = directory + "/journal.sqlite"
        configuration.outputDirectory = directory + "/output"
        configuration.heartbeatInterval = .milliseconds(100)
        configuration.ackTimeout = .milliseconds(300)
        tweak(&configuration)
        let (stream, continuation) = AsyncStream.makeStream(of: BoundEndpoints.self)
        let logs = CapturedLogs()
        let logger = Logger(label: "test.coordinator") { _ in CapturingLogHandler(logs: logs) }
        let service = CoordinatorService(configuration: configuration, logger: logger) {
            continuation.yield($0)
        }
        let task = Task { try await service.run() }
        var iterator = stream.makeAsyncIterator()
        guard let endpoints = await iterator.next() else { throw ShoalTestError("coordinator did not start") }
        return TestCoordinator(
            endpoints: endpoints, directory: directory, serverKey: secure ? serverKeys.publicKey : nil,
            peerKeys: peerKeys, logs: logs, task: task)
    }

    private init(
        endpoints: BoundEndpoints, directory: String, serverKey: String?, peerKeys: CurveKeyPair, logs: CapturedLogs,
        task: Task<Void, any Error>
    ) {
        self.endpoints = endpoints
        self.directory = directory
        self.serverKey = serverKey
        self.peerKeys = peerKeys
        self.logs = logs
        self.task = task
    }

    /// Client keys for a peer with `pair` (the shared test key by default); nil on a plain-TCP bus.
    func curve(_ pair: CurveKeyPair? = nil) -> CurveClientKeys? {
        serverKey.map { CurveClientKeys(serverPublicKey: $0, keyPair: pair ?? peerKeys) }
    }

    /// A client with the shared test key.
    func client(_ context: Context) throws -> CoordinatorClient {
        try CoordinatorClient(endpoint: endpoints.control, curve: curve(), context: context)
    }

    /// A raw DEALER connected to the control socket with the shared test key.
    func dealer(_ context: Context) throws -> Socket {
        let dealer = try Socket(context: context, type: .dealer)
        if let keys = curve() { try dealer.makeCurveClient(keys) }
        try dealer.connect(endpoints.control)
        return dealer
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
    }

    var journal: Journal { get throws { try Journal(path: directory + "/journal.sqlite") } }
}

struct ShoalTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// An agent made of raw sockets, so a test can break the rules on purpose
/// (drop an ack, stop heartbeats, send garbage).
final class RawAgent {
    let id: String
    let role: Role
    let dealer: Socket
    let subscriber: Socket
    var heartbeats = true
    /// The idle heartbeat interval its hello asks for (nil: none, heartbeats at the bus's interval).
    var idleHeartbeat: Int?
    /// Steps it says it runs at once (hello).
    var capacity = 1
    /// The process id its hello gives: another one under the same id is a restarted agent.
    var pid: Int32 = 1
    private var lastHeartbeat = ContinuousClock.now
    /// Control messages received while waiting for something else.
    var controlInbox: [Envelope] = []
    /// Steps of a batch not looked at yet.
    private var stepInbox: [(Header, StepAssignment)] = []

    /// - Parameter keys: its own key pair; the coordinator's shared test key when nil.
    init(id: String, role: Role, coordinator: TestCoordinator, context: Context, keys: CurveKeyPair? = nil) throws {
        self.id = id
        self.role = role
        dealer = try Socket(context: context, type: .dealer)
        subscriber = try Socket(context: context, type: .sub)
        if let curve = coordinator.curve(keys) {
            try dealer.makeCurveClient(curve)
            try subscriber.makeCurveClient(curve)
        }
        try dealer.connect(coordinator.endpoints.control)
        try subscriber.connect(coordinator.endpoints.events)
    }

    /// Hello, welcome, then the subscription to its own topic.
    func sendHello() throws {
        let hello = Hello(
            agent: id, role: role, host: "test", pid: pid, capacity: capacity, version: "test",
            idleHeartbeatIntervalMilliseconds: idleHeartbeat)
        try send(Header(type: .hello, sender: id), hello)
    }

    func join() throws {
        try sendHello()
        let welcome = try #require(try waitControl(.welcome))
        #expect(try welcome.decode(Welcome.self).eventsPort != nil)
        try subscriber.subscribe(WireFormat.agentTopic(id))
    }

    /// Steps acknowledged and not answered yet, which its heartbeats list as a real agent's do.
    var running: Set<StepKey> = []

    /// Never blocks: a refused peer has no connection to queue on.
    func send<Body: Encodable>(_ header: Header, _ body: Body) throws {
        if let key = header.stepKey {
            if header.type == .ack { running.insert(key) }
            if header.type == .result { running.remove(key) }
        }
        _ = try dealer.send(Codec.encode(header, body), wait: false)
    }

    func ack(_ key: StepKey) throws {
        try send(Header(type: .ack, workflow: key.workflow, step: key.step, attempt: key.attempt, sender: id), Empty())
    }

    /// One `ack` listing several steps (v4).
    func ack(_ keys: [StepKey]) throws {
        running.formUnion(keys)
        _ = try dealer.send(Codec.frames(Header(type: .ack, sender: id), body: KeyList(keys: keys).compactJSON), wait: false)
    }

    /// The keys a `confirm` confirms: the one its header names, or those its body lists.
    func confirmed(_ confirm: Envelope) throws -> [StepKey] {
        if let key = confirm.header.stepKey { return [key] }
        return try KeyList.decode(confirm.body).keys
    }

    func result(_ key: StepKey, values: [String: JSONValue] = [:], outcome: StepOutcome = .succeeded) throws {
        let result = StepResult(
            outcome: outcome, output: StepOutput(summary: "done by \(id)", values: values), error: outcome == .failed ? "boom" : nil,
            agent: id, host: "test", pid: 1, startedAt: 0, finishedAt: 0)
        try send(Header(type: .result, workflow: key.workflow, step: key.step, attempt: key.attempt, sender: id), result)
    }

    /// Serves the sockets until `until` returns a value or the deadline
    /// passes; heartbeats keep going meanwhile unless switched off.
    func pump<T>(timeout: Duration = .seconds(15), until: (_ step: (Header, StepAssignment)?, _ control: Envelope?) throws -> T?) throws -> T? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if heartbeats && ContinuousClock.now - lastHeartbeat > .milliseconds(50) {
                lastHeartbeat = ContinuousClock.now
                try send(
                    Header(type: .heartbeat, sender: id),
                    Heartbeat(inFlight: running.sorted { $0.description < $1.description }))
            }
            var poller = Poller()
            poller.add(dealer)
            poller.add(subscriber)
            let ready = try poller.poll(timeoutMilliseconds: 20)
            if ready[0], let frames = try dealer.receive(wait: false), let envelope = try? Codec.decode(frames[...]) {
                if let value = try until(nil, envelope) { return value }
                // Forgotten (a slow test machine can miss a liveness window): introduce itself again.
                if envelope.header.type == .rehello { try sendHello() }
                controlInbox.append(envelope)
            }
            if ready[1], let frames = try subscriber.receive(wait: false) {
                let envelope = try Codec.decode(frames.dropFirst())
                if envelope.header.type == .step {
                    if envelope.header.stepKey != nil {
                        stepInbox.append((envelope.header, try envelope.decode(StepAssignment.self)))
                    } else {
                        // Several steps of one workflow in one message (v4).
                        for (key, assignment) in try StepBatch.decode(envelope.body, workflow: envelope.header.workflow ?? "") {
                            stepInbox.append(
                                (Header(type: .step, workflow: key.workflow, step: key.step, attempt: key.attempt), assignment))
                        }
                    }
                }
            }
            while !stepInbox.isEmpty {
                let step = stepInbox.removeFirst()
                if let value = try until(step, nil) { return value }
            }
        }
        return nil
    }

    func waitStep(timeout: Duration = .seconds(15)) throws -> (key: StepKey, assignment: StepAssignment)? {
        try pump(timeout: timeout) { step, _ in step.map { ($0.0.stepKey!, $0.1) } }
    }

    func waitControl(_ type: MessageType, timeout: Duration = .seconds(15)) throws -> Envelope? {
        if let index = controlInbox.firstIndex(where: { $0.header.type == type }) { return controlInbox.remove(at: index) }
        return try pump(timeout: timeout) { _, control in control?.header.type == type ? control : nil }
    }
}

/// Log records, kept for tests to assert on.
final class CapturedLogs: @unchecked Sendable {  // `records` is guarded by `lock`
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let lock = NSLock()
    private var records: [Record] = []

    func append(_ record: Record) { lock.withLock { records.append(record) } }
    var all: [Record] { lock.withLock { records } }

    /// Waits until a record matching `predicate` is logged, or the deadline
    /// passes; blocking, for code that runs `onOwnThread`.
    func waitBlocking(timeout: Duration = .seconds(5), for predicate: (Record) -> Bool) -> Record? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let found = all.first(where: predicate) { return found }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return nil
    }
}

struct CapturingLogHandler: LogHandler {
    let logs: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var flat: [String: String] = [:]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new }) {
            flat[key] = "\(value)"
        }
        logs.append(.init(level: event.level, message: "\(event.message)", metadata: flat))
    }
}

/// Runs blocking socket code (the raw agents' `pump`) on a thread of its
/// own: it must not hold a thread of the small cooperative pool that the
/// coordinator and other tests need. It stays in the test's task, so
/// expectations are attributed to the test.
func onOwnThread<T: Sendable>(_ body: @Sendable () throws -> T) async throws -> T {
    try await withTaskExecutorPreference(DedicatedThreadExecutor()) { try body() }
}

/// A task executor with a serial dispatch queue, whose thread is not one of
/// the cooperative pool's.
final class DedicatedThreadExecutor: TaskExecutor {
    private let queue = DispatchQueue(label: "shoal-test-blocking")

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}

/// An empty plan, so a workflow ends after its plan step.
let emptyPlan: JSONValue = ["steps": []]

/// The `sqlite3` shell, for tests that change a journal the way an older coordinator left it; nil (a visible skip,
/// a failure in CI) where it is not installed.
struct SQLiteShell {
    let path: String

    init?(test: String = #function) {
        guard let found = ["/usr/bin/sqlite3", "/usr/local/bin/sqlite3"].first(where: {
            FileManager.default.isExecutableFile(atPath: $0)
        }) else {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("sqlite3 is needed in CI") }
            print("skipped \(test): sqlite3 not installed (apt-get install sqlite3)")
            return nil
        }
        path = found
    }

    /// Runs `sql` on the database at `database`; what it printed. An exit other than 0 is a test failure.
    @discardableResult
    func run(_ database: String, _ sql: String) throws -> String {
        let process = Process()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = [database, sql]
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "sqlite3 \(sql)")
        return String(decoding: data, as: UTF8.self)
    }
}
