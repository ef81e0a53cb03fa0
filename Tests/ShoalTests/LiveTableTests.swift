import Foundation
import Protocol
import Synchronization
import Testing

@testable import shoal

/// A workflow in the middle of its run: one step of each kind of row.
private func sample(id: String = "k3s-prod-1a2b3c") -> WorkflowSnapshot {
    let created: Int64 = 1_800_000_000_000
    func step(
        _ name: String, _ role: Role, _ state: StepSnapshot.State, attempt: Int = 1, agent: String? = nil,
        host: String? = nil, started: Int64? = nil, finished: Int64? = nil, summary: String? = nil,
        error: String? = nil
    ) -> StepSnapshot {
        var step = StepSnapshot(name: name, role: role, needs: [], critical: false)
        step.state = state
        step.attempt = attempt
        step.agent = agent
        step.host = host
        step.startedAt = started.map { created + $0 }
        step.finishedAt = finished.map { created + $0 }
        step.summary = summary
        step.error = error
        return step
    }
    let steps = [
        step(
            "plan", .planner, .succeeded, agent: "planner-1", host: "lab-1", started: 100, finished: 300,
            summary: "14 steps; 3 servers with embedded etcd"),
        step("provision", .infra, .running, agent: "infra-1", host: "lab-2", started: 400),
        step(
            "monitoring", .monitoring, .failed, attempt: 2, agent: "monitoring-1", host: "lab-3", started: 2000,
            finished: 5000, error: "git push failed: the remote rejected the update of a protected branch"),
        step("validate/nodes", .validation, .pending),
        step("docs", .docs, .skipped),
    ]
    return WorkflowSnapshot(
        id: id, state: .running, request: WorkflowRequest(), createdAt: created, finishedAt: nil, steps: steps,
        error: nil, revision: 7)
}

private let now: Int64 = 1_800_000_000_000 + 12_345

