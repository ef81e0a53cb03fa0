import Dispatch
import Foundation
import Protocol
import ShoalSupport

/// The live view on a terminal: the latest snapshot is drawn by a timer at most ten times a second (so a running
/// step's clock ticks when no event arrives), and only the rows that changed are rewritten, in place, with cursor
/// movements relative to the line below the table (no full-screen clear, nothing above the table touched).
final class LiveView: @unchecked Sendable {  // every mutable field is touched on `queue` only
    /// Ten redraws a second at most: a clock to the tenth of a second and a spinner, for little work.
    static let interval = DispatchTimeInterval.milliseconds(100)

    private let queue = DispatchQueue(label: "shoal.live-view")
    private let timer: DispatchSourceTimer
    private let style: LiveTable.Style
    private let output: @Sendable (String) -> Void
    private let size: @Sendable () -> (columns: Int, rows: Int?)
    private var latest: WorkflowSnapshot?
    private var drawn: [String] = []
    private var columns = 0
    private var frame = 0
    private var started = false
    private var stopped = false

    init(
        style: LiveTable.Style, output: @escaping @Sendable (String) -> Void = LiveView.standardOutput,
        size: @escaping @Sendable () -> (columns: Int, rows: Int?) = { TerminalSize.current() }
    ) {
        self.style = style
        self.output = output
        self.size = size
        timer = DispatchSource.makeTimerSource(queue: queue)
    }

    /// Starts the timer; nothing is drawn before the first snapshot.
    func start() {
        queue.sync {
            guard !started else { return }
            started = true
            timer.setEventHandler { [self] in tick() }
            timer.schedule(deadline: .now(), repeating: Self.interval)
            timer.resume()
        }
    }

    /// Keeps the newest snapshot for the next tick.
    func update(_ snapshot: WorkflowSnapshot) {
        queue.async { [self] in
            if let latest, latest.id == snapshot.id, latest.revision > snapshot.revision { return }
            latest = snapshot
        }
    }

    /// Prints `text` (whole lines) where the table is, and the table again below it.
    func printAbove(_ text: String) {
        queue.sync {
            let height = Self.physicalRows(drawn, columns: size().columns)
            var out = drawn.isEmpty ? "" : "\r" + Self.up(height) + "\u{1B}[J"
            out += text
            drawn = []
            output(out)
            if !stopped { tick() }
        }
    }

    /// The last frame, without a spinner's next phase; the table stays on screen and the cursor below it.
    func stop() {
        queue.sync {
            guard !stopped else { return }
            stopped = true
            timer.cancel()
            tick()
        }
    }

    deinit {
        // A dispatch source released while suspended traps.
        if !started {
            timer.resume()
            timer.cancel()
        }
    }

    private func tick() {
        guard let latest else { return }
        if !stopped { frame += 1 }
        let (width, height) = size()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let lines = LiveTable.render(latest, now: now, columns: width, rows: height, style: style, frame: frame)
        let resized = width != columns && columns != 0
        let out = Self.redraw(from: drawn, to: lines, resized: resized ? width : nil)
        columns = width
        drawn = lines
        if !out.isEmpty { output(out) }
    }

    /// What turns the screen showing `old` (the cursor on the line below it) into one showing `new`: each changed
    /// row rewritten in place, new rows appended. After a resize (`resized`: the new width) or when rows go away,
    /// the table is erased from its first row down and drawn again.
    static func redraw(from old: [String], to new: [String], resized: Int? = nil) -> String {
        var out = ""
        if resized != nil || new.count < old.count {
            if !old.isEmpty {
                let height = resized.map { physicalRows(old, columns: $0) } ?? old.count
                out += "\r" + up(height) + "\u{1B}[J"
            }
            for line in new { out += line + "\n" }
            return out
        }
        var row = old.count
        for index in old.indices where old[index] != new[index] {
            out += move(from: row, to: index) + "\r\u{1B}[2K" + new[index]
            row = index
        }
        if row != old.count { out += move(from: row, to: old.count) + "\r" }
        for line in new[old.count...] { out += "\u{1B}[2K" + line + "\n" }
        return out
    }

    /// How many screen rows `lines` take at `columns` (a terminal that reflows a narrowed window wraps them).
    static func physicalRows(_ lines: [String], columns: Int) -> Int {
        lines.reduce(0) { total, line in
            let width = visibleWidth(line)
            return total + max(1, (width + columns - 1) / max(1, columns))
        }
    }

    /// The characters of `line` that take a column: without its SGR sequences.
    static func visibleWidth(_ line: String) -> Int {
        var width = 0
        var inEscape = false
        for scalar in line.unicodeScalars {
            if inEscape {
                if (0x40...0x7E).contains(scalar.value) && scalar != "[" { inEscape = false }
            } else if scalar == "\u{1B}" {
                inEscape = true
            } else {
                width += 1
            }
        }
        return width
    }

    private static func move(from row: Int, to target: Int) -> String {
        target < row ? up(row - target) : target > row ? "\u{1B}[\(target - row)B" : ""
    }

    private static func up(_ rows: Int) -> String { rows > 0 ? "\u{1B}[\(rows)A" : "" }

    /// Writes to descriptor 1 after what `print` buffered, so both arrive in order.
    static let standardOutput: @Sendable (String) -> Void = { text in
        fflush(nil)
        try? FileDescriptorIO.writeAll(1, Data(text.utf8))
    }
}
