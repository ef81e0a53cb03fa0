import Coordinator
import Foundation
import Protocol
import ShoalSupport
import Testing
import ZeroMQ

/// Malformed frames of every kind, by the hundred thousand.
enum Garbage {
    /// The i-th malformed `[header, body]` message (or wrong frame count), cycling through the kinds.
    static func frames(_ index: Int, workflow: String, generator: inout SystemRandomNumberGenerator) -> [[UInt8]] {
        func random(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) } }
        let body = Array("{}".utf8)
        let result = Array(#"{"outcome":"succeeded","output":{"summary":"","values":{},"artifacts":[],"log":[]},"agent":"intruder","host":"x","pid":1,"startedAt":0,"finishedAt":0}"#.utf8)
        switch index % 12 {
        case 0: return [random(Int.random(in: 1..<64, using: &generator)), random(8)]
        case 1: return [Array(#"{"v":4,"type":"hel"#.utf8), body]
        case 2: return [Array(#"{"v":7,"type":"hello","id":"x","sentAt":1}"#.utf8), body]
        case 3: return [Array(#"{"v":4,"type":"format-disk","id":"x","sentAt":1}"#.utf8), body]
        case 4: return [Array(#"{"v":4,"type":"hello","id":"x","sentAt":1,"pad":""#.utf8) + Array(repeating: 97, count: 5000) + Array(#""}"#.utf8), body]
        case 5: return [body]
        case 6: return [body, body, body, body]
        case 7:
            return [Array(#"{"v":4,"type":"result","id":"x\#(index)","sentAt":1,"workflow":"nope-\#(index % 97)","step":"plan","attempt":1,"sender":"intruder"}"#.utf8), result]
        case 8:
            // A result for a step of a real workflow that was never assigned.
            let header = #"{"v":4,"type":"result","id":"y\#(index)","sentAt":1,"workflow":"\#(workflow)","step":"plan","attempt":\#(1 + index % 50),"sender":"intruder"}"#
            return [Array(header.utf8), result]
        case 9:
            return [Array(#"{"v":4,"type":"ack","id":"z","sentAt":1,"workflow":"\#(workflow)","step":"ghost-step","attempt":1,"sender":"intruder"}"#.utf8), body]
        case 10:
            // A fetch of an artifact nobody produced.
            let digest = random(32).map { String(format: "%02x", $0) }.joined()
            return [Array(#"{"v":4,"type":"fetch","id":"f\#(index)","sentAt":1}"#.utf8), Array(#"{"digest":"\#(digest)","offset":0}"#.utf8)]
        default:
            // A v2 peer: its steps would carry artifact bytes, which this protocol names by digest.
            return [Array(#"{"v":2,"type":"hello","id":"h","sentAt":1,"sender":"intruder"}"#.utf8), body]
        }
    }
}

extension FaultSuites {
    @Suite(.serialized) struct HostileInputTests {
        @Test func aMillionMalformedFramesAreCountedAndTheCoordinatorKeepsServing() throws {
            let bus = ProcessBus()
            defer { bus.stopAll() }
            try bus.startCoordinator()
            let client = try bus.client()
            // No planner yet: this workflow's plan step stays unassigned, a target for forged results.
            let waiting = try client.submit(demoRequest(delayMilliseconds: 0)).workflow
            let before = try client.stats()
            let context = Context()
            let dealer = try Socket(context: context, type: .dealer)
            // An allowed client gone bad: its frames reach the decoder.
            try dealer.makeCurveClient(bus.clientKeys)
            try dealer.set(.sendHighWaterMark, 0)
            try dealer.connect(bus.control)
            var generator = SystemRandomNumberGenerator()
            let total = Int(ProcessInfo.processInfo.environment["SHOAL_HOSTILE_FRAMES"] ?? "") ?? 1_000_000
            let counted = { try client.stats().rejected.values.reduce(0, +) - before.rejected.values.reduce(0, +) }
            for index in 0..<total {
                try dealer.send(Garbage.frames(index, workflow: waiting, generator: &generator))
                if index.isMultiple(of: 500) { while (try dealer.receive(wait: false)) != nil {} }
                // In bursts of 5,000, each taken in before the next: the test measures
                // the coordinator, not how many frames libzmq can queue in this process.
                if (index + 1).isMultiple(of: 5000) {
                    let burstDeadline = ContinuousClock.now + .seconds(20)
                    while try counted() < index + 1 && ContinuousClock.now < burstDeadline {
                        while (try dealer.receive(wait: false)) != nil {}
                        Thread.sleep(forTimeInterval: 0.01)
                    }
                }
            }
            // Every frame is counted once the coordinator has read them all.
            var stats = try client.stats()
            let deadline = ContinuousClock.now + .seconds(60)
            while stats.rejected.values.reduce(0, +) < total && ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.2)
                stats = try client.stats()
            }
            #expect(stats.rejected.values.reduce(0, +) == total, "\(stats.rejected)")
            for reason in ["malformed-header", "unsupported-version", "unknown-type", "oversized", "frame-count", "unknown-workflow", "not-assigned", "unknown-step", "unknown-artifact"] {
                #expect((stats.rejected[reason] ?? 0) > 0, "\(reason) counted")
            }
            #expect(stats.residentBytes - before.residentBytes < 64 << 20, "memory stays bounded")
            // Still serving: the waiting workflow and a new one complete once agents exist.
            for role in Role.allCases { try bus.startAgent(role, id: "\(role.rawValue)-1") }
            let fresh = try client.submit(demoRequest(delayMilliseconds: 0)).workflow
            let final = try bus.waitFinished([waiting, fresh], timeout: .seconds(60), client: client)
            #expect(final.allSatisfy { $0.state == .succeeded }, "\(final.map { $0.error ?? "" })")
            #expect(final[0].step("plan")?.agent == "planner-1", "no forged result was taken")
        }

        @Test func aHundredThousandMalformedFramesToAnAgentAreCountedAndItKeepsWorking() throws {
            let context = Context()
            let router = try Socket(context: context, type: .router)
            try router.set(.routerMandatory, 1)
            try router.bind("tcp://127.0.0.1:*")
            let publisher = try Socket(context: context, type: .xpub)
            try publisher.set(.xpubVerbose, 1)
            try publisher.bind("tcp://127.0.0.1:*")
            let eventsPort = Int(try publisher.lastEndpoint.split(separator: ":").last ?? "") ?? 0
            let process = Process()
            process.executableURL = URL(fileURLWithPath: ProcessBus.executable)
                // This fake coordinator speaks plain TCP: the test is about what the agent's decoder does.
            process.arguments = [
                "agent", "docs", "--coordinator", try router.lastEndpoint, "--id", "docs-hostile", "--log-level", "error",
                "--insecure",
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            defer {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            try router.set(.receiveTimeout, 5000)
            var lastHeartbeat: Heartbeat?
            var identity: [UInt8] = []
            func receive(_ type: MessageType, timeout: Duration = .seconds(5)) throws -> Envelope? {
                let deadline = ContinuousClock.now + timeout
                while ContinuousClock.now < deadline {
                    var poller = Poller()
                    poller.add(router)
                    guard try poller.poll(timeoutMilliseconds: 50)[0], let frames = try router.receive(wait: false) else { continue }
                    identity = frames[0]
                    guard let envelope = try? Codec.decode(frames.dropFirst()) else { continue }
                    if envelope.header.type == .heartbeat { lastHeartbeat = try? envelope.decode(Heartbeat.self) }
                    if envelope.header.type == type { return envelope }
                }
                return nil
            }
            _ = try #require(try receive(.hello))
            try router.send([identity] + Codec.encode(Header(type: .welcome), Welcome(heartbeatIntervalMilliseconds: 100, liveness: 1000, eventsPort: eventsPort, eventsEndpoint: nil)))
            try publisher.set(.receiveTimeout, 5000)
            while let frames = try publisher.receive(), frames[0] != [1] + Array(WireFormat.agentTopic("docs-hostile").utf8) {}

            var generator = SystemRandomNumberGenerator()
            let total = 100_000
            let topic = Array(WireFormat.agentTopic("docs-hostile").utf8)
            let rssBefore = residentBytes(of: process.processIdentifier)
            for index in 0..<total {
                let frames = Garbage.frames(index, workflow: "k3s-dev-000000", generator: &generator)
                if index.isMultiple(of: 5) {
                    // On the step topic; paced, since PUB drops what a subscriber cannot take.
                    try publisher.send([topic] + frames)
                    if index.isMultiple(of: 200) { Thread.sleep(forTimeInterval: 0.002) }
                } else {
                    while !(try router.send([identity] + frames, wait: false)) { Thread.sleep(forTimeInterval: 0.001) }
                }
                if index.isMultiple(of: 1000) { _ = try receive(.bye, timeout: .milliseconds(1)) }
            }
            // The agent still runs a valid step.
            let key = StepKey(workflow: "k3s-dev-000001", step: "docs", attempt: 1)
            let assignment = StepAssignment(role: .docs, request: WorkflowRequest(), params: [:], inputs: [:], artifacts: [])
            try publisher.send(Codec.encode(Header(type: .step, workflow: key.workflow, step: key.step, attempt: key.attempt), assignment, topic: WireFormat.agentTopic("docs-hostile")))
            let result = try #require(try receive(.result, timeout: .seconds(30)))
            #expect(result.header.stepKey == key)
            // Its heartbeats report what it rejected: all of the control-socket frames at least.
            let deadline = ContinuousClock.now + .seconds(20)
            while (lastHeartbeat?.rejected?.values.reduce(0, +) ?? 0) < total * 4 / 5 && ContinuousClock.now < deadline {
                _ = try receive(.bye, timeout: .milliseconds(200))
            }
            let rejected = lastHeartbeat?.rejected?.values.reduce(0, +) ?? 0
            #expect(rejected >= total * 4 / 5, "rejected \(rejected) of \(total) (PUB may drop some on the step topic)")
            #expect(residentBytes(of: process.processIdentifier) - rssBefore < 64 << 20)
            #expect(process.isRunning)
        }
    }
}
