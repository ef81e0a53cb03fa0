import Foundation
import Protocol
import ShoalSupport

/// A workflow as one self-contained HTML page: the DAG with each step's
/// state, a timeline of the steps by agent and host, and the health checks
/// with their weights and remedies. Inline SVG and CSS only: it opens from a
/// file, offline, and can be mailed or archived as it is.
struct RunReport {
    let workflow: WorkflowSnapshot

    /// The page's path under an output directory.
    static func path(workflow: String, output: String) -> String {
        "\(output)/reports/\(workflow)/index.html"
    }

    /// Writes the page into `OUTPUT/reports/WORKFLOW/index.html`.
    /// - Returns: the file's absolute path.
    /// - Throws: `ShoalError(.io)` when the file cannot be written.
    @discardableResult
    static func write(_ workflow: WorkflowSnapshot, output: String) throws -> String {
        let file = path(workflow: workflow.id, output: absolutePath(output))
        try SecureFile.write(RunReport(workflow: workflow).html(), to: file, mode: 0o644)
        return file
    }

    /// The end of `shoal create`: writes the page and says where, or says
    /// why not (the run's outcome does not depend on it).
    static func writeAfterCreate(_ workflow: WorkflowSnapshot, output: String) {
        do {
            print("report: \(try write(workflow, output: output))")
        } catch {
            FileDescriptorIO.printError("warning: the report was not written: \(error)\n")
        }
    }

    // MARK: Page

    func html() -> String {
        let title = "shoal \(workflow.id)"
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape(title))</title>
            <style>\(RunReport.style)</style>
            </head>
            <body>
            \(header())
            <section id="dag-section"><h2>Steps</h2>
            \(dag())
            \(legend())
            </section>
            <section id="timeline-section"><h2>Timeline by agent</h2>
            \(timeline())
            </section>
            <section id="checks-section"><h2>Health checks</h2>
            \(checks())
            </section>
            <footer>Written by shoal \(escape(WireFormat.softwareVersion)) from revision \(workflow.revision) of the \
            workflow.</footer>
            </body>
            </html>

