import Foundation
import ShoalSupport
import Testing

/// A private tmux server (its own socket, no user configuration) whose panes keep their output after the command
/// in them exits.
private final class TmuxServer {
    let tmux: String
    let socket = "shoal-test-\(UUID().uuidString.prefix(8))"
    let directory: String

    init?(directory: String, test: String = #function) {
        guard let tmux = ProcessRunner.locate("tmux") else {
            if !(ProcessInfo.processInfo.environment["CI"] ?? "").isEmpty {
                Issue.record("tmux is not installed but CI is set: `scripts/install-deps.sh --test` installs it")
            } else {
                print("SKIPPED \(test): tmux is not installed (`scripts/install-deps.sh --test` installs it)")
            }
            return nil
        }
        self.tmux = tmux
        self.directory = directory
        FileManager.default.createFile(
            atPath: directory + "/tmux.conf",
            contents: Data("set -g remain-on-exit on\nset -g history-limit 10000\n".utf8))
    }

    deinit {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tmux)
        process.arguments = ["-L", socket, "kill-server"]
        process.standardError = FileHandle.nullDevice
        try? ProcessLaunch.run(process)
        process.waitUntilExit()
    }

    @discardableResult
    func run(_ arguments: [String]) async throws -> ProcessResult {
        let result = try await ProcessRunner().run(
            tmux, ["-u", "-L", socket, "-f", directory + "/tmux.conf"] + arguments, timeout: .seconds(20))
        #expect(result.status == 0, "tmux \(arguments): \(result.standardError)")
        return result
    }

    /// A detached session of `columns` x `rows` running `command` in sh, which prints its exit status as
    /// `shoal-exit=N` (a Ctrl-C reaches the command; the shell only notes it). With `stream`, everything the pane
    /// receives is appended to that file from the start: the pipe is attached in the same tmux command as the
    /// session, so a test that runs late cannot find the command ended already.
    func start(_ session: String, columns: Int, rows: Int = 50, command: String, stream: String? = nil) async throws {
        let pipe = stream.map { [";", "pipe-pane", "-t", session, "-o", "cat >> \($0)"] } ?? []
        try await run(
            [
                "new-session", "-d", "-s", session, "-x", "\(columns)", "-y", "\(rows)",
                "trap true INT; \(command); echo shoal-exit=$?",
            ] + pipe)
    }

    /// The exit status of the session's command once it has ended, nil while it runs.
    func exitStatus(_ session: String) async throws -> Int32? {
        let text = try await capture(session)
        guard let range = text.range(of: "shoal-exit=") else { return nil }
        return Int32(text[range.upperBound...].prefix { $0.isNumber })
    }

    /// Waits (with a deadline) for the session's command to end.
    func waitForExit(_ session: String, within limit: Duration = .seconds(120)) async throws -> Int32? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let status = try await exitStatus(session) { return status }
            try await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    /// What the pane shows: wrapped lines joined (so a line wider than the pane shows as one long line), with
    /// the scroll-back when `history`, with SGR sequences when `escapes`.
    func capture(_ session: String, history: Bool = false, escapes: Bool = false) async throws -> String {
        try await run(
            ["capture-pane", "-p", "-J", "-t", session] + (history ? ["-S", "-"] : []) + (escapes ? ["-e"] : []))
            .standardOutput
    }
}

/// One look at the live table: its header's clock and each row's step, state and elapsed time.
private struct Frame {
    var header: (state: String, clock: String)?
    var rows: [(step: String, state: String, elapsed: String)] = []
    var lines: [Substring]
    /// The header and the rows (the summary below the table is today's plain lines, which may wrap).
    var tableLines: [Substring] = []

