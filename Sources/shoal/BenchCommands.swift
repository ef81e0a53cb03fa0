import ArgumentParser
import Coordinator
import Foundation
import Protocol
import ShoalSupport
import ZeroMQ

/// `shoal bench ...`: the measuring programs of `make bench` (hidden). The
/// script starts a real coordinator and real `shoal agent bench` processes;
/// these subcommands are the raw libzmq baseline, a process of many idle
/// agents, and the client that submits no-op workloads and times them.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measuring programs of `make bench`.", shouldDisplay: false,
        subcommands: [BenchBaselineCommand.self, BenchIdleAgentsCommand.self, BenchRunCommand.self])
}

/// Raw libzmq on loopback with CURVE, as the bus runs: DEALER/ROUTER round
/// trips, and pipelined messages (sent without waiting) received per second.
struct BenchBaselineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "baseline", abstract: "Raw libzmq figures.")

    @Option(help: "Round trips to time.") var roundTrips = 20_000
    @Option(help: "Pipelined messages to time.") var messages = 500_000
    @Option(help: "Message size in bytes.") var size = 256

    func validate() throws {
        guard (100...10_000_000).contains(roundTrips), (1000...100_000_000).contains(messages),
            (1...1_000_000).contains(size)
        else { throw ValidationError("--round-trips, --messages or --size out of range") }
    }

    func run() async throws {
        let (roundTrips, messages, size) = (self.roundTrips, self.messages, self.size)
        let line = try await runBlocking { try BenchBaselineCommand.measure(roundTrips, messages, size) }
        print(line)
    }

    private static func measure(_ roundTrips: Int, _ messages: Int, _ size: Int) throws -> String {
        let context = Context()
        let server = try CurveKeyPair.generate()
        let client = try CurveKeyPair.generate()
        let ready = DispatchSemaphore(value: 0)
        let endpoint = Locked("")
        let echo = Thread {
            do {
                let router = try Socket(context: context, type: .router)
                try router.set(.curveServer, 1)
                try router.set(.curveSecretKey, server.secretKey)
                try router.set(.receiveHighWaterMark, 0)
                try router.bind("tcp://127.0.0.1:*")
                endpoint.value = try router.lastEndpoint
                ready.signal()
                var counted = 0
                while let frames = try router.receive() {
                    guard frames.count == 2, let kind = frames[1].first else { continue }
                    if kind == UInt8(ascii: "q") { break }
                    if kind == UInt8(ascii: "p") {
                        counted += 1
                        if counted == messages { _ = try router.send([frames[0], Array("done".utf8)]) }
                    } else {
                        _ = try router.send(frames)
                    }
                }
                router.close()
            } catch {
                ready.signal()
            }
        }
        echo.start()
        ready.wait()
        let dealer = try Socket(context: context, type: .dealer)
        try dealer.makeCurveClient(CurveClientKeys(serverPublicKey: server.publicKey, keyPair: client))
        try dealer.set(.sendHighWaterMark, 0)
        try dealer.connect(endpoint.value)
        var payload = [UInt8](repeating: UInt8(ascii: "x"), count: size)
        payload[0] = UInt8(ascii: "r")
        for _ in 0..<200 {
            _ = try dealer.send(payload)
            _ = try dealer.receive()
        }
        let start = ContinuousClock.now
        for _ in 0..<roundTrips {
            _ = try dealer.send(payload)
            _ = try dealer.receive()
        }
        let roundTripTime = ContinuousClock.now - start
        payload[0] = UInt8(ascii: "p")
        let pipelineStart = ContinuousClock.now
        for _ in 0..<messages { _ = try dealer.send(payload) }
        _ = try dealer.receive()
        let pipelineTime = ContinuousClock.now - pipelineStart
        _ = try dealer.send(Array("q".utf8))
        dealer.close()
        while !echo.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        let perSecond = Double(roundTrips) / roundTripTime.seconds
        let pipelined = Double(messages) / pipelineTime.seconds
        return "bench baseline roundtrips_per_s=\(Int(perSecond)) rtt_us=\(format(1e6 / perSecond)) "
            + "pipelined_msgs_per_s=\(Int(pipelined)) size=\(size) curve=on"
    }
}