            """
    }

    private func header() -> String {
        let request = workflow.request
        var facts = [
            "\(request.platform), \(request.environment.rawValue), \(request.nodes) node(s)",
            request.realDeployment ? "real deployment (\(request.target.rawValue))" : "demo",
            "monitoring \(request.monitoring ? "on" : "off")", "headlamp \(request.headlamp ? "on" : "off")",
            "created \(RunReport.timestamp(workflow.createdAt))",
        ]
        if let finished = workflow.finishedAt {
            facts.append("took \(RunReport.duration(finished - workflow.createdAt))")
        }
        let done = workflow.steps.filter { $0.state == .succeeded }.count
        facts.append("\(done)/\(workflow.steps.count) steps succeeded")
        let error = workflow.error.map { "<p class=\"error\">\(escape($0))</p>" } ?? ""
        return """
            <header><h1>\(escape(workflow.id)) <span class="badge state-\(workflow.state.rawValue)" \
            id="workflow-state">\(workflow.state.rawValue)</span></h1>
            <p class="facts">\(facts.map(escape).joined(separator: " · "))</p>\(error)</header>
            """
    }

    private func legend() -> String {
        let states: [StepSnapshot.State] = [.succeeded, .failed, .running, .assigned, .pending, .skipped, .cancelled]
        let items = states.map { "<span class=\"key state-\($0.rawValue)\">\($0.rawValue)</span>" }
        return "<p class=\"legend\">\(items.joined(separator: " "))</p>"
    }

    // MARK: DAG

    /// Columns by depth (the longest chain of needs before a step), rows in
    /// the order of the plan; edges from each need to the step.
    private func dag() -> String {
        let steps = workflow.steps
        guard !steps.isEmpty else { return "<p class=\"empty\">No steps.</p>" }
        let depths = RunReport.depths(steps)
        var columns: [[Int]] = Array(repeating: [], count: (depths.max() ?? 0) + 1)
        for (position, depth) in depths.enumerated() { columns[depth].append(position) }
        let width = 166
        let height = 40
        let columnGap = 28
        let rowGap = 14
        let margin = 10
        var origin: [Int: (x: Int, y: Int)] = [:]
        for (column, members) in columns.enumerated() {
            for (row, position) in members.enumerated() {
                origin[position] = (margin + column * (width + columnGap), margin + row * (height + rowGap))
            }
        }
        let totalWidth = 2 * margin + columns.count * width + (columns.count - 1) * columnGap
        let tallest = columns.map(\.count).max() ?? 1
        let totalHeight = 2 * margin + tallest * height + (tallest - 1) * rowGap
        let index = Dictionary(steps.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        var edges: [String] = []
        for (position, step) in steps.enumerated() {
            guard let to = origin[position] else { continue }
            for need in step.needs {
                guard let from = index[need].flatMap({ origin[$0] }) else { continue }
                let x1 = from.x + width
                let y1 = from.y + height / 2
                let x2 = to.x
                let y2 = to.y + height / 2
                let bend = (x2 - x1) / 2
                edges.append(
                    "<path class=\"edge\" data-from=\"\(escape(need))\" data-to=\"\(escape(step.name))\" "
                        + "d=\"M\(x1),\(y1) C\(x1 + bend),\(y1) \(x2 - bend),\(y2) \(x2),\(y2)\"/>")
            }
        }
        var nodes: [String] = []
        for (position, step) in steps.enumerated() {
            guard let at = origin[position] else { continue }
            let label = RunReport.shorten(step.name, to: 21)
            let detail = [step.state.rawValue, step.agent].compactMap { $0 }.joined(separator: " · ")
            let tooltip = ([step.name, step.summary ?? step.error].compactMap { $0 }).joined(separator: "\n")
            nodes.append(
                """
                <g class="node state-\(step.state.rawValue)" data-step="\(escape(step.name))" \
                data-state="\(step.state.rawValue)" transform="translate(\(at.x),\(at.y))">\
                <title>\(escape(tooltip))</title>\
                <rect width="\(width)" height="\(height)" rx="6"/>\
                <text class="name" x="10" y="17">\(escape(label))</text>\
                <text class="detail" x="10" y="32">\(escape(RunReport.shorten(detail, to: 26)))</text></g>
                """)
        }
        return """
            <svg id="dag" xmlns="http://www.w3.org/2000/svg" width="\(totalWidth)" height="\(totalHeight)" \
            viewBox="0 0 \(totalWidth) \(totalHeight)" role="img" aria-label="workflow steps and their dependencies">
            \(edges.joined(separator: "\n"))
            \(nodes.joined(separator: "\n"))
            </svg>
            """
    }

    /// Each step's depth: 0 without needs, else one more than its deepest
    /// need (iteratively, in plan order, then until nothing changes: a
    /// stored workflow's steps need not come after their needs).
    static func depths(_ steps: [StepSnapshot]) -> [Int] {
        let index = Dictionary(steps.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        var depth = Array(repeating: 0, count: steps.count)
        for _ in 0..<min(steps.count, 64) {
            var changed = false
            for (position, step) in steps.enumerated() {
                let needed = step.needs.compactMap { index[$0] }.map { depth[$0] + 1 }.max() ?? 0
                if needed != depth[position] && needed <= steps.count {
                    depth[position] = needed
                    changed = true
                }
            }
            if !changed { break }
        }
        return depth
    }

    // MARK: Timeline

    /// One lane per agent (with its host), a bar per step that ran, from
    /// its start to its end, on a common time axis.
    private func timeline() -> String {
        let ran = workflow.steps.filter { $0.startedAt != nil }
        guard !ran.isEmpty else { return "<p class=\"empty\">No step has run yet.</p>" }
        let start = min(workflow.createdAt, ran.compactMap(\.startedAt).min() ?? workflow.createdAt)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let end = max(
            workflow.finishedAt ?? 0, ran.map { $0.finishedAt ?? now }.max() ?? start, start + 1)
        var lanes: [String] = []
        var byLane: [String: [StepSnapshot]] = [:]
        for step in ran {
            let lane = "\(step.agent ?? "?") @ \(step.host ?? "?")"
            if byLane[lane] == nil { lanes.append(lane) }
            byLane[lane, default: []].append(step)
        }
        lanes.sort()
        let labelWidth = 260
        let plotWidth = 900
        let barHeight = 18
        let rowHeight = 22
        let axisHeight = 26
        let span = Double(end - start)
        func x(_ at: Int64) -> Double { Double(labelWidth) + Double(at - start) / span * Double(plotWidth) }
        var parts: [String] = []
        var y = axisHeight
        for lane in lanes {
            // Steps that overlap on one agent (its capacity is above one) get rows of their own.
            var rowEnds: [Int64] = []
            var placed: [(step: StepSnapshot, row: Int)] = []
            let ordered = (byLane[lane] ?? []).sorted { ($0.startedAt ?? 0, $0.name) < ($1.startedAt ?? 0, $1.name) }
            for step in ordered {
                let from = step.startedAt ?? start
                let row = rowEnds.firstIndex { $0 <= from } ?? rowEnds.count
                if row == rowEnds.count { rowEnds.append(0) }
                rowEnds[row] = max(from + 1, step.finishedAt ?? now)
                placed.append((step, row))
            }
            let laneHeight = max(1, rowEnds.count) * rowHeight + 6
            parts.append(
                "<text class=\"lane\" x=\"\(labelWidth - 8)\" y=\"\(y + 17)\" text-anchor=\"end\">"
                    + "\(escape(RunReport.shorten(lane, to: 40)))</text>")
            parts.append(
                "<line class=\"lane-line\" x1=\"\(labelWidth)\" y1=\"\(y + laneHeight)\" "
                    + "x2=\"\(labelWidth + plotWidth)\" y2=\"\(y + laneHeight)\"/>")
            for (step, row) in placed {
                let from = x(step.startedAt ?? start)
                let to = max(from + 3, x(step.finishedAt ?? now))
                let took = RunReport.duration((step.finishedAt ?? now) - (step.startedAt ?? start))
                let top = y + 4 + row * rowHeight
                // The name inside the bar when it fits (about 6.5 px a character at 11 px).
                let fits = Double(step.name.count) * 6.5 + 8 <= to - from
                let label =
                    fits
                    ? "<text class=\"bar-label\" x=\"\(format(from + 4))\" y=\"\(top + 13)\">"
                        + "\(escape(step.name))</text>"
                    : ""
                parts.append(
                    """
                    <g class="bar state-\(step.state.rawValue)" data-step="\(escape(step.name))" \
                    data-lane="\(escape(lane))">\
                    <title>\(escape("\(step.name): \(step.state.rawValue), \(took)"))</title>\
                    <rect x="\(format(from))" y="\(top)" width="\(format(to - from))" height="\(barHeight)" \
                    rx="3"/>\(label)</g>
                    """)
            }
            y += laneHeight
        }
        for tick in 0...4 {
            let at = start + Int64(Double(end - start) * Double(tick) / 4)
            let position = x(at)
            parts.append(
                "<line class=\"tick\" x1=\"\(format(position))\" y1=\"\(axisHeight - 4)\" x2=\"\(format(position))\" "
                    + "y2=\"\(y)\"/>")
            let anchor = tick == 0 ? "start" : (tick == 4 ? "end" : "middle")
            parts.append(
                "<text class=\"axis\" x=\"\(format(position))\" y=\"14\" text-anchor=\"\(anchor)\">"
                    + "+\(RunReport.duration(at - start))</text>")
        }
        let height = y + 4
        let width = labelWidth + plotWidth + 10
        let notRun = workflow.steps.filter { $0.startedAt == nil }.map(\.name)
        let note =
            notRun.isEmpty
            ? "" : "<p class=\"note\">Not run: \(notRun.map(escape).joined(separator: ", ")).</p>"
        return """
            <svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" \
            viewBox="0 0 \(width) \(height)" role="img" aria-label="steps over time, by agent and host">
            \(parts.joined(separator: "\n"))
            </svg>\(note)
            """
    }

    // MARK: Checks

    /// The health report's checks, score and status; nil before the
    /// health-report step succeeded (or when its output has another shape).
    var healthReport: (checks: [HealthReportCheck], score: Int?, status: String?)? {
        guard let report = try? workflow.output(HealthReportOutput.self) else { return nil }
        return (report.checks, report.score, report.status)
    }

    private func checks() -> String {
        guard let report = healthReport else {
            let state = workflow.step(.healthReport)?.state.rawValue ?? "not planned"
            return "<p class=\"empty\" id=\"no-checks\">No health report (the health-report step is \(state)).</p>"
        }
        let rows = report.checks.map { check in
            """
            <tr class="check \(check.passed ? "pass" : "fail")" data-check="\(escape(check.name))">\
            <td class="verdict">\(check.passed ? "✔ pass" : "✘ fail")</td><td>\(escape(check.name))</td>\
            <td class="weight">\(check.weight)</td><td>\(escape(check.message))</td>\
            <td>\(escape(check.remedy ?? ""))</td><td>\(escape(check.agent))</td></tr>
            """
        }
        let score = report.score.map { "\($0)/100" } ?? "?"
        let status = report.status ?? "?"
        return """
            <p class="score">Score <strong id="score">\(score)</strong> <span class="badge status-\(escape(status))">\
            \(escape(status))</span></p>
            <table id="checks"><thead><tr><th>result</th><th>check</th><th>weight</th><th>message</th>\
            <th>remedy</th><th>agent</th></tr></thead>
            <tbody>
            \(rows.joined(separator: "\n"))
            </tbody></table>
            """
    }

    // MARK: Helpers

    private func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    private func format(_ value: Double) -> String { String(format: "%.1f", value) }

    static func shorten(_ text: String, to limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }

    static func timestamp(_ milliseconds: Int64) -> String {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000).ISO8601Format()
    }

    static func duration(_ milliseconds: Int64) -> String {
        let milliseconds = max(0, milliseconds)
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        if milliseconds < 60_000 { return String(format: "%.1fs", Double(milliseconds) / 1000) }
        let seconds = milliseconds / 1000
        if seconds < 3600 { return "\(seconds / 60)m\(String(format: "%02d", seconds % 60))s" }
        return "\(seconds / 3600)h\(String(format: "%02d", seconds % 3600 / 60))m"
    }

    static let style = """
        body { font: 14px/1.4 system-ui, -apple-system, "DejaVu Sans", sans-serif; margin: 24px; color: #1b1f24;
          background: #ffffff; }
        h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
        .facts { color: #57606a; margin: 0; } .error { color: #b71c1c; }
        .badge { font-size: 13px; padding: 2px 8px; border-radius: 10px; color: #fff; vertical-align: middle; }
        section { overflow-x: auto; } svg#dag, svg#timeline { max-width: 100%; height: auto; }
        svg text { font: 12px system-ui, "DejaVu Sans", sans-serif; }
        .node rect { stroke: #1b1f24; stroke-width: 0.6; } .node text { fill: #fff; }
        .node .name { font-weight: 600; } .node .detail { font-size: 11px; }
        .edge { fill: none; stroke: #8c959f; stroke-width: 1.4; }
        .bar-label { fill: #fff; font-size: 11px; } .lane { fill: #1b1f24; } .lane-line { stroke: #eaeef2; }
        .tick { stroke: #d0d7de; stroke-dasharray: 3 3; }
        .axis { fill: #57606a; font-size: 11px; }
        .state-succeeded rect, .key.state-succeeded, .badge.state-succeeded { fill: #2e7d32; background: #2e7d32; }
        .state-failed rect, .key.state-failed, .badge.state-failed { fill: #c62828; background: #c62828; }
        .state-running rect, .key.state-running, .badge.state-running { fill: #1565c0; background: #1565c0; }
        .state-assigned rect, .key.state-assigned { fill: #5e92f3; background: #5e92f3; }
        .state-pending rect, .key.state-pending { fill: #9e9e9e; background: #9e9e9e; }
        .state-skipped rect, .key.state-skipped { fill: #b0876b; background: #b0876b; }
        .state-cancelled rect, .key.state-cancelled, .badge.state-cancelled { fill: #616161; background: #616161; }
        .key { color: #fff; padding: 1px 6px; border-radius: 4px; font-size: 12px; }
        .status-healthy { background: #2e7d32; } .status-degraded { background: #ef6c00; }
        .status-unhealthy { background: #c62828; }
        table { border-collapse: collapse; width: 100%; max-width: 1400px; }
        th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #d0d7de; vertical-align: top; }
        th { background: #f6f8fa; } td.weight { text-align: right; }
        tr.pass .verdict { color: #2e7d32; font-weight: 600; } tr.fail .verdict { color: #c62828; font-weight: 600; }
        tr.fail { background: #fff5f5; }
        .empty, .note { color: #57606a; } footer { margin-top: 32px; color: #8c959f; font-size: 12px; }
        """
}