@Suite struct LiveTableTests {
    @Test func at80ColumnsEveryStepHasOneRowCutWithAnEllipsis() {
        let lines = LiveTable.render(sample(), now: now, columns: 80, style: .init(color: false, unicode: true))
        #expect(
            lines == [
                "workflow k3s-prod-1a2b3c  running  3/5 done  12.3s",
                " ✓ plan           succeeded    0.2s  planner-1 on lab-1                14…",
                " ⠋ provision      running     11.9s  infra-1 on lab-2",
                " ✗ monitoring     failed       3.0s  monitoring-1 on lab-3, attempt 2  git…",
                " · validate/nodes pending",
                " - docs           skipped",
            ])
        #expect(lines.allSatisfy { $0.count <= 79 }, "\(lines)")
    }

    @Test func at160ColumnsNothingIsCut() {
        let lines = LiveTable.render(sample(), now: now, columns: 160, style: .init(color: false, unicode: true))
        #expect(
            lines == [
                "workflow k3s-prod-1a2b3c  running  3/5 done  12.3s",
                " ✓ plan           succeeded    0.2s  planner-1 on lab-1                "
                    + "14 steps; 3 servers with embedded etcd",
                " ⠋ provision      running     11.9s  infra-1 on lab-2",
                " ✗ monitoring     failed       3.0s  monitoring-1 on lab-3, attempt 2  "
                    + "git push failed: the remote rejected the update of a protected branch",
                " · validate/nodes pending",
                " - docs           skipped",
            ])
        #expect(!lines.joined().contains("…"))
    }

    @Test func withoutColourThereIsNoEscapeByteAndWithColourTheStatesAreColoured() {
        for columns in [80, 160] {
            let plain = LiveTable.render(
                sample(), now: now, columns: columns, style: .init(color: false, unicode: true))
            #expect(!plain.joined().utf8.contains(0x1B), "\(columns) columns")
            let coloured = LiveTable.render(
                sample(), now: now, columns: columns, style: .init(color: true, unicode: true))
            #expect(coloured[1].contains("\u{1B}[32msucceeded"), "\(coloured[1])")
            #expect(coloured[3].contains("\u{1B}[31mfailed"), "\(coloured[3])")
            // Colour codes take no column: the visible text is the plain one.
            #expect(coloured.map { LiveView.visibleWidth($0) } == plain.map(\.count), "\(columns) columns")
        }
    }

    @Test func withoutUnicodeTheMarksAreASCII() {
        let lines = LiveTable.render(
            sample(), now: now, columns: 80, style: .init(color: false, unicode: false), frame: 2)
        #expect(lines[1].hasPrefix(" + plan"))
        #expect(lines[2].hasPrefix(" | provision"))
        #expect(lines[3].hasPrefix(" x monitoring") && lines[3].hasSuffix("..."), "\(lines[3])")
        #expect(lines.allSatisfy { $0.unicodeScalars.allSatisfy(\.isASCII) })
    }

    @Test func theClockOfARunningStepAndOfTheWorkflowAdvanceWithTime() {
        let style = LiveTable.Style(color: false, unicode: true)
        let before = LiveTable.render(sample(), now: now, columns: 80, style: style)
        let after = LiveTable.render(sample(), now: now + 65_000, columns: 80, style: style, frame: 1)
        #expect(after[0] == "workflow k3s-prod-1a2b3c  running  3/5 done  1m17s")
        #expect(after[2] == " ⠙ provision      running     1m16s  infra-1 on lab-2")
        #expect(before[1] == after[1] && before[3] == after[3], "finished rows do not change")
    }

    @Test func controlCharactersFromTheNetworkNeverReachTheTerminal() {
        var workflow = sample()
        workflow.steps[0].summary = "ok\u{1B}[2J\u{1B}]0;title\u{07}\nsecond line"
        let lines = LiveTable.render(workflow, now: now, columns: 160, style: .init(color: false, unicode: true))
        #expect(!lines.joined().utf8.contains(0x1B) && !lines.joined().contains("\n"))
        #expect(lines.count == 6)
    }

    @Test func aTableTallerThanTheTerminalFoldsTheEarliestFinishedSteps() {
        var workflow = sample()
        for index in 0..<30 {
            var step = StepSnapshot(name: "validate/check-\(index)", role: .validation, needs: [], critical: false)
            step.state = index < 20 ? .succeeded : .pending
            workflow.steps.insert(step, at: 1)
        }
        let lines = LiveTable.render(
            workflow, now: now, columns: 80, rows: 12, style: .init(color: false, unicode: true))
        #expect(lines.count == 11, "\(lines)")
        #expect(lines[1].hasPrefix("  … 26 more: "), "\(lines[1])")
        #expect(lines.contains { $0.contains(" provision ") } && lines.contains { $0.contains(" monitoring ") })
    }

    @Test func clockFormats() {
        #expect(LiveTable.clock(0) == "0.0s")
        #expect(LiveTable.clock(59_949) == "59.9s")
        #expect(LiveTable.clock(61_000) == "1m01s")
        #expect(LiveTable.clock(3_723_000) == "1h02m")
        #expect(LiveTable.clock(-5) == "0.0s")
    }
}

@Suite struct LiveViewTests {
    @Test func onlyTheRowsThatChangedAreRewrittenAndNewRowsAppended() {
        let out = LiveView.redraw(from: ["a", "b", "c"], to: ["a", "B", "c", "d"])
        #expect(out == "\u{1B}[2A\r\u{1B}[2KB\u{1B}[2B\r\u{1B}[2Kd\n")
        #expect(LiveView.redraw(from: ["a", "b"], to: ["a", "b"]).isEmpty)
        #expect(LiveView.redraw(from: [], to: ["x", "y"]) == "\u{1B}[2Kx\n\u{1B}[2Ky\n")
        #expect(LiveView.redraw(from: ["a", "b"], to: ["A", "b"]) == "\u{1B}[2A\r\u{1B}[2KA\u{1B}[2B\r")
        #expect(!out.contains("\u{1B}[2J"), "never a full-screen clear")
    }

