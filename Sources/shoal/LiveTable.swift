import Foundation
import Protocol

/// One frame of the live view: a header and one row per step, fitted to the terminal. A pure function of its
/// inputs, so that a test gives it snapshots, a width and a style and reads the exact lines.
enum LiveTable {
    struct Style: Equatable {
        var color: Bool
        var unicode: Bool
    }

    /// What a piece of a row looks like; SGR codes only when colours are on.
    enum Tone {
        case plain, bold, dim, green, red, yellow

        var code: String {
            switch self {
            case .plain: ""
            case .bold: "\u{1B}[1m"
            case .dim: "\u{1B}[2m"
            case .green: "\u{1B}[32m"
            case .red: "\u{1B}[31m"
            case .yellow: "\u{1B}[33m"
            }
        }
    }

    struct Segment: Equatable {
        var text: String
        var tone: Tone = .plain
    }

    /// The fields of a step the table shows: the one place it reads a step, so a change of the step's type
    /// touches this function only.
    struct Row: Equatable {
        var name: String
        var state: StepSnapshot.State
        var attempt: Int
        var agent: String?
        var host: String?
        var startedAt: Int64?
        var finishedAt: Int64?
        var note: String?

        init(_ step: StepSnapshot) {
            name = step.name
            state = step.state
            attempt = step.attempt
            agent = step.agent
            host = step.host
            startedAt = step.startedAt
            finishedAt = step.finishedAt
            note = step.state == .failed ? (step.error ?? step.summary) : step.summary
        }
    }

    /// The lines of one frame.
    /// - Parameters:
    ///   - now: the wall clock in milliseconds since 1970 (the snapshot's times are the coordinator's).
    ///   - columns: the terminal's width; every line is at most `columns - 1` wide (a character in the last
    ///     column leaves some terminals about to wrap).
    ///   - rows: the terminal's height; when the table would not fit, the earliest finished steps are folded
    ///     into one line (a row above the screen's top cannot be redrawn).
    ///   - frame: the spinner's phase, one more at every tick.
    static func render(
        _ workflow: WorkflowSnapshot, now: Int64, columns: Int, rows: Int? = nil, style: Style, frame: Int = 0
    ) -> [String] {
        let limit = max(10, columns - 1)
        let steps = workflow.steps.map(Row.init)
        var lines = [header(workflow, steps: steps, now: now, style: style)]
        let shown = visible(steps, rows: rows)
        if shown.hidden.count > 0 {
            let counts = Dictionary(grouping: shown.hidden, by: \.state).map { "\($0.value.count) \($0.key.rawValue)" }
                .sorted()
            lines.append([
                Segment(text: "  \(style.unicode ? "…" : "...") \(shown.hidden.count) more: ", tone: .dim),
                Segment(text: counts.joined(separator: ", "), tone: .dim),
            ])
        }
        let nameWidth = min(28, max(4, steps.map(\.name.count).max() ?? 4))
        let placeWidth = min(36, shown.steps.map { place($0).count }.max() ?? 0)
        for step in shown.steps {
            lines.append(row(step, now: now, nameWidth: nameWidth, placeWidth: placeWidth, style: style, frame: frame))
        }
        return lines.map { draw(fit($0, limit: limit, unicode: style.unicode), color: style.color) }
    }

    private static func header(_ workflow: WorkflowSnapshot, steps: [Row], now: Int64, style: Style) -> [Segment] {
        let done = steps.filter { $0.state.isFinished }.count
        let end = workflow.finishedAt ?? now
        let tone: Tone =
            switch workflow.state {
            case .succeeded: .green
            case .running: .yellow
            default: .red
            }
        return [
            Segment(text: "workflow "), Segment(text: clean(workflow.id), tone: .bold), Segment(text: "  "),
            Segment(text: workflow.state.rawValue, tone: tone),
            Segment(text: "  \(done)/\(steps.count) done  "),
            Segment(text: clock(end - workflow.createdAt), tone: .bold),
        ]
    }

    private static func row(
        _ step: Row, now: Int64, nameWidth: Int, placeWidth: Int, style: Style, frame: Int
    ) -> [Segment] {
        let (mark, tone) = self.mark(step.state, style: style, frame: frame)
        var elapsed = ""
        if let started = step.startedAt {
            elapsed = clock((step.finishedAt ?? (step.state.isFinished ? started : now)) - started)
        }
        var segments = [
            Segment(text: " "), Segment(text: mark, tone: tone), Segment(text: " "),
            Segment(text: pad(clean(step.name), nameWidth)), Segment(text: " "),
            Segment(text: pad(step.state.rawValue, 9), tone: tone),
            Segment(text: " " + String(repeating: " ", count: max(0, 7 - elapsed.count)) + elapsed),
        ]
        let place = place(step)
        if !place.isEmpty || step.note != nil {
            segments.append(Segment(text: "  " + pad(place, placeWidth), tone: .dim))
        }
        if let note = step.note, !note.isEmpty {
            segments.append(Segment(text: "  " + clean(note), tone: step.state == .failed ? .red : .plain))
        }
        return segments
    }

