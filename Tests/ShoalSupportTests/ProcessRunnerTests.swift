import Foundation
import ShoalSupport
import Testing

@Suite struct ProcessRunnerTests {
    let runner = ProcessRunner()

    @Test func capturesOutputStatusAndEnvironment() async throws {
        let result = try await runner.run(
            "sh", ["-c", "echo out; echo err >&2; echo $SHOAL_TEST_VALUE; exit 3"],
            environment: ["SHOAL_TEST_VALUE": "seen"])
        #expect(result.status == 3)
        #expect(!result.terminatedBySignal && !result.timedOut && !result.succeeded)
        #expect(result.standardOutput == "out\nseen\n")
        #expect(result.standardError == "err\n")
    }

    @Test func runsInTheWorkingDirectory() async throws {
        let result = try await runner.run("pwd", [], workingDirectory: "/tmp")
        #expect(result.standardOutput == "/tmp\n")
    }

    @Test func missingProgramIsATypedError() async {
        await #expect {
            try await runner.run("shoal-no-such-program", [])
        } throws: { error in
            (error as? ShoalError)?.code == .executableNotFound
        }
    }

    @Test func timeoutReachesTheWholeProcessGroup() async throws {
        // The background job keeps the output pipe open; signalling only the shell would wait for it.
        let start = ContinuousClock.now
        let result = try await runner.run("sh", ["-c", "sleep 8 & sleep 60"], timeout: .seconds(1))
        let elapsed = ContinuousClock.now - start
        #expect(result.timedOut)
        #expect(!result.succeeded)
        // Without the group it takes the 60 s of the job that keeps the pipe; the bound leaves room for a loaded
        // machine, whose parallel test run can stall a process for many seconds.
        #expect(elapsed < .seconds(40), "took \(elapsed)")
    }

    @Test func inputToAChildThatNeverReadsTimesOut() async throws {
        let start = ContinuousClock.now
        let input = Data(repeating: 0x61, count: 1 << 20)
        let result = try await runner.run("sleep", ["60"], input: input, timeout: .seconds(1))
        #expect(result.timedOut)
        #expect(ContinuousClock.now - start < .seconds(40), "took \(ContinuousClock.now - start)")
    }

    @Test func inputIsWrittenWhileOutputIsRead() async throws {
        // 4 MiB through `cat` deadlocks a runner that writes all input before reading.
        let input = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let output = try await runner.runBytes("cat", [], input: input, timeout: .seconds(30))
        #expect(output.succeeded)
        #expect(output.standardOutput == input)
        #expect(!output.truncated)
    }

    @Test func outputBeyondTheLimitIsDroppedNotBuffered() async throws {
        var small = runner
        small.outputLimit = 1000
        let output = try await small.runBytes("head", ["-c", "3000000", "/dev/zero"], timeout: .seconds(30))
        #expect(output.succeeded)
        #expect(output.standardOutput.count == 1000)
        #expect(output.truncated)
    }

    @Test func childKilledBySignalIsReported() async throws {
        let result = try await runner.run("sh", ["-c", "kill -9 $$"])
        #expect(result.terminatedBySignal)
        #expect(result.status == SIGKILL)
    }

    @Test func manyRunsAtOnce() async throws {
        try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<16 { group.addTask { try await runner.run("echo", ["\(index)"]).standardOutput } }
            var seen = Set<String>()
            for try await line in group { seen.insert(line) }
            #expect(seen.count == 16)
        }
    }
}

@Suite struct ProcessRunnerCancellationTests {
    @Test func cancellingTheCallerKillsTheProcessGroup() async throws {
        let pidFile = "/tmp/shoal-cancel-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(pidFile) }
        let task = Task {
            try await ProcessRunner().run("sh", ["-c", "echo $$ > \(pidFile); sleep 30 & sleep 30"], timeout: .seconds(60))
        }
        var group: pid_t = 0
        let deadline = ContinuousClock.now + .seconds(10)
        while group == 0 && ContinuousClock.now < deadline {
            group = pid_t((try? String(contentsOfFile: pidFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
            if group == 0 { try await Task.sleep(for: .milliseconds(20)) }
        }
        try #require(group > 1)
        let start = ContinuousClock.now
        task.cancel()
        let result = try await task.value
        #expect(result.terminatedBySignal)
        #expect(ContinuousClock.now - start < .seconds(16), "took \(ContinuousClock.now - start)")
        // The background job was in the group too: the whole group is gone.
        while kill(-group, 0) == 0 && ContinuousClock.now < start + .seconds(15) {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(kill(-group, 0) != 0 && errno == ESRCH)
    }
}

@Suite struct GoRuntimeTests {
    @Test func shortRunsCollectOnlyNearTheMemoryLimit() {
        #expect(GoRuntime.shortRunEnvironment(inherited: ["PATH": "/usr/bin"]) == [
            "GOGC": "off", "GOMEMLIMIT": GoRuntime.shortRunMemoryLimit,
        ])
    }

    @Test(arguments: [["GOGC": "50"], ["GOMEMLIMIT": "1GiB"], ["GOGC": "100", "GOMEMLIMIT": "64MiB"]])
    func theUsersOwnSettingsAreKept(inherited: [String: String]) {
        #expect(GoRuntime.shortRunEnvironment(inherited: inherited).isEmpty)
    }

    @Test func aProgramRunSeesTheSettings() async throws {
        let result = try await ProcessRunner().run(
            "sh", ["-c", "echo \"$GOGC $GOMEMLIMIT\""],
            environment: GoRuntime.shortRunEnvironment(inherited: [:]))
        #expect(result.standardOutput == "off \(GoRuntime.shortRunMemoryLimit)\n")
    }
}
