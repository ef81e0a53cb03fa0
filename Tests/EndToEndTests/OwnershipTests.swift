import Foundation
import ShoalSupport
import Testing

/// The one line of an error, and that there is only one.
private func errorLine(_ result: ProcessResult) -> String? {
    let lines = result.standardError.split(separator: "\n").filter { $0.hasPrefix("Error") || $0.hasPrefix("error") }
    return lines.count == 1 ? String(lines[0]) : nil
}

/// Waits until `path` holds a line naming its owner's pid.
private func waitForOwner(_ path: String, timeout: Duration = .seconds(30)) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let text = try? String(contentsOfFile: path, encoding: .utf8), text.hasPrefix("pid=") { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw ShoalError(.timeout, "nobody took \(path)")
}

@Suite(.serialized) struct OwnershipEndToEndTests {
    @Test func aSecondCreateOnTheSameOutputDirectoryIsRefusedAndTheFirstFinishes() async throws {
        let output = Shoal.temporaryDirectory() + "/out"
        let first = Task { try await Shoal.run(["create", "-d", output, "--sim-delay", "1s"], timeout: .seconds(120)) }
        try await waitForOwner(output + "/.shoal/create.lock")
        // The owner writes its keys just after it takes the lock: read them once they are there.
        let keyFile = output + "/.shoal/keys/coordinator.key"
        let deadline = ContinuousClock.now + .seconds(30)
        while (FileManager.default.contents(atPath: keyFile)?.count ?? 0) == 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let keysBefore = try #require(FileManager.default.contents(atPath: keyFile))
        let second = try await Shoal.run(["create", "-d", output, "--sim-delay", "1s"], timeout: .seconds(60))
        #expect(second.status != 0)
        let line = try #require(errorLine(second), "\(second.standardError)")
        #expect(line.contains("the output directory \(output) is in use by another shoal (pid "), "\(line)")
        #expect(line.contains(" on host ") && line.contains(" since "), "\(line)")
        // The running run's throwaway keys were left alone.
        #expect(FileManager.default.contents(atPath: keyFile) == keysBefore)
        let result = try await first.value
        #expect(result.status == 0, "\(result.standardOutput)\n\(result.standardError)")
    }

    @Test func aSecondCoordinatorOnTheSameJournalIsRefused() async throws {
        let directory = Shoal.temporaryDirectory()
        let journal = directory + "/journal.sqlite"
        let arguments = [
            "coordinator", "--insecure", "--journal", journal, "--dir", directory + "/out", "--control",
            "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*",
        ]
        let first = try ChildProcess.start(
            name: "coordinator", executable: Shoal.executable, arguments: arguments, standardOutput: .null,
            logFile: directory + "/first.log")
        defer {
            first.send(SIGKILL)
            _ = first.wait(timeout: .seconds(5))
        }
        try await waitForOwner(journal + ".lock")
        let second = try await Shoal.run(arguments, timeout: .seconds(30))
        #expect(second.status != 0)
        let line = try #require(errorLine(second), "\(second.standardError)")
        #expect(line.contains("the journal \(journal) is in use by another shoal (pid \(first.pid) on host "), "\(line)")
        #expect(first.isRunning)
    }

