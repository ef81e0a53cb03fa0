import ArgumentParser
import Foundation
import ShoalSupport

/// How `create`, `resume`, `watch` and `status -w` show a workflow's progress.
struct ProgressOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Progress: auto (a live table on a terminal, plain lines otherwise), tty (the live table), plain "
                + "(a line per step start and end) or none.", valueName: "mode"))
    var progress = "auto"
    @Flag(help: "No colours in the live table (also off with NO_COLOR set, or TERM=dumb).") var noColor = false
    @Flag(name: [.short, .long], help: "Also print each step's log (terraform, kubectl and git output) when it ends.")
    var verbose = false
    @Flag(name: [.short, .long], help: "Print only the workflow id, the result line(s) and errors.") var quiet = false

    /// A bad value is one line and exit 64, like a mistyped subcommand (ArgumentParser would add its usage).
    func validate() throws {
        guard ProgressMode(rawValue: progress) != nil else {
            fail(
                "--progress must be auto, tty, plain or none, got '\(Names.printable(String(progress.prefix(40))))'",
                code: ExitCode.validationFailure.rawValue)
        }
        if verbose && quiet {
            fail("-v/--verbose and -q/--quiet exclude each other", code: ExitCode.validationFailure.rawValue)
        }
    }

    /// Whether any of these options was given (they only mean something where progress is shown).
    var isSet: Bool { progress != "auto" || noColor || verbose || quiet }

    /// What to show, read from the options, the environment and standard output.
    func style(environment: [String: String] = ProcessInfo.processInfo.environment) -> ProgressStyle {
        ProgressStyle.resolve(
            mode: ProgressMode(rawValue: progress) ?? .auto, noColor: noColor, verbose: verbose, quiet: quiet,
            terminal: isatty(1) == 1, environment: environment)
    }
}

enum ProgressMode: String, CaseIterable {
    case auto, tty, plain, none
}

/// The resolved choice: which display, with or without colours and Unicode, how talkative.
struct ProgressStyle: Equatable {
    enum Display: Equatable {
        /// The table of steps redrawn in place.
        case live
        /// A line per step start and end (what scripts and logs read).
        case plain
        /// No step lines.
        case none
    }

    var display: Display
    var color: Bool
    var unicode: Bool
    var verbose: Bool
    var quiet: Bool

    /// `auto` is the live table when standard output is a terminal that can move its cursor; colours are off with
    /// `--no-color`, a non-empty `NO_COLOR` (no-color.org) or `TERM=dumb`; `-q` shows no steps at all.
    static func resolve(
        mode: ProgressMode, noColor: Bool, verbose: Bool, quiet: Bool, terminal: Bool, environment: [String: String]
    ) -> ProgressStyle {
        let term = environment["TERM"] ?? ""
        let dumb = term == "dumb"
        var display: Display
        switch mode {
        case .auto: display = terminal && !dumb && !term.isEmpty ? .live : .plain
        case .tty: display = .live
        case .plain: display = .plain
        case .none: display = .none
        }
        if quiet { display = .none }
        let color = !noColor && (environment["NO_COLOR"] ?? "").isEmpty && !dumb
        // The first of these that is set decides, as in setlocale(3).
        let locale = [environment["LC_ALL"], environment["LC_CTYPE"], environment["LANG"]]
            .compactMap { $0 }.first { !$0.isEmpty } ?? ""
        let unicode = locale.lowercased().contains("utf-8") || locale.lowercased().contains("utf8")
        return ProgressStyle(display: display, color: color, unicode: unicode, verbose: verbose, quiet: quiet)
    }

    /// Plain lines, no colours: what a caller that gives no options gets.
    static let plain = ProgressStyle(display: .plain, color: false, unicode: false, verbose: false, quiet: false)
}

/// The size of the terminal on standard output, read again at every redraw (so a resize applies at the next
/// tick, without a SIGWINCH handler); `COLUMNS`/`LINES` or 80x24 when it is not a terminal.
enum TerminalSize {
    static func current(environment: [String: String] = ProcessInfo.processInfo.environment) -> (
        columns: Int, rows: Int?
    ) {
        var size = winsize()
        if ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 {
            return (Int(size.ws_col), size.ws_row > 0 ? Int(size.ws_row) : nil)
        }
        let columns = environment["COLUMNS"].flatMap { Int($0) }.flatMap { (10...1000).contains($0) ? $0 : nil }
        let rows = environment["LINES"].flatMap { Int($0) }.flatMap { (3...1000).contains($0) ? $0 : nil }
        return (columns ?? 80, rows)
    }
}
