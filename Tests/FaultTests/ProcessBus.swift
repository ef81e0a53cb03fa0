import Coordinator
import Foundation
import ZeroMQ
import Protocol
import ShoalSupport
import Testing

/// The fault suites run one at a time: they measure liveness in hundreds of
/// milliseconds, which other process-heavy tests running beside them could blur.
@Suite(.serialized) struct FaultSuites {}

/// A coordinator and agents as real `shoal` processes on loopback, which a
/// test can kill, freeze and restart.
final class ProcessBus {
    let directory: String
    private(set) var control = ""
    private(set) var events = ""
    private var coordinator: Process?
    private(set) var agents: [String: (role: Role, process: Process)] = [:]
    private var coordinatorArguments: [String]
    /// CURVE keys, as an operator would lay them out: the coordinator's pair,
    /// one pair for the agents, one for this test as a client; both allowed.
    let keys: String
    private(set) var clientKeys: CurveClientKeys

    static var executable: String {
        let bundle = Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("shoal").path
        if FileManager.default.isExecutableFile(atPath: bundle) { return bundle }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        return root + "/.build/debug/shoal"
    }

    init(heartbeat: String = "250ms", liveness: Int = 4, ackTimeout: String = "500ms", maxAttempts: Int = 10) {
        directory = NSTemporaryDirectory() + "shoal-fault-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: directory + "/logs", withIntermediateDirectories: true)
        keys = directory + "/keys"
        let coordinatorKey = try! KeyFile.generate(name: "coordinator", directory: keys)
        let agentKey = try! KeyFile.generate(name: "agent", directory: keys)
        let clientKey = try! KeyFile.generate(name: "client", directory: keys)
        try! KeyFile.writePublic(agentKey, to: keys + "/allow/agent.pub")
        try! KeyFile.writePublic(clientKey, to: keys + "/allow/client.pub")
        clientKeys = CurveClientKeys(serverPublicKey: coordinatorKey.publicKey, keyPair: clientKey.keyPair!)
        coordinatorArguments = [
            "--key", keys + "/coordinator.key", "--allow", keys + "/allow",
            "--journal", directory + "/journal.sqlite", "--dir", directory + "/output", "--heartbeat", heartbeat,
            "--liveness", String(liveness), "--ack-timeout", ackTimeout, "--max-attempts", String(maxAttempts),
        ]
    }

    deinit { stopAll() }

    /// Starts the coordinator; the first time on ports the kernel picks,
    /// afterwards on the same ports, as a restarted service would.
    func startCoordinator() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ProcessBus.executable)
        let endpoints = control.isEmpty ? ["tcp://127.0.0.1:*", "tcp://127.0.0.1:*"] : [control, events]
        process.arguments = ["coordinator", "--control", endpoints[0], "--events", endpoints[1]] + coordinatorArguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = try logHandle("coordinator")
        try process.run()
        coordinator = process
        let handle = pipe.fileHandleForReading
        var buffer = Data()
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            guard let chunk = FileDescriptorIO.readSome(handle.fileDescriptor), !chunk.isEmpty else { break }
            buffer.append(chunk)
            let text = String(decoding: buffer, as: UTF8.self)
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("ready ") }) else { continue }
            for field in line.split(separator: " ") {
                if field.hasPrefix("control=") { control = String(field.dropFirst(8)) }
                if field.hasPrefix("events=") { events = String(field.dropFirst(7)) }
            }
            return
        }
        throw FaultTestError("coordinator did not start (see \(directory)/logs)")
    }

    var coordinatorPID: Int32? { coordinator?.processIdentifier }

    func killCoordinator() {
        guard let coordinator else { return }
        kill(coordinator.processIdentifier, SIGKILL)
        coordinator.waitUntilExit()
        self.coordinator = nil
    }

    @discardableResult
    func startAgent(_ role: Role, id: String, capacity: Int = 2) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ProcessBus.executable)
        process.arguments = [
            "agent", role.rawValue, "--coordinator", control, "--id", id, "--capacity", String(capacity), "--work-dir",
            directory + "/work", "--state-dir", directory + "/state", "--key", keys + "/agent.key", "--coordinator-key",
            keys + "/coordinator.pub",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try logHandle(id)
        try process.run()
        agents[id] = (role, process)
        return process
    }

    func signal(_ id: String, _ signal: Int32) {
        guard let process = agents[id]?.process else { return }
        kill(process.processIdentifier, signal)
        if signal == SIGKILL {
            process.waitUntilExit()
            agents[id] = nil
        }
    }

    func stopAll() {
        for (_, agent) in agents where agent.process.isRunning {
            kill(agent.process.processIdentifier, SIGCONT)
            kill(agent.process.processIdentifier, SIGKILL)
            agent.process.waitUntilExit()
        }
        agents = [:]
        killCoordinator()
    }

    private func logHandle(_ name: String) throws -> FileHandle {
        let path = "\(directory)/logs/\(name).log"
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: path) else { throw FaultTestError("cannot open \(path)") }
        handle.seekToEndOfFile()
        return handle
    }

    /// A client with short timeouts, so a test notices a dead coordinator quickly.
    func client() throws -> CoordinatorClient {
        let client = try CoordinatorClient(endpoint: control, curve: clientKeys)
        client.replyTimeout = .milliseconds(500)
        client.attempts = 20
        return client
    }

    /// The key flags of a CLI call made as this test's client.
    var clientKeyArguments: [String] {
        ["--key", keys + "/client.key", "--coordinator-key", keys + "/coordinator.pub"]
    }

    /// How often each `(workflow, step)` really ran to completion, read from
    /// every agent's idempotency record (a result with secrets is there sealed).
    func executions() -> [String: Int] {
        var counts: [String: Int] = [:]
        let stateDirectory = directory + "/state"
        for file in (try? FileManager.default.contentsOfDirectory(atPath: stateDirectory)) ?? [] where file.hasSuffix(".jsonl") {
            guard let data = FileManager.default.contents(atPath: "\(stateDirectory)/\(file)") else { continue }
            var seen: Set<String> = []
            for line in data.split(separator: UInt8(ascii: "\n")) {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                    object["result"] != nil || object["sealed"] != nil, let key = object["key"] as? [String: Any],
                    let workflow = key["workflow"] as? String, let step = key["step"] as? String,
                    let attempt = key["attempt"] as? Int
                else { continue }
                // One agent records a key once; a second line for it would be a bug too.
                let name = "\(workflow)/\(step)"
                if seen.insert("\(name)#\(attempt)").inserted { counts[name, default: 0] += 1 } else { counts[name, default: 0] += 100 }
            }
        }
        return counts
    }

    /// Waits until every workflow has finished, or the deadline.
    func waitFinished(_ workflows: [String], timeout: Duration, client: CoordinatorClient) throws -> [WorkflowSnapshot] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let snapshots = try workflows.map { try client.status($0) }
            if snapshots.allSatisfy({ $0.state.isFinished }) || ContinuousClock.now > deadline { return snapshots }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }
}

struct FaultTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Resident memory of a process in bytes (Linux).
func residentBytes(of pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
        let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
    else { return 0 }
    return kilobytes * 1024
}

func demoRequest(delayMilliseconds: Int, nodes: Int = 1) -> WorkflowRequest {
    var request = WorkflowRequest()
    request.nodes = nodes
    request.simDelayMilliseconds = delayMilliseconds
    return request
}
