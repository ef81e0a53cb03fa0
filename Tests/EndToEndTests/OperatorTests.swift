import Foundation
import ShoalSupport
import Testing

/// A tool a test needs: found, or a visible skip (a failure when CI is set).
private func tool(_ name: String, for test: String = #function) -> String? {
    if let path = ProcessRunner.locate(name) { return path }
    if ProcessInfo.processInfo.environment["CI"] != nil {
        Issue.record("\(name) is not installed but CI is set: `scripts/install-deps.sh --test` installs it")
    } else {
        print("SKIPPED \(test): \(name) is not installed (`scripts/install-deps.sh --test` installs it)")
    }
    return nil
}

/// A shoal service process (coordinator or agent) with its output in files,
/// stopped with SIGTERM when the test is done.
private final class ServiceProcess {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    init(_ arguments: [String], logs directory: String, name: String) throws {
        stdoutPath = "\(directory)/\(name).out"
        stderrPath = "\(directory)/\(name).log"
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: Shoal.executable)
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try ProcessLaunch.run(process)
    }

    /// The fields of the `ready ...` line, once it is printed.
    func readyFields(within limit: Duration = .seconds(20)) async throws -> [String: String] {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("ready ") }) {
                var fields: [String: String] = [:]
                for field in line.split(separator: " ").dropFirst() {
                    let parts = field.split(separator: "=", maxSplits: 1)
                    if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
                }
                return fields
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let log = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        throw ShoalError(.launchFailed, "no ready line", cause: String(log.suffix(2000)))
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}

/// Prometheus text: the value of one sample (`name{labels}`), or nil.
private func sample(_ text: String, _ series: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}

/// The pixels of a PNG, decoded by Python's zlib (no image library is
/// needed): how many match each `#rrggbb` colour, within a small tolerance.
private func countColours(in png: String, _ colours: [String]) async throws -> [String: Int] {
    let script = """
        import sys, zlib, struct
        data = open(sys.argv[1], 'rb').read()
        assert data[:8] == b'\\x89PNG\\r\\n\\x1a\\n'
        pos, idat, w, h, ctype = 8, b'', 0, 0, 0
        while pos < len(data):
            n, kind = struct.unpack('>I4s', data[pos:pos+8]); body = data[pos+8:pos+8+n]; pos += 12 + n
            if kind == b'IHDR': w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
            elif kind == b'IDAT': idat += body
        bpp = {2: 3, 6: 4}[ctype]; raw = zlib.decompress(idat); stride = w * bpp
        prev = bytearray(stride); rows = []; i = 0
        for _ in range(h):
            f = raw[i]; line = bytearray(raw[i+1:i+1+stride]); i += 1 + stride
            for x in range(stride):
                a = line[x-bpp] if x >= bpp else 0; b = prev[x]; c = prev[x-bpp] if x >= bpp else 0
                if f == 1: line[x] = (line[x] + a) & 255
                elif f == 2: line[x] = (line[x] + b) & 255
                elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
                elif f == 4:
                    p = a + b - c; pa, pb, pc = abs(p-a), abs(p-b), abs(p-c)
                    line[x] = (line[x] + (a if pa <= pb and pa <= pc else (b if pb <= pc else c))) & 255
            rows.append(bytes(line)); prev = line
        want = [tuple(int(h_[k:k+2], 16) for k in (1, 3, 5)) for h_ in sys.argv[2:]]
        counts = [0] * len(want)
        for row in rows:
            for x in range(0, stride, bpp):
                px = row[x:x+3]
                for j, (r, g, b_) in enumerate(want):
                    if abs(px[0]-r) < 8 and abs(px[1]-g) < 8 and abs(px[2]-b_) < 8: counts[j] += 1
        print(w, h, *counts)
        """
    let result = try await ProcessRunner().run("python3", ["-c", script, png] + colours, timeout: .seconds(120))
    guard result.succeeded else { throw ShoalError(.io, "cannot decode \(png)", cause: result.standardError) }
    let numbers = result.standardOutput.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    var counts: [String: Int] = ["width": numbers.first ?? 0, "height": numbers.dropFirst().first ?? 0]
    for (colour, count) in zip(colours, numbers.dropFirst(2)) { counts[colour] = count }
    return counts
}

