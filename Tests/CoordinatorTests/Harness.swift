import Foundation
import Logging
import Testing

@testable import Coordinator
@testable import Protocol
@testable import ZeroMQ

/// A coordinator running in this process on loopback, with a fresh journal.
final class TestCoordinator: Sendable {
    let endpoints: BoundEndpoints
    let directory: String
    private let task: Task<Void, any Error>

    static func start(_ tweak: (inout CoordinatorConfiguration) -> Void = { _ in }) async throws -> TestCoordinator {
        let directory = NSTemporaryDirectory() + "shoal-test-\(UUID().uuidString)"
        var configuration = CoordinatorConfiguration()
        configuration.controlEndpoint = "tcp://127.0.0.1:*"
        configuration.eventsEndpoint = "tcp://127.0.0.1:*"
        configuration.journalPath = directory + "/journal.sqlite"
        configuration.outputDirectory = directory + "/output"
        configuration.heartbeatInterval = .milliseconds(100)
        configuration.ackTimeout = .milliseconds(300)
        tweak(&configuration)
        let (stream, continuation) = AsyncStream.makeStream(of: BoundEndpoints.self)
        let service = CoordinatorService(configuration: configuration, logger: Logger(label: "test.coordinator")) {
            continuation.yield($0)
        }
        let task = Task { try await service.run() }
        var iterator = stream.makeAsyncIterator()
        guard let endpoints = await iterator.next() else { throw ShoalTestError("coordinator did not start") }
        return TestCoordinator(endpoints: endpoints, directory: directory, task: task)
    }

    private init(endpoints: BoundEndpoints, directory: String, task: Task<Void, any Error>) {
        self.endpoints = endpoints
        self.directory = directory
        self.task = task
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
    private var lastHeartbeat = ContinuousClock.now
    /// Control messages received while waiting for something else.
    var controlInbox: [Envelope] = []

    init(id: String, role: Role, coordinator: TestCoordinator, context: Context) throws {
        self.id = id
        self.role = role
        dealer = try Socket(context: context, type: .dealer)
        try dealer.connect(coordinator.endpoints.control)
        subscriber = try Socket(context: context, type: .sub)
        try subscriber.connect(coordinator.endpoints.events)
    }

    /// Hello, welcome, then the subscription to its own topic.
    func sendHello() throws {
        try send(Header(type: .hello, sender: id), Hello(agent: id, role: role, host: "test", pid: 1, capacity: 1, version: "test"))
    }

    func join() async throws {
        try sendHello()
        let welcome = try #require(try await waitControl(.welcome))
        #expect(try welcome.decode(Welcome.self).eventsPort != nil)
        try subscriber.subscribe(WireFormat.agentTopic(id))
    }

    func send<Body: Encodable>(_ header: Header, _ body: Body) throws {
        try dealer.send(Codec.encode(header, body))
    }

    func ack(_ key: StepKey) throws {
        try send(Header(type: .ack, workflow: key.workflow, step: key.step, attempt: key.attempt, sender: id), Empty())
    }

    func result(_ key: StepKey, values: [String: JSONValue] = [:], outcome: StepOutcome = .succeeded) throws {
        let result = StepResult(
            outcome: outcome, output: StepOutput(summary: "done by \(id)", values: values), error: outcome == .failed ? "boom" : nil,
            agent: id, host: "test", pid: 1, startedAt: 0, finishedAt: 0)
        try send(Header(type: .result, workflow: key.workflow, step: key.step, attempt: key.attempt, sender: id), result)
    }

    /// Serves the sockets until `until` returns a value or the deadline
    /// passes; heartbeats keep going meanwhile unless switched off.
    func pump<T>(timeout: Duration = .seconds(15), until: (_ step: (Header, StepAssignment)?, _ control: Envelope?) throws -> T?) async throws -> T? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if heartbeats && ContinuousClock.now - lastHeartbeat > .milliseconds(50) {
                lastHeartbeat = ContinuousClock.now
                try send(Header(type: .heartbeat, sender: id), Heartbeat())
            }
            var poller = Poller()
            poller.add(dealer)
            poller.add(subscriber)
            // Poll without blocking and sleep as a task: a blocked cooperative
            // thread would starve the services under test.
            let ready = try poller.poll(timeoutMilliseconds: 0)
            if !ready.contains(true) {
                try await Task.sleep(for: .milliseconds(5))
                continue
            }
            if ready[0], let frames = try dealer.receive(wait: false), let envelope = try? Codec.decode(frames[...]) {
                if let value = try until(nil, envelope) { return value }
                // Forgotten (a slow test machine can miss a liveness window): introduce itself again.
                if envelope.header.type == .rehello { try sendHello() }
                controlInbox.append(envelope)
            }
            if ready[1], let frames = try subscriber.receive(wait: false) {
                let envelope = try Codec.decode(frames.dropFirst())
                if envelope.header.type == .step, let value = try until((envelope.header, try envelope.decode(StepAssignment.self)), nil) {
                    return value
                }
            }
        }
        return nil
    }

    func waitStep(timeout: Duration = .seconds(15)) async throws -> (key: StepKey, assignment: StepAssignment)? {
        try await pump(timeout: timeout) { step, _ in step.map { ($0.0.stepKey!, $0.1) } }
    }

    func waitControl(_ type: MessageType, timeout: Duration = .seconds(15)) async throws -> Envelope? {
        if let index = controlInbox.firstIndex(where: { $0.header.type == type }) { return controlInbox.remove(at: index) }
        return try await pump(timeout: timeout) { _, control in control?.header.type == type ? control : nil }
    }
}

/// An empty plan, so a workflow ends after its plan step.
let emptyPlan: JSONValue = ["steps": []]