/// Many idle agents in one process (two connections each): hello, subscription to its own topic, heartbeats;
/// never a step. They keep the agents' rule (protocol.md rule 5): each asks for an idle heartbeat interval in its
/// hello, heartbeats at once after its welcome and then at the interval granted, hears the coordinator's answers,
/// introduces itself again on `rehello`, and says `bye` when the process is stopped (SIGTERM or SIGINT).
struct BenchIdleAgentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "idle-agents", abstract: "Connect idle agents.")

    @Option(help: "The coordinator's control endpoint.") var coordinator: String
    @Option(help: "The coordinator's events endpoint.") var events: String
    @Option(help: "How many agents.") var count = 1000
    @Option(help: "Heartbeat interval each agent asks for while it holds no step, as `shoal agent` does.")
    var idleHeartbeat = ShoalDuration(.seconds(10))
    @OptionGroup var security: ClientSecurityOptions

    func validate() throws {
        guard (1...10_000).contains(count) else { throw ValidationError("--count must be 1-10000") }
        try idleHeartbeat.validate(in: .milliseconds(50) ... .seconds(3600), option: "--idle-heartbeat")
    }

    func run() async throws {
        let curve = try security.curveKeys()
        let (coordinator, events, count) = (self.coordinator, self.events, self.count)
        let idle = Int(idleHeartbeat.duration.seconds * 1000)
        let stopped = Locked(false)
        let sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stopped.value = true }
            source.resume()
            return source
        }
        try await runBlocking {
            try BenchIdleAgentsCommand.serve(coordinator, events, count, idle, curve, stopped: stopped)
        }
        withExtendedLifetime(sources) {}
    }

    private static func serve(
        _ coordinator: String, _ events: String, _ count: Int, _ idle: Int, _ curve: CurveClientKeys?,
        stopped: Locked<Bool>
    ) throws {
        let context = Context(ioThreads: 2, maxSockets: Int32(2 * count + 64))
        var dealers: [Socket] = []
        var subscribers: [Socket] = []
        let prefix = "idle-\(getpid())-"
        func send<Body: Encodable>(_ index: Int, _ type: MessageType, _ body: Body) throws {
            let header = Header(type: type, sender: prefix + String(index))
            _ = try dealers[index].send(Codec.encode(header, body), wait: false)
        }
        func hello(_ index: Int) throws {
            let body = Hello(
                agent: prefix + String(index), role: .docs, host: "bench", pid: getpid(), capacity: 1,
                version: "bench", idleHeartbeatIntervalMilliseconds: idle)
            try send(index, .hello, body)
        }
        for index in 0..<count {
            let dealer = try Socket(context: context, type: .dealer)
            let subscriber = try Socket(context: context, type: .sub)
            if let curve {
                try dealer.makeCurveClient(curve)
                try subscriber.makeCurveClient(curve)
            }
            try dealer.connect(coordinator)
            try subscriber.connect(events)
            try subscriber.subscribe(WireFormat.agentTopic(prefix + String(index)))
            dealers.append(dealer)
            subscribers.append(subscriber)
            try hello(index)
        }
        var welcomed = [Bool](repeating: false, count: count)
        var welcomedCount = 0
        var announced = false
        // The bus's interval until a welcome tells, then the idle interval granted (they never hold a step).
        var interval: Duration = .seconds(1)
        var beat = [Duration](repeating: .seconds(1), count: count)
        var nextBeat = [ContinuousClock.Instant](repeating: .now, count: count)
        for index in 0..<count { nextBeat[index] = .now + interval * (Double(index) / Double(count)) }
        // A turn every 50 ms sends the heartbeats due. The sockets are read every 10th turn only: a poll over
        // thousands of sockets for each answer would cost this process, which shares the machine with the
        // coordinator, more than the coordinator. Nothing is published to these agents: their subscribers are
        // emptied every 2 s.
        var turns = 0
        while !stopped.value {
            let turn = ContinuousClock.now
            turns += 1
            if turns % 10 == 1 {
                for index in 0..<count {
                    while let frames = try dealers[index].receive(wait: false) {
                        guard let envelope = try? Codec.decode(frames[...]) else { continue }
                        switch envelope.header.type {
                        case .welcome:
                            guard let welcome = try? envelope.decode(Welcome.self) else { continue }
                            interval = .milliseconds(welcome.heartbeatIntervalMilliseconds)
                            beat[index] = .milliseconds(welcome.idleHeartbeatIntervalMilliseconds ?? 0)
                            if beat[index] <= interval { beat[index] = interval }
                            // A heartbeat at once, as an agent sends after its welcome; the next one sooner than the
                            // interval, at a random point, so that agents welcomed together do not beat together.
                            try send(index, .heartbeat, Heartbeat())
                            nextBeat[index] = turn + beat[index] * Double.random(in: 0.05..<1)
                            if !welcomed[index] {
                                welcomed[index] = true
                                welcomedCount += 1
                            }
                        case .rehello:
                            if welcomed[index] {
                                welcomed[index] = false
                                welcomedCount -= 1
                            }
                            beat[index] = interval
                            try hello(index)
                        default:
                            break
                        }
                    }
                    if turns % 40 == 1 { while try subscribers[index].receive(wait: false) != nil {} }
                }
            }
            let now = ContinuousClock.now
            for index in 0..<count where nextBeat[index] <= now {
                nextBeat[index] = now + beat[index]
                try send(index, .heartbeat, Heartbeat())
            }
            if !announced && welcomedCount == count {
                announced = true
                print("ready agents=\(count)")
                fflush(nil)
            }
            let pause = turn + .milliseconds(50) - ContinuousClock.now
            if pause > .zero { Thread.sleep(forTimeInterval: pause.seconds) }
        }
        for index in 0..<count where welcomed[index] { try send(index, .bye, Empty()) }
        // The sockets drop what is unsent when closed: give the I/O threads a moment.
        Thread.sleep(forTimeInterval: 0.5)
    }
}