    @Test func anEmbeddedCreateWhoseCoordinatorDiesFailsAtOnceNamingItsLog() async throws {
        let output = Shoal.temporaryDirectory() + "/out"
        let create = Task { try await Shoal.run(["create", "-d", output, "--sim-delay", "3s"], timeout: .seconds(120)) }
        // Agents start once the coordinator is ready: the workflow is then under way.
        let started = ContinuousClock.now + .seconds(30)
        while !processes(mentioning: output).contains(where: { $0.command.contains(" agent docs ") }),
            ContinuousClock.now < started
        {
            try await Task.sleep(for: .milliseconds(20))
        }
        let coordinator = try #require(
            processes(mentioning: output).first { $0.command.contains(" coordinator ") }, "the coordinator runs")
        let killedAt = ContinuousClock.now
        kill(coordinator.pid, SIGKILL)
        let result = try await create.value
        #expect(ContinuousClock.now - killedAt < .seconds(10))
        #expect(result.status != 0)
        let log = output + "/.shoal/logs/coordinator.log"
        let line = try #require(errorLine(result), "\(result.standardError)")
        #expect(line.contains("coordinator stopped (killed by signal 9)") && line.contains(log), "\(line)")
        #expect(FileManager.default.fileExists(atPath: log))
        // Every child went with it.
        let deadline = ContinuousClock.now + .seconds(20)
        while !processes(mentioning: output).isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(processes(mentioning: output).isEmpty)
    }

    @Test func logsOfAnEarlierRunAreKeptNotTruncated() async throws {
        let output = Shoal.temporaryDirectory() + "/out"
        let first = try await Shoal.run(["create", "-d", output], timeout: .seconds(120))
        #expect(first.status == 0, "\(first.standardError)")
        let log = output + "/.shoal/logs/coordinator.log"
        let before = try #require(FileManager.default.contents(atPath: log))
        let second = try await Shoal.run(["create", "-d", output], timeout: .seconds(120))
        #expect(second.status == 0, "\(second.standardError)")
        let after = try #require(FileManager.default.contents(atPath: log))
        #expect(after.count > before.count && after.starts(with: before))
    }

    @Test(arguments: [
        ["create", "--sim-delay", "1e20"], ["create", "--sim-delay", "0x10s"], ["create", "--sim-delay", "11m"],
        ["coordinator", "--insecure", "--heartbeat", "1e300s"], ["coordinator", "--insecure", "--step-timeout", "-1s"],
    ])
    func hostileDurationsAreRefusedWithOneLine(arguments: [String]) async throws {
        let result = try await Shoal.run(arguments + ["-d", Shoal.temporaryDirectory()], timeout: .seconds(30))
        #expect(result.status == 64 || result.status == 1, "\(result.status) \(result.standardError)")
        #expect(!result.terminatedBySignal)
        #expect(errorLine(result) != nil, "\(result.standardError)")
    }
}

@Suite(.serialized) struct WrongKeyEndToEndTests {
    @Test func anAgentWithTheWrongCoordinatorKeySaysSoWithinThreeSeconds() async throws {
        let directory = Shoal.temporaryDirectory()
        let keys = directory + "/keys"
        for name in ["coordinator", "impostor", "docs-1"] {
            let generated = try await Shoal.run(["keys", "generate", name, "--dir", keys])
            #expect(generated.status == 0, "\(generated.standardError)")
        }
        try FileManager.default.createDirectory(atPath: keys + "/allow", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: keys + "/docs-1.pub", toPath: keys + "/allow/docs-1.pub")
        let coordinator = try ChildProcess.start(
            name: "coordinator", executable: Shoal.executable,
            arguments: [
                "coordinator", "--key", keys + "/coordinator.key", "--allow", keys + "/allow", "--journal",
                directory + "/journal.sqlite", "--dir", directory + "/out", "--control", "tcp://127.0.0.1:*",
                "--events", "tcp://127.0.0.1:*",
            ],
            standardOutput: .pipe, logFile: directory + "/coordinator.log")
        defer {
            coordinator.send(SIGKILL)
            _ = coordinator.wait(timeout: .seconds(5))
        }
        // Its first line says where it listens.
        var ready = ""
        let readyBy = ContinuousClock.now + .seconds(20)
        while !ready.contains("\n") && ContinuousClock.now < readyBy {
            guard let chunk = FileDescriptorIO.readSome(coordinator.standardOutput!), !chunk.isEmpty else { break }
            ready += String(decoding: chunk, as: UTF8.self)
        }
        let control = try #require(
            ready.split(separator: " ").first { $0.hasPrefix("control=") }.map { String($0.dropFirst(8)) })
        let agentLog = directory + "/agent.log"
        let agent = try ChildProcess.start(
            name: "agent", executable: Shoal.executable,
            arguments: [
                "agent", "docs", "--coordinator", control.trimmingCharacters(in: .whitespacesAndNewlines), "--id",
                "docs-1", "--key", keys + "/docs-1.key", "--coordinator-key", keys + "/impostor.pub",
            ],
            standardOutput: .null, logFile: agentLog)
        defer {
            agent.send(SIGKILL)
            _ = agent.wait(timeout: .seconds(5))
        }
        let started = ContinuousClock.now
        var said = false
        while !said && ContinuousClock.now - started < .seconds(6) {
            said = ((try? String(contentsOfFile: agentLog, encoding: .utf8)) ?? "").contains("--coordinator-key")
            if !said { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(said, "the agent named the likely cause")
        #expect(ContinuousClock.now - started < .seconds(5))
    }
}