    @Test func afterAResizeTheTableIsErasedFromItsFirstRowAndDrawnAgain() {
        // Two rows of 60 columns take four rows at 40 columns.
        let wide = String(repeating: "x", count: 60)
        let out = LiveView.redraw(from: [wide, wide], to: ["a", "b"], resized: 40)
        #expect(out == "\r\u{1B}[4A\u{1B}[Ja\nb\n")
    }

    @Test func aTimerRedrawsTheClockWhenNoEventArrives() async throws {
        let written = Mutex<[String]>([])
        let view = LiveView(
            style: .init(color: false, unicode: true), output: { text in written.withLock { $0.append(text) } },
            size: { (80, 40) })
        var workflow = sample()
        workflow.createdAt = Int64(Date().timeIntervalSince1970 * 1000)
        workflow.steps[1].startedAt = workflow.createdAt
        view.start()
        view.update(workflow)
        let deadline = ContinuousClock.now + .seconds(10)
        // Three writes after the first draw, with no update in between: the clock and the spinner move.
        while written.withLock({ $0.count }) < 4, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        view.stop()
        let writes = written.withLock { $0 }
        #expect(writes.count >= 4, "\(writes)")
        #expect(writes.first?.contains("workflow k3s-prod-1a2b3c") == true)
        // Later writes rewrite rows in place (the header and the running step), never the whole table.
        for write in writes.dropFirst() {
            #expect(write.hasPrefix("\u{1B}["), "\(write.debugDescription)")
            #expect(!write.contains(" plan "), "a finished row is not redrawn: \(write.debugDescription)")
        }
    }
}

@Suite struct ProgressStyleTests {
    let terminal = ["TERM": "xterm-256color", "LANG": "C.UTF-8"]

    func resolve(
        _ mode: ProgressMode, terminal isTerminal: Bool = true, noColor: Bool = false, quiet: Bool = false,
        _ environment: [String: String]
    ) -> ProgressStyle {
        ProgressStyle.resolve(
            mode: mode, noColor: noColor, verbose: false, quiet: quiet, terminal: isTerminal,
            environment: environment)
    }

    @Test func autoIsTheLiveTableOnATerminalAndPlainLinesOtherwise() {
        #expect(resolve(.auto, terminal).display == .live)
        #expect(resolve(.auto, terminal: false, terminal).display == .plain)
        #expect(resolve(.auto, terminal.merging(["TERM": "dumb"]) { $1 }).display == .plain)
        #expect(resolve(.tty, terminal: false, terminal).display == .live)
        #expect(resolve(.plain, terminal).display == .plain)
        #expect(resolve(.none, terminal).display == .none)
        #expect(resolve(.auto, quiet: true, terminal).display == .none)
    }

    @Test func coloursAreOffWithNoColorTermDumbOrTheFlag() {
        #expect(resolve(.auto, terminal).color)
        #expect(!resolve(.auto, terminal.merging(["NO_COLOR": "1"]) { $1 }).color)
        #expect(resolve(.auto, terminal.merging(["NO_COLOR": ""]) { $1 }).color, "an empty NO_COLOR is unset")
        #expect(!resolve(.tty, terminal.merging(["TERM": "dumb"]) { $1 }).color)
        #expect(!resolve(.auto, noColor: true, terminal).color)
    }

    @Test func unicodeFollowsTheLocale() {
        #expect(resolve(.auto, terminal).unicode)
        #expect(!resolve(.auto, ["TERM": "xterm", "LANG": "C"]).unicode)
        #expect(!resolve(.auto, ["TERM": "xterm", "LC_ALL": "C", "LANG": "en_US.UTF-8"]).unicode)
    }
}