/// Submits one no-op workload (or many one-step workflows) and times it
/// from the events: per-step latency of a chain, throughput, and the
/// coordinator's CPU time meanwhile.
struct BenchRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Time a no-op workload.")

    @Option(help: "The coordinator's control endpoint.") var coordinator: String
    @Option(help: "chain or independent.") var shape = "chain"
    @Option(help: "Steps of the workflow.") var steps = 1000
    @Option(help: "Submit this many one-step workflows instead, and wait for all.") var workflows: Int?
    @Option(help: "The coordinator's pid, for its CPU time.") var coordinatorPid: Int32?
    @Option(help: "The coordinator's events endpoint: subscribed to before the workload is submitted.")
    var events: String?
    @OptionGroup var security: ClientSecurityOptions

    func validate() throws {
        guard shape == "chain" || shape == "independent" else { throw ValidationError("--shape: chain or independent") }
        guard (1...100_000).contains(steps) else { throw ValidationError("--steps must be 1-100000") }
        if let workflows, !(1...1_000_000).contains(workflows) { throw ValidationError("--workflows out of range") }
    }

    func run() async throws {
        let curve = try security.curveKeys()
        let (coordinator, shape, steps, workflows, pid) = (self.coordinator, self.shape, self.steps, self.workflows, self.coordinatorPid)
        let events = self.events
        let line = try await runBlocking {
            let client = try CoordinatorClient(endpoint: coordinator, curve: curve)
            let cpuBefore = pid.map(cpuSeconds) ?? 0
            let started = ContinuousClock.now
            var fields: [String]
            if let workflows {
                fields = try BenchRunCommand.many(client, workflows)
            } else {
                fields = try BenchRunCommand.one(
                    client, coordinator: coordinator, events: events, curve: curve, shape: shape, steps: steps)
            }
            fields.append("wall_s=\(format((ContinuousClock.now - started).seconds))")
            if let pid { fields.append("coordinator_cpu_s=\(format(cpuSeconds(pid) - cpuBefore))") }
            return fields.joined(separator: " ")
        }
        print(line)
    }

    private static func many(_ client: CoordinatorClient, _ count: Int) throws -> [String] {
        let start = ContinuousClock.now
        for _ in 0..<count {
            _ = try client.submit(
                Submit(
                    request: WorkflowRequest(), planner: .bench, planParams: BenchPlanParams(shape: .chain, steps: 1)))
        }
        while try client.stats().running > 0 { Thread.sleep(forTimeInterval: 0.1) }
        let elapsed = (ContinuousClock.now - start).seconds
        let stats = try client.stats()
        return [
            "workflows=\(count)", "workflows_per_s=\(format(Double(count) / elapsed))",
            "coordinator_rss_mib=\(format(Double(stats.residentBytes) / 1_048_576))",
        ]
    }

    private static func one(
        _ client: CoordinatorClient, coordinator: String, events: String?, curve: CurveClientKeys?, shape: String,
        steps: Int
    ) throws -> [String] {
        guard let planShape = BenchPlanParams.Shape(rawValue: shape) else {
            throw ShoalError(.invalidInput, "--shape: chain or independent")
        }
        // One thread receives and time-stamps the events, this one decodes them: an event that is slow to
        // decode (the plan's, which lists every step) does not delay the stamps of those queued behind it.
        // With the events endpoint given, every workflow's events are subscribed to before the submit (the
        // subscription has the plan step's time to arrive), and this workflow's are picked out.
        let inbox = EventInbox()
        func startReceiver(_ endpoint: String, _ topic: String) {
            Thread {
                do {
                    try receiveEvents(endpoint: endpoint, topic: topic, curve: curve, into: inbox)
                } catch {
                    inbox.fail(error)
                }
            }.start()
        }
        defer { inbox.stop() }
        if let events { startReceiver(events, "workflow/") }
        let accepted = try client.submit(
            Submit(
                request: WorkflowRequest(), planner: .bench,
                planParams: BenchPlanParams(shape: planShape, steps: steps)))
        let workflow = accepted.workflow
        if events == nil {
            guard let port = accepted.eventsPort, let colon = coordinator.lastIndex(of: ":") else {
                throw ShoalError(.invalidInput, "the coordinator announced no events port")
            }
            startReceiver("\(coordinator[..<colon]):\(port)", WireFormat.workflowTopic(workflow))
        }
        // Finish times (seconds since `origin`) of each step, as events report them.
        let origin = inbox.origin
        var finished = [Double](repeating: -1, count: steps)
        var planDone: Double?
        var state = WorkflowSnapshot.State.running
        let decoder = JSONDecoder()
        // The status of a big workflow is costly to encode: asked for only when events stop.
        var lastEvent = ContinuousClock.now
        while state == .running {
            let received = try inbox.take(timeout: .milliseconds(200))
            if !received.isEmpty { lastEvent = ContinuousClock.now }
            for (at, body) in received {
                guard let event = BenchEvent.read(body, decoder: decoder), event.workflow == workflow else { continue }
                let now = (at - origin).seconds
                for step in event.steps where step.state.isFinished {
                    if step.name == StepName.plan.wireName {
                        planDone = planDone ?? now
                    } else if case .bench(let index) = StepName(step.name), index < steps, finished[index] < 0 {
                        finished[index] = now
                    }
                }
                state = event.state
            }
            if ContinuousClock.now - lastEvent > .seconds(2) {
                lastEvent = ContinuousClock.now
                state = try client.status(workflow).state
            }
        }
        let end = finished.max() ?? 0
        let begin = planDone ?? finished.first(where: { $0 >= 0 }) ?? 0
        var fields = [
            "steps=\(steps)", "state=\(state.rawValue)",
            "steps_per_s=\(format(Double(steps) / max(1e-9, end - begin)))",
        ]
        if shape == "chain" {
            var gaps: [Double] = []
            var previous = begin
            for time in finished where time >= 0 {
                gaps.append(time - previous)
                previous = time
            }
            gaps.sort()
            if !gaps.isEmpty {
                fields.append("p50_ms=\(format(gaps[gaps.count / 2] * 1000))")
                fields.append("p99_ms=\(format(gaps[min(gaps.count - 1, gaps.count * 99 / 100)] * 1000))")
                let head = gaps.count >= 100 ? Array(finished.prefix(50)) : []
                let tail = gaps.count >= 100 ? Array(finished.suffix(51)) : []
                if head.count == 50, head.allSatisfy({ $0 >= 0 }), tail.allSatisfy({ $0 >= 0 }) {
                    fields.append("first50_ms=\(format((head[49] - begin) * 1000 / 50))")
                    fields.append("last50_ms=\(format((tail[50] - tail[0]) * 1000 / 50))")
                }
                // Mean time a step in each quarter of the chain: equal when the cost per step is constant.
                if finished.count >= 8, finished.allSatisfy({ $0 >= 0 }) {
                    let quarter = finished.count / 4
                    let means = (0..<4).map { part in
                        let first = part * quarter
                        let last = part == 3 ? finished.count - 1 : first + quarter
                        return format((finished[last] - finished[first]) * 1000 / Double(last - first))
                    }
                    fields.append("quarters_ms=\(means.joined(separator: ","))")
                }
            }
        }
        return fields
    }
}