    init(_ text: String) {
        lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let states: Set<String> = ["pending", "assigned", "running", "succeeded", "failed", "skipped", "cancelled"]
        for line in lines {
            let words = line.split(separator: " ").map(String.init)
            if line.hasPrefix("workflow "), words.count >= 5, words.last?.last == "s" || words.last?.last == "m" {
                header = (words[2], words.last!)
                tableLines.append(line)
            } else if line.hasPrefix(" "), words.count >= 3, words[0].count == 1, states.contains(words[2]) {
                let elapsed = words.count >= 4 && words[3].first?.isNumber == true ? words[3] : ""
                rows.append((words[1], words[2], elapsed))
                tableLines.append(line)
            }
        }
    }
}

private func seconds(_ clock: String) -> Double {
    if clock.hasSuffix("s"), !clock.contains("m") { return Double(clock.dropLast()) ?? -1 }
    let parts = clock.dropLast().split(separator: "m")
    return (Double(parts.first ?? "") ?? -1) * 60 + (Double(parts.last ?? "") ?? 0)
}

/// The steps of `create -n 3 -e production` in demo mode.
private let productionSteps = 15

@Suite(.serialized) struct LiveViewEndToEndTests {
    /// `shoal create` on a terminal of `columns`: captured until it ends.
    private func runOnTerminal(
        columns: Int, delay: String = "1s", environment: String = "", pipe: String = ""
    ) async throws -> (frames: [Frame], final: String, history: String, coloured: [String], stream: String)? {
        let directory = Shoal.temporaryDirectory()
        guard let tmux = TmuxServer(directory: directory) else { return nil }
        let command =
            "env -u NO_COLOR LANG=C.UTF-8 TERM=screen \(environment) "
            + "\(Shoal.executable) create -n 3 -e production --sim-delay \(delay) -d \(directory)/out\(pipe)"
        // Everything the pane receives, every redraw included: captures of a loaded machine may be seconds apart.
        let streamFile = directory + "/stream.log"
        try await tmux.start("run", columns: columns, command: command, stream: streamFile)
        var frames: [Frame] = []
        var coloured: [String] = []
        let deadline = ContinuousClock.now + .seconds(180)
        var status: Int32?
        while ContinuousClock.now < deadline {
            status = try await tmux.exitStatus("run")
            let text = try await tmux.capture("run")
            frames.append(Frame(text))
            if frames.count % 5 == 1 { coloured.append(try await tmux.capture("run", escapes: true)) }
            if status != nil { break }
            try await Task.sleep(for: .milliseconds(150))
        }
        // The summary scrolls the table's top out of a 50-row pane: the whole pane, scroll-back included.
        let final = try await tmux.capture("run", history: true)
        #expect(status == 0, "the run ended in time and succeeded:\n\(final)")
        coloured.append(try await tmux.capture("run", escapes: true))
        let stream = (try? String(contentsOfFile: streamFile, encoding: .utf8)) ?? ""
        return (frames, final, try await tmux.capture("run", history: true), coloured, stream)
    }