    /// `agent on host`, and the attempt after the first.
    private static func place(_ step: Row) -> String {
        guard step.state != .pending, let agent = step.agent else { return "" }
        var text = clean(agent)
        if let host = step.host { text += " on " + clean(host) }
        if step.attempt > 1 { text += ", attempt \(step.attempt)" }
        return text
    }

    private static func mark(_ state: StepSnapshot.State, style: Style, frame: Int) -> (String, Tone) {
        switch state {
        case .pending: (style.unicode ? "·" : ".", .dim)
        case .assigned, .running:
            style.unicode
                ? (["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"][frame % 10], .yellow)
                : (["-", "\\", "|", "/"][frame % 4], .yellow)
        case .succeeded: (style.unicode ? "✓" : "+", .green)
        case .failed: (style.unicode ? "✗" : "x", .red)
        case .skipped, .cancelled: ("-", .dim)
        }
    }

    /// The steps that fit `rows` (one line is the header, one the cursor's): when they don't all fit, the
    /// earliest finished steps give way first, then the last pending ones.
    static func visible(_ steps: [Row], rows: Int?) -> (steps: [Row], hidden: [Row]) {
        guard let rows, steps.count + 2 > rows else { return (steps, []) }
        let room = max(1, rows - 3)  // header, the "more" line, the cursor's line
        var hide = Set<Int>()
        let needed = steps.count - room
        let finished = steps.indices.filter { steps[$0].state.isFinished && steps[$0].state != .failed }
        for index in finished.prefix(needed) { hide.insert(index) }
        for index in steps.indices.reversed() where hide.count < needed && steps[index].state == .pending {
            hide.insert(index)
        }
        for index in steps.indices where hide.count < needed && !hide.contains(index) { hide.insert(index) }
        return (
            steps.indices.filter { !hide.contains($0) }.map { steps[$0] },
            steps.indices.filter { hide.contains($0) }.map { steps[$0] }
        )
    }

    /// Cuts the segments to `limit` characters, ending with an ellipsis where something was cut.
    static func fit(_ segments: [Segment], limit: Int, unicode: Bool) -> [Segment] {
        let ellipsis = unicode ? "…" : "..."
        // Trailing blanks of padding are not worth an ellipsis.
        let segments = trimTrailing(segments)
        guard segments.reduce(0, { $0 + $1.text.count }) > limit else { return segments }
        var total = 0
        var result: [Segment] = []
        let room = limit - ellipsis.count
        for segment in segments {
            if total + segment.text.count <= room {
                result.append(segment)
                total += segment.text.count
                continue
            }
            var cut = String(segment.text.prefix(room - total))
            // At a word's end when one is near: `pass: 3 of 3…`, not `pass: 3 of 3 p…`.
            let next = segment.text.dropFirst(cut.count).first
            if let next, next.isLetter || next.isNumber, cut.last.map({ $0.isLetter || $0.isNumber }) ?? false,
                let space = cut.lastIndex(of: " "), cut.distance(from: space, to: cut.endIndex) <= 12,
                cut[..<space].contains(where: { $0 != " " })
            {
                cut = String(cut[..<space])
            }
            while cut.last == " " { cut.removeLast() }
            result.append(Segment(text: cut + ellipsis, tone: segment.tone))
            break
        }
        return result
    }

    private static func trimTrailing(_ segments: [Segment]) -> [Segment] {
        var segments = segments
        while let last = segments.last {
            let trimmed = String(last.text.reversed().drop { $0 == " " }.reversed())
            if trimmed.isEmpty {
                segments.removeLast()
            } else {
                segments[segments.count - 1].text = trimmed
                break
            }
        }
        return segments
    }

    static func draw(_ segments: [Segment], color: Bool) -> String {
        var line = ""
        for segment in segments {
            if color && segment.tone != .plain {
                line += segment.tone.code + segment.text + "\u{1B}[0m"
            } else {
                line += segment.text
            }
        }
        while line.last == " " { line.removeLast() }
        return line
    }

    /// Text from the network on one line, without control characters (an escape sequence in a step's summary
    /// must not move the cursor).
    static func clean(_ text: String) -> String {
        String(
            String.UnicodeScalarView(
                text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
    }

    /// `0.4s`, `12.3s`, `4m05s`, `1h02m`.
    static func clock(_ milliseconds: Int64) -> String {
        let ms = max(0, milliseconds)
        if ms < 60_000 {
            let tenths = ms / 100
            return "\(tenths / 10).\(tenths % 10)s"
        }
        let seconds = ms / 1000
        if seconds < 3600 { return "\(seconds / 60)m" + two(seconds % 60) + "s" }
        return "\(seconds / 3600)h" + two(seconds / 60 % 60) + "m"
    }

    private static func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