/// What `bench run` reads of an event: the workflow's state and the states of the steps that changed.
private struct BenchEvent: Decodable {
    struct Step: Decodable {
        var name: String
        var state: StepSnapshot.State
    }
    var workflow: String
    var state: WorkflowSnapshot.State
    var steps: [Step]

    /// The quick reader first: the bench's client must take little of the CPU that the coordinator and the
    /// agents it measures share with it (with `JSONDecoder`, a tenth of the machine in a pipelined run).
    static func read(_ body: Data, decoder: JSONDecoder) -> BenchEvent? {
        if let value = JSONReader.parse([UInt8](body)), let workflow = value["workflow"]?.stringValue,
            let state = value["state"]?.stringValue.flatMap(WorkflowSnapshot.State.init(rawValue:)),
            let list = value["steps"]?.arrayValue
        {
            var steps: [Step] = []
            steps.reserveCapacity(list.count)
            for step in list {
                guard let name = step["name"]?.stringValue,
                    let state = step["state"]?.stringValue.flatMap(StepSnapshot.State.init(rawValue:))
                else { return try? decoder.decode(BenchEvent.self, from: body) }
                steps.append(Step(name: name, state: state))
            }
            return BenchEvent(workflow: workflow, state: state, steps: steps)
        }
        return try? decoder.decode(BenchEvent.self, from: body)
    }
}