/// Headless Chromium on a file: the DOM after layout, and a screenshot.
private func render(_ page: String, screenshot: String, chromium: String) async throws -> String {
    let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--mute-audio"]
    let url = URL(fileURLWithPath: page).absoluteString
    let dom = try await ProcessRunner().run(chromium, flags + ["--dump-dom", url], timeout: .seconds(90))
    #expect(dom.succeeded, "\(dom.standardError.suffix(1000))")
    let shot = try await ProcessRunner().run(
        chromium, flags + ["--window-size=1400,1500", "--screenshot=\(screenshot)", url], timeout: .seconds(90))
    #expect(shot.succeeded, "\(shot.standardError.suffix(1000))")
    return dom.standardOutput
}

private func occurrences(of needle: String, in text: String) -> Int {
    text.components(separatedBy: needle).count - 1
}

@Suite(.serialized) struct OperatorTests {
    // MARK: Help, typos, completion, install

    /// The subcommands `shoal help` lists (and those of `keys`).
    private func subcommands() async throws -> [[String]] {
        func listed(_ help: String) -> [String] {
            guard let start = help.range(of: "SUBCOMMANDS:") else { return [] }
            return help[start.upperBound...].split(separator: "\n").compactMap { line in
                guard line.hasPrefix("  "), !line.hasPrefix("   "), let name = line.split(separator: " ").first,
                    name.allSatisfy({ $0.isLowercase || $0 == "-" })
                else { return nil }
                return String(name)
            }
        }
        let root = listed(try await Shoal.run(["--help"]).standardOutput)
        var paths = root.map { [$0] }
        for name in root {
            let nested = listed(try await Shoal.run([name, "--help"]).standardOutput)
            paths += nested.map { [name, $0] }
        }
        return paths
    }

    @Test func everyCommandsHelpEndsItsDiscussionWithExamplesThatNameRealCommands() async throws {
        let paths = try await subcommands()
        #expect(paths.count >= 20, "\(paths)")
        #expect(paths.contains(["report"]) && paths.contains(["completion"]) && paths.contains(["keys", "revoke"]))
        let known = Set(paths.map { $0.joined(separator: " ") } + ["help"])
        for path in [[]] + paths where path != ["help"] {
            let help = try await Shoal.run(["help"] + path)
            #expect(help.status == 0, "shoal help \(path)")
            let text = help.standardOutput
            let examples = try #require(text.range(of: "Examples:\n"), "no Examples: in `shoal help \(path.joined(separator: " "))`")
            let lines = text[examples.upperBound...].split(separator: "\n").prefix { $0.hasPrefix("  ") }
            #expect(lines.allSatisfy { $0.count <= 80 }, "examples fit 80 columns: `shoal help \(path)`")
            // A command continued with `\\` is one command.
            let joined = lines.map(String.init).joined(separator: "\n").replacingOccurrences(of: " \\\n      ", with: " ")
            let commands = joined.split(separator: "\n").filter { $0.hasPrefix("  shoal ") }
            #expect(!commands.isEmpty, "shoal help \(path)")
            for line in commands {
                // Every example runs a command that exists (its first one or two words).
                let words = line.split(separator: " ").dropFirst().map(String.init)
                let named = [words.prefix(2).joined(separator: " "), words.first ?? ""]
                #expect(named.contains { known.contains($0) }, "\(line) in `shoal help \(path)`")
            }
        }
    }

    @Test func aMistypedSubcommandGetsASuggestionAndExitCode64() async throws {
        let typo = try await Shoal.run(["crate", "-n", "3"])
        #expect(typo.status == 64)
        #expect(typo.standardError.hasPrefix("error: unknown command 'crate'; did you mean 'create'?"))
        #expect(typo.standardError.split(separator: "\n").count == 1, "\(typo.standardError)")
        #expect(typo.standardOutput.isEmpty)
        let nested = try await Shoal.run(["keys", "revok", "x"])
        #expect(nested.status == 64)
        #expect(nested.standardError.contains("did you mean 'revoke'?"), "\(nested.standardError)")
        let far = try await Shoal.run(["frobnicate"])
        #expect(far.status == 64)
        #expect(far.standardError.contains("unknown command 'frobnicate'") && !far.standardError.contains("did you mean"))
        let control = try await Shoal.run(["cr\u{1B}[2Jeate"])
        #expect(control.status == 64)
        #expect(!control.standardError.contains("\u{1B}"), "control characters are not echoed")
        // Known commands and options still parse as before.
        #expect(try await Shoal.run(["version"]).status == 0)
        #expect(try await Shoal.run(["create", "--nodes", "0"]).status == 64)
    }