    /// The header clocks and the running steps' clocks drawn into the pane, escape sequences taken out.
    private func drawnClocks(_ stream: String) -> (header: [Double], running: [String: Set<String>]) {
        // Colours go, cursor moves and line erasures end a line (a redraw moves between rows, printing no newline).
        let text = stream.replacingOccurrences(of: "\u{1B}\\[[0-9;]*m", with: "", options: .regularExpression)
            .replacingOccurrences(of: "\u{1B}\\[[0-9;?]*[A-Za-z]", with: "\n", options: .regularExpression)
            .replacingOccurrences(of: "\r", with: "\n")
        var header: [Double] = []
        var running: [String: Set<String>] = [:]
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ").map(String.init)
            if words.first == "workflow", words.count >= 5, words[2] == "running", let clock = words.last {
                header.append(seconds(clock))
            } else if words.count >= 4, words[2] == "running", words[3].first?.isNumber == true {
                running[words[1], default: []].insert(words[3])
            }
        }
        return (header, running)
    }

    private func checkLiveTable(columns: Int) async throws {
        guard let run = try await runOnTerminal(columns: columns) else { return }
        // No line wider than the terminal (a wrapped line is captured joined, so it would show here).
        for frame in run.frames {
            for line in frame.tableLines { #expect(line.count <= columns, "\(columns) columns: \(line)") }
            // One row per step, whatever the moment.
            let names = frame.rows.map(\.step)
            #expect(Set(names).count == names.count, "a step drawn twice: \(frame.lines.joined(separator: "\n"))")
        }
        // The header's clock advances while the workflow runs.
        let clocks = run.frames.compactMap { $0.header }.filter { $0.state == "running" }.map { seconds($0.clock) }
        #expect(clocks == clocks.sorted(), "\(clocks)")
        let drawn = drawnClocks(run.stream)
        #expect(Set(drawn.header).count >= 3, "drawn \(drawn.header), captured \(clocks)")
        #expect(drawn.header == drawn.header.sorted(), "\(drawn.header)")
        // A running step's clock ticks between the events of its start and its end: it is redrawn by the timer.
        #expect(drawn.running.values.contains { $0.count >= 2 }, "\(drawn.running)")
        // The final table stays, each step once, followed by the summary; the scroll-back holds no other copy.
        let final = Frame(run.final)
        #expect(final.rows.count == productionSteps, "\(run.final)")
        #expect(final.rows.allSatisfy { $0.state == "succeeded" }, "\(run.final)")
        #expect(final.header?.state == "succeeded")
        #expect(run.final.contains("15/15 done"))
        #expect(run.final.contains(" succeeded in ") && run.final.contains("Health: score 100/100 (healthy)"))
        let history = Frame(run.history)
        #expect(history.rows.count == productionSteps, "redrawn in place, never printed again:\n\(run.history)")
        #expect(!run.history.contains("  start plan"), "no plain lines on a terminal")
        // Colours: the states are coloured.
        #expect(run.coloured.contains { $0.contains("\u{1B}[32m") }, "\(run.coloured.last ?? "")")
    }

    @Test func createOnAn80ColumnTerminalRedrawsOneRowPerStepInPlaceWithATickingClock() async throws {
        try await checkLiveTable(columns: 80)
    }

    @Test func createOnA160ColumnTerminalRedrawsOneRowPerStepInPlaceWithATickingClock() async throws {
        try await checkLiveTable(columns: 160)
    }

    @Test func aNarrowedTerminalGetsItsRowsFittedToTheNewWidthAtTheNextTick() async throws {
        let directory = Shoal.temporaryDirectory()
        guard let tmux = TmuxServer(directory: directory) else { return }
        try await tmux.start(
            "run", columns: 140,
            command: "env LANG=C.UTF-8 TERM=screen \(Shoal.executable) create -n 3 -e production --sim-delay 1s "
                + "-d \(directory)/out")
        let deadline = ContinuousClock.now + .seconds(120)
        var wide = Frame("")
        while ContinuousClock.now < deadline {
            wide = Frame(try await tmux.capture("run"))
            if wide.rows.contains(where: { $0.step == "provision" && $0.state == "succeeded" }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(wide.tableLines.contains { $0.count > 100 }, "the summaries use a wide terminal: \(wide.lines)")
        try await tmux.run(["resize-window", "-t", "run", "-x", "70"])
        var narrow = Frame("")
        var fitted = false
        while !fitted, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            narrow = Frame(try await tmux.capture("run"))
            fitted = !narrow.tableLines.isEmpty && narrow.tableLines.allSatisfy { $0.count <= 70 }
        }
        #expect(fitted, "\(narrow.lines.joined(separator: "\n"))")
        #expect(narrow.rows.count == productionSteps, "one row per step: \(narrow.lines.joined(separator: "\n"))")
        #expect(Set(narrow.rows.map(\.step)).count == productionSteps)
        let status = try await tmux.waitForExit("run")
        #expect(status == 0)
    }

    @Test func withNoColorTheLiveTableHasNoEscapeCodes() async throws {
        guard let run = try await runOnTerminal(columns: 80, delay: "300ms", environment: "NO_COLOR=1") else {
            return
        }
        #expect(Frame(run.final).rows.count == productionSteps, "\(run.final)")
        #expect(run.coloured.count >= 2)
        for capture in run.coloured { #expect(!capture.contains("\u{1B}"), "\(capture.debugDescription)") }
    }

    @Test func pipedToCatOnATerminalCreatePrintsThePlainLines() async throws {
        guard let run = try await runOnTerminal(columns: 80, delay: "200ms", pipe: " | cat") else { return }
        let lines = run.history.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("  start ") }.count == productionSteps, "\(run.history)")
        #expect(lines.filter { $0.hasPrefix("  ok    ") }.count == productionSteps, "\(run.history)")
        #expect(Frame(run.history).rows.isEmpty, "no table")
        for capture in run.coloured { #expect(!capture.contains("\u{1B}"), "\(capture.debugDescription)") }
    }

    @Test func progressOptionsAreCheckedInOneLine() async throws {
        for arguments in [
            ["create", "--progress", "fancy"], ["create", "--progress", "\u{1B}[2J"],
            ["watch", "k3s-dev-000001", "-v", "-q"],
            ["resume", "k3s-dev-000001", "--progress", "x"],
        ] {
            let result = try await Shoal.run(arguments, timeout: .seconds(20))
            #expect(result.status == 64, "\(arguments): \(result.standardError)")
            #expect(result.standardError.split(separator: "\n").count == 1, "\(arguments): \(result.standardError)")
            #expect(!result.standardError.contains("\u{1B}"))
        }
        let status = try await Shoal.run(["status", "k3s-dev-000001", "-q"], timeout: .seconds(20))
        #expect(status.status == 64 && status.standardError.contains("go with -w/--watch"), "\(status.standardError)")
    }

    @Test func quietPrintsTheIdAndTheResultAndVerbosePrintsEachStepsLog() async throws {
        let directory = Shoal.temporaryDirectory()
        let quiet = try await Shoal.run(["create", "-q", "-d", directory + "/quiet"], timeout: .seconds(120))
        #expect(quiet.status == 0, "\(quiet.standardError)")
        let lines = quiet.standardOutput.split(separator: "\n")
        let id = try #require(lines.first.map(String.init))
        #expect(id.hasPrefix("k3s-dev-") && !id.contains(" "), "\(quiet.standardOutput)")
        #expect(lines.dropFirst().first?.hasPrefix("Workflow \(id) succeeded in ") == true, "\(quiet.standardOutput)")
        #expect(!quiet.standardOutput.contains("start ") && !quiet.standardOutput.contains("Health:"))
        #expect(lines.count <= 3, "the id, the result and at most the report's path: \(quiet.standardOutput)")

        let verbose = try await Shoal.run(["create", "-v", "-d", directory + "/verbose"], timeout: .seconds(120))
        #expect(verbose.status == 0, "\(verbose.standardError)")
        #expect(verbose.standardOutput.contains("  ok    provision"), "the plain lines stay")
        #expect(verbose.standardOutput.contains("==> provision (attempt 1, infra-1 on "), "\(verbose.standardOutput)")
        #expect(verbose.standardOutput.contains("==> docs (attempt 1, docs-1 on "))
        #expect(verbose.standardOutput.contains("Health: score 100/100"))
    }

    @Test func watchAndStatusWatchFollowAnEmbeddedRunFromItsJournalAndCtrlCStopsWatching() async throws {
        let directory = Shoal.temporaryDirectory()
        guard let tmux = TmuxServer(directory: directory) else { return }
        let output = directory + "/out"
        try await tmux.start(
            "create", columns: 120, command: "\(Shoal.executable) create --sim-delay 500ms -d \(output)")
        var workflow: String?
        let deadline = ContinuousClock.now + .seconds(60)
        while workflow == nil, ContinuousClock.now < deadline {
            workflow = Shoal.workflowID(in: try await tmux.capture("create"))
            if workflow == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let id = try #require(workflow)
        // A watcher on a terminal, stopped with Ctrl-C once its table shows.
        try await tmux.start(
            "watch", columns: 100,
            command: "env LANG=C.UTF-8 TERM=screen \(Shoal.executable) watch \(id) -d \(output)")
        var shown = ""
        while !shown.contains("workflow \(id)  running"), ContinuousClock.now < deadline {
            shown = try await tmux.capture("watch")
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(shown.contains("workflow \(id)  running"), "\(shown)")
        try await tmux.run(["send-keys", "-t", "watch", "C-c"])
        let interrupted = try await tmux.waitForExit("watch")
        shown = try await tmux.capture("watch")
        #expect(shown.contains("stopped watching \(id); it goes on"), "\(shown)")
        #expect(interrupted == 130, "\(shown)")

        // Piped watchers see the end, and exit as `wait` does.
        async let watched = Shoal.run(["watch", id, "-d", output], timeout: .seconds(120))
        async let statusWatched = Shoal.run(["status", id, "-w", "-q", "-d", output], timeout: .seconds(120))
        let (watch, status) = try await (watched, statusWatched)
        #expect(watch.status == 0, "\(watch.standardError)")
        #expect(watch.standardOutput.contains("  ok    docs"), "\(watch.standardOutput)")
        #expect(watch.standardOutput.contains("Workflow \(id) succeeded in "), "\(watch.standardOutput)")
        #expect(status.status == 0, "\(status.standardError)")
        #expect(status.standardOutput.hasPrefix("Workflow \(id) succeeded in "), "\(status.standardOutput)")
        let created = try await tmux.waitForExit("create")
        let createPane = try await tmux.capture("create")
        #expect(created == 0, "\(createPane)")
    }
}

extension LiveViewEndToEndTests {
    private func describe(_ result: ProcessResult) -> String {
        "status \(result.status)\nstdout: \(result.standardOutput)\nstderr: \(result.standardError)"
    }

    @Test func watchFollowsAWorkflowOfACoordinatorFromAnotherProcessToItsEnd() async throws {
        let lab = try RemoteLab()
        defer { lab.stopAll() }
        try await lab.startAgents()
        let client = lab.client
        let environment = ["HOME": lab.directory + "/client"]
        let run: @Sendable ([String]) async throws -> ProcessResult = { arguments in
            try await Shoal.run(arguments + client, timeout: .seconds(120), environment: environment)
        }
        let detached = try await lab.run(["create", "--sim-delay", "300ms", "--detach"])
        #expect(detached.status == 0, "\(describe(detached))")
        let workflow = try #require(detached.standardOutput.split(separator: "\n").first.map(String.init))
        async let watched = run(["watch", workflow, "--progress", "plain"])
        async let statusWatched = run(["status", workflow, "--watch", "-q"])
        let (watch, status) = try await (watched, statusWatched)
        #expect(watch.status == 0, "\(describe(watch))")
        #expect(watch.standardOutput.contains("  ok    plan"), "\(describe(watch))")
        #expect(watch.standardOutput.contains("  ok    docs"), "followed to the last step: \(describe(watch))")
        #expect(watch.standardOutput.contains("Workflow \(workflow) succeeded in "), "\(describe(watch))")
        #expect(!watch.standardOutput.contains("\u{1B}"))
        #expect(status.status == 0, "\(describe(status))")
        #expect(status.standardOutput.hasPrefix("Workflow \(workflow) succeeded"), "\(describe(status))")

        // A cancelled workflow ends the watch with 1, as `wait` does.
        let second = try await lab.run(["create", "--sim-delay", "2s", "--detach"])
        let id = try #require(second.standardOutput.split(separator: "\n").first.map(String.init))
        async let secondWatch = run(["watch", id, "--progress", "none"])
        let cancelled = try await run(["cancel", id])
        #expect(cancelled.status == 0, "\(describe(cancelled))")
        let stopped = try await secondWatch
        #expect(stopped.status == 1, "\(describe(stopped))")
        #expect(stopped.standardOutput.contains("Workflow \(id) cancelled"), "\(describe(stopped))")
    }
}