/// Receives a workflow's events until `inbox` is stopped; each body is stamped when it arrives. The socket lives
/// on this thread only.
private func receiveEvents(endpoint: String, topic: String, curve: CurveClientKeys?, into inbox: EventInbox) throws {
    let context = Context()
    let subscriber = try Socket(context: context, type: .sub)
    try subscriber.set(.maxMessageSize, Int64(WireFormat.maxMessageBytes))
    try subscriber.set(.receiveHighWaterMark, 0)
    if let curve { try subscriber.makeCurveClient(curve) }
    try subscriber.connect(endpoint)
    try subscriber.subscribe(topic)
    defer { subscriber.close() }
    while !inbox.isStopped {
        var poller = Poller()
        poller.add(subscriber)
        guard try poller.poll(timeoutMilliseconds: 50)[0] else { continue }
        while let frames = try subscriber.receive(wait: false) {
            let at = ContinuousClock.now
            guard frames.count == 3 else { continue }
            inbox.post(at, Data(frames[2]))
        }
    }
}

/// Stamped event bodies handed from the receiving thread to the decoding one.
private final class EventInbox: @unchecked Sendable {  // `items`, `stopped` and `failure` are guarded by `condition`
    let origin = ContinuousClock.now
    private let condition = NSCondition()
    private var items: [(ContinuousClock.Instant, Data)] = []
    private var stopped = false
    private var failure: (any Error)?

    var isStopped: Bool { condition.withLock { stopped } }

    func post(_ at: ContinuousClock.Instant, _ body: Data) {
        condition.withLock {
            items.append((at, body))
            condition.signal()
        }
    }

    func fail(_ error: any Error) {
        condition.withLock {
            failure = error
            condition.signal()
        }
    }

    func stop() { condition.withLock { stopped = true } }

    /// What arrived, waiting up to `timeout` for something.
    /// - Throws: the receiving thread's error.
    func take(timeout: Duration) throws -> [(ContinuousClock.Instant, Data)] {
        try condition.withLock {
            if items.isEmpty && failure == nil {
                _ = condition.wait(until: Date(timeIntervalSinceNow: timeout.seconds))
            }
            if let failure { throw failure }
            defer { items = [] }
            return items
        }
    }
}

/// A process's CPU time (every thread), from the scheduler's statistics in /proc.
func cpuSeconds(_ pid: Int32) -> Double {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
    var nanoseconds = 0.0
    for task in tasks {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/schedstat", encoding: .utf8),
            let first = text.split(separator: " ").first, let value = Double(first)
        else { continue }
        nanoseconds += value
    }
    return nanoseconds / 1e9
}

private func format(_ value: Double) -> String {
    String(format: value < 10 ? "%.3f" : "%.1f", value)
}

extension Duration {
    fileprivate var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) / 1e18
    }
}

/// A value handed from one thread to another, behind a lock.
private final class Locked<Value: Sendable>: @unchecked Sendable {  // `stored` is guarded by `lock`
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