    @Test func completionScriptsForEveryShellAndWorkflowIDsFromTheJournal() async throws {
        for shell in ["bash", "zsh", "fish"] {
            let script = try await Shoal.run(["completion", shell])
            #expect(script.status == 0)
            #expect(script.standardOutput.contains("create") && script.standardOutput.contains("report"), "\(shell)")
            #expect(script.standardOutput.contains("---completion"), "\(shell) calls back for workflow ids")
        }
        let wrong = try await Shoal.run(["completion", "tcsh"])
        #expect(wrong.status == 64)
        #expect(wrong.standardError.contains("bash, zsh or fish"))
        guard let bash = tool("bash") else { return }

        let directory = Shoal.temporaryDirectory()
        let output = directory + "/out"
        let created = try await Shoal.run(["create", "-n", "1", "-d", output], timeout: .seconds(120))
        #expect(created.status == 0, "\(created.standardError)")
        let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
        let script = directory + "/shoal.bash"
        try Data(try await Shoal.run(["completion", "bash"]).standardOutput.utf8).write(to: URL(fileURLWithPath: script))
        #expect(try await ProcessRunner().run(bash, ["-n", script]).succeeded, "the bash script parses")
        // bash completes as it would at a prompt: `shoal status k3<TAB> -d OUT`.
        let binDirectory = URL(fileURLWithPath: Shoal.executable).deletingLastPathComponent().path
        let prefix = String(workflow.prefix(3))
        let line = "shoal status \(prefix) -d \(output)"
        let probe = """
            source \(script)
            COMP_WORDS=(shoal status \(prefix) -d \(output)); COMP_CWORD=2; COMP_LINE='\(line)'; COMP_POINT=\(13 + prefix.count)
            _shoal
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        let completed = try await ProcessRunner().run(
            bash, ["-c", probe], environment: ["PATH": binDirectory + ":/usr/bin:/bin"], timeout: .seconds(30))
        #expect(completed.standardOutput.split(separator: "\n").map(String.init) == [workflow], "\(completed)")
        let none = try await Shoal.run(["---completion", "status", "--", "positional@0", "2", "3", "shoal", "status", "zz9"])
        #expect(none.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
    }

    @Test func makeInstallPutsShoalAndItsCompletionsUnderThePrefixAndCleanKeepsOutput() async throws {
        guard let make = tool("make") else { return }
        let prefix = Shoal.temporaryDirectory() + "/prefix"
        // SWIFT=true: the binary this test runs is already built; the recipe's own steps run for real.
        let installed = try await ProcessRunner().run(
            make, ["-C", Shoal.packageRoot, "install", "PREFIX=\(prefix)", "SWIFT=true"], timeout: .seconds(300))
        #expect(installed.succeeded, "\(installed.standardOutput)\n\(installed.standardError)")
        #expect(FileManager.default.isExecutableFile(atPath: "\(prefix)/bin/shoal"))
        #expect(FileManager.default.isExecutableFile(atPath: "\(prefix)/bin/shoal-agent"), "the lean agent beside it")
        let version = try await ProcessRunner().run("\(prefix)/bin/shoal", ["version"])
        #expect(version.standardOutput.hasPrefix("shoal "))
        for file in ["bash-completion/completions/shoal", "zsh/site-functions/_shoal", "fish/vendor_completions.d/shoal.fish"] {
            let text = (try? String(contentsOfFile: "\(prefix)/share/\(file)", encoding: .utf8)) ?? ""
            #expect(text.contains("---completion"), "\(file)")
        }
        let removed = try await ProcessRunner().run(make, ["-C", Shoal.packageRoot, "uninstall", "PREFIX=\(prefix)"])
        #expect(removed.succeeded)
        #expect(!FileManager.default.fileExists(atPath: "\(prefix)/bin/shoal"))
        #expect(!FileManager.default.fileExists(atPath: "\(prefix)/bin/shoal-agent"))
        // `make clean` removes the build only (dry run: this test runs from that build).
        let clean = try await ProcessRunner().run(make, ["--no-print-directory", "-C", Shoal.packageRoot, "-n", "clean"])
        #expect(clean.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == "rm -rf .build .build-fuzz")
    }

    // MARK: The lean agent

    /// `shoal agent` becomes the lean `shoal-agent` (same pid); the role's handlers run in step workers that exist
    /// only while there are steps: a whole workflow succeeds through them, and once idle no worker is left.
    @Test func agentsBecomeTheLeanAgentAndKeepStepWorkersOnlyWhileThereIsWork() async throws {
        let directory = Shoal.temporaryDirectory()
        let coordinator = try ServiceProcess(
            [
                "coordinator", "--insecure", "--control", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*",
                "--journal", directory + "/journal.sqlite", "--dir", directory + "/out",
            ], logs: directory, name: "coordinator")
        defer { coordinator.stop() }
        let control = try #require(try await coordinator.readyFields()["control"])
        var agents: [ServiceProcess] = []
        defer { agents.forEach { $0.stop() } }
        for role in ["planner", "infra", "argocd", "monitoring", "validation", "docs"] {
            agents.append(
                try ServiceProcess(
                    [
                        "agent", role, "--coordinator", control, "--insecure", "--work-dir", directory + "/work-\(role)",
                        "--worker-idle", "1s",
                    ], logs: directory, name: role))
        }
        let created = try await Shoal.run(
            ["create", "-n", "1", "--coordinator", control, "--insecure", "-d", directory + "/client"],
            timeout: .seconds(120))
        #expect(created.status == 0, "\(created.standardOutput)\n\(created.standardError)")
        for agent in agents {
            let name = (try? String(contentsOfFile: "/proc/\(agent.process.processIdentifier)/comm", encoding: .utf8))
            #expect(name?.trimmingCharacters(in: .whitespacesAndNewlines) == "shoal-agent", "\(agent.stderrPath)")
        }
        // Every step ran in a worker (only the bench role runs in the lean agent); a second past its last step,
        // each worker is gone.
        let deadline = ContinuousClock.now + .seconds(20)
        var workers = processes(mentioning: "agent-worker").filter { $0.command.contains(directory) }
        while !workers.isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            workers = processes(mentioning: "agent-worker").filter { $0.command.contains(directory) }
        }
        #expect(workers.isEmpty, "\(workers.map(\.command))")
    }

    // MARK: Metrics

    @Test func theCoordinatorServesPrometheusMetricsThatPromtoolAccepts() async throws {
        guard let curl = tool("curl"), let promtool = tool("promtool") else { return }
        let directory = Shoal.temporaryDirectory()
        let bad = try await Shoal.run(["coordinator", "--insecure", "--metrics-listen", "localhost:http"])
        #expect(bad.status == 64)
        #expect(bad.standardError.contains("--metrics-listen"), "\(bad.standardError)")

        let coordinator = try ServiceProcess(
            [
                "coordinator", "--insecure", "--control", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*",
                "--journal", directory + "/journal.sqlite", "--dir", directory + "/out",
                "--metrics-listen", "127.0.0.1:0", "--heartbeat", "200ms",
            ], logs: directory, name: "coordinator")
        defer { coordinator.stop() }
        let ready = try await coordinator.readyFields()
        let control = try #require(ready["control"])
        let metrics = try #require(ready["metrics"])
        #expect(metrics.hasPrefix("127.0.0.1:") && !metrics.hasSuffix(":0"), "the bound port is printed: \(metrics)")

        var agents: [ServiceProcess] = []
        defer { agents.forEach { $0.stop() } }
        for role in ["planner", "infra", "argocd", "monitoring", "validation", "docs"] {
            agents.append(
                try ServiceProcess(
                    ["agent", role, "--coordinator", control, "--insecure", "--work-dir", directory + "/work-\(role)"],
                    logs: directory, name: role))
        }
        let created = try await Shoal.run(
            ["create", "-n", "1", "--coordinator", control, "--insecure", "-d", directory + "/client"],
            timeout: .seconds(120))
        #expect(created.status == 0, "\(created.standardOutput)\n\(created.standardError)")
        // A frame the coordinator refuses: a status request for a workflow it does not know.
        let unknown = try await Shoal.run(["status", "k3s-dev-000000", "--coordinator", control, "--insecure"])
        #expect(unknown.status != 0)

        // The agents gauge is refreshed once per heartbeat: wait for it, with a deadline.
        var text = ""
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let fetched = try await ProcessRunner().run(curl, ["-sf", "http://\(metrics)/metrics"], timeout: .seconds(10))
            text = fetched.standardOutput
            if sample(text, #"shoal_agents{role="validation",state="idle"}"#) == 1 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        for family in [
            "shoal_workflows", "shoal_step_duration_seconds", "shoal_agents", "shoal_rejected_frames_total",
            "shoal_journal_commit_duration_seconds", "shoal_ready_steps",
        ] {
            #expect(text.contains("# HELP \(family) "), "\(family)")
        }
        #expect(sample(text, #"shoal_workflows{state="succeeded"}"#) == 1, "\(text.prefix(3000))")
        #expect(sample(text, #"shoal_workflows{state="running"}"#) == 0)
        #expect(sample(text, #"shoal_agents{role="validation",state="idle"}"#) == 1)
        #expect(sample(text, #"shoal_agents{role="infra",state="idle"}"#) == 1)
        #expect(sample(text, #"shoal_ready_steps{role="validation"}"#) == 0)
        #expect(
            sample(text, #"shoal_step_duration_seconds_count{role="infra",step="provision",outcome="succeeded"}"#) == 1)
        #expect(
            (sample(text, #"shoal_step_duration_seconds_count{role="validation",step="validate",outcome="succeeded"}"#)
                ?? 0) >= 4, "one per health check")
        #expect((sample(text, #"shoal_rejected_frames_total{reason="unknown-workflow"}"#) ?? 0) >= 1)
        #expect((sample(text, "shoal_journal_commit_duration_seconds_count") ?? 0) > 5)

        let file = directory + "/metrics.txt"
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        let checked = try await ProcessRunner().run(
            "sh", ["-c", "\"$0\" check metrics < \"$1\"", promtool, file], timeout: .seconds(30))
        #expect(checked.succeeded, "promtool: \(checked.standardOutput)\(checked.standardError)")
        let missing = try await ProcessRunner().run(curl, ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://\(metrics)/nope"])
        #expect(missing.standardOutput == "404")

        // A second coordinator on the same metrics port stops at once, saying why.
        let busy = try await Shoal.run(
            [
                "coordinator", "--insecure", "--control", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*",
                "--journal", directory + "/second.sqlite", "--metrics-listen", metrics,
            ], timeout: .seconds(20))
        #expect(!busy.timedOut && busy.status == 1, "\(busy.standardError)")
        #expect(busy.standardError.contains("error: cannot listen for metrics on \(metrics)"), "\(busy.standardError)")
    }

    @Test func theGrafanaDashboardIsJSONAndQueriesTheCoordinatorsFamilies() throws {
        let path = Shoal.packageRoot + "/contrib/grafana/shoal-dashboard.json"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(dashboard["uid"] as? String == "shoal")
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        let expressions = panels.flatMap { panel in
            ((panel["targets"] as? [[String: Any]]) ?? []).compactMap { $0["expr"] as? String }
        }
        for family in [
            "shoal_workflows", "shoal_step_duration_seconds_bucket", "shoal_agents", "shoal_rejected_frames_total",
            "shoal_journal_commit_duration_seconds_bucket", "shoal_ready_steps",
        ] {
            #expect(expressions.contains { $0.contains(family) }, "a panel queries \(family)")
        }
        let known = ["shoal_workflows", "shoal_step_duration_seconds", "shoal_agents", "shoal_rejected_frames_total",
                     "shoal_journal_commit_duration_seconds", "shoal_ready_steps", "up"]
        for expression in expressions {
            let names = expression.matches(of: /shoal_[a-z_]+/).map { String($0.output) }
            for name in names {
                #expect(known.contains { name == $0 || name.hasPrefix($0 + "_") }, "\(name) in \(expression)")
            }
        }
    }

    // MARK: Report

    @Test func createWritesAReportThatChromiumRendersWithTheDAGTheTimelineAndTheChecks() async throws {
        guard let chromium = tool("chromium"), tool("python3") != nil else { return }
        let directory = Shoal.temporaryDirectory()
        let output = directory + "/out"
        let created = try await Shoal.run(["create", "-n", "3", "-d", output], timeout: .seconds(120))
        #expect(created.status == 0, "\(created.standardError)")
        let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
        let page = "\(output)/reports/\(workflow)/index.html"
        #expect(created.standardOutput.contains("report: \(page)"))
        let html = try String(contentsOfFile: page, encoding: .utf8)
        // Self-contained: nothing to fetch.
        for reference in ["<script", "<link", " src=", " href=", "url(", "@import"] {
            #expect(!html.contains(reference), "\(reference)")
        }

        let dom = try await render(page, screenshot: directory + "/report.png", chromium: chromium)
        let status = try await Shoal.run(["status", workflow, "-d", output])
        let steps = status.standardOutput.split(separator: "\n").dropFirst(3).count
        #expect(steps >= 12)
        #expect(occurrences(of: "class=\"node state-succeeded\"", in: dom) == steps, "every step in the DAG")
        #expect(occurrences(of: "class=\"edge\"", in: dom) >= steps - 1)
        #expect(dom.contains("data-step=\"validate/nodes\""))
        #expect(occurrences(of: "class=\"bar state-succeeded\"", in: dom) == steps, "every step on the timeline")
        #expect(dom.contains("validation-1 @ ") && dom.contains("validation-2 @ "), "lanes by agent and host")
        #expect(occurrences(of: "<tr class=\"check pass\"", in: dom) >= 8)
        #expect(dom.contains("<strong id=\"score\">100/100</strong>"))
        #expect(dom.contains(">20</td>"), "the checks' weights")

        let pixels = try await countColours(in: directory + "/report.png", ["#2e7d32", "#c62828", "#ffffff"])
        #expect(pixels["width"] == 1400 && pixels["height"] == 1500)
        #expect((pixels["#2e7d32"] ?? 0) > 20_000, "green nodes and bars: \(pixels)")
        #expect((pixels["#c62828"] ?? 0) < 2_000, "nothing failed (the legend's key only): \(pixels)")
        #expect((pixels["#ffffff"] ?? 0) > 1_000_000, "a light page: \(pixels)")

        // `shoal report` writes the same page again, from the journal.
        try FileManager.default.removeItem(atPath: page)
        let again = try await Shoal.run(["report", workflow, "-d", output])
        #expect(again.status == 0)
        #expect(again.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == page)
        #expect(FileManager.default.fileExists(atPath: page))
        let missing = try await Shoal.run(["report", "k3s-dev-000000", "-d", output])
        #expect(missing.status == 1)
        #expect(missing.standardError.hasPrefix("error: no workflow 'k3s-dev-000000'"))
    }

    @Test func aFailedRunsReportShowsTheFailedAndSkippedStepsInRed() async throws {
        guard let chromium = tool("chromium"), tool("python3") != nil, let git = tool("git") else { return }
        // No terraform and no kubectl on PATH: the preflight steps of a real deployment fail, provision is skipped.
        let directory = Shoal.temporaryDirectory()
        try SecureFile.createDirectory(directory + "/bin")
        try FileManager.default.createSymbolicLink(atPath: directory + "/bin/git", withDestinationPath: git)
        let output = directory + "/out"
        let created = try await Shoal.run(
            ["create", "--real-deployment", "--target", "local", "-d", output], timeout: .seconds(60),
            environment: ["PATH": directory + "/bin"])
        #expect(created.status != 0)
        let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
        let page = "\(output)/reports/\(workflow)/index.html"
        let dom = try await render(page, screenshot: directory + "/report.png", chromium: chromium)
        #expect(dom.contains("id=\"workflow-state\">failed<"))
        #expect(occurrences(of: "class=\"node state-failed\"", in: dom) >= 2, "the failed preflights")
        #expect(dom.contains("data-step=\"provision\" data-state=\"skipped\""))
        #expect(dom.contains("id=\"no-checks\""), "no health report")
        #expect(dom.contains("Not run: "))
        let pixels = try await countColours(in: directory + "/report.png", ["#c62828"])
        #expect((pixels["#c62828"] ?? 0) > 5_000, "red failed nodes: \(pixels)")
    }
}
