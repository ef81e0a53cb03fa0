import ArgumentParser
import Coordinator
import Foundation
import Protocol

/// `shoal completion SHELL`: the completion script ArgumentParser generates.
struct CompletionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "completion",
        abstract: "Print the shell completion script for bash, zsh or fish.",
        discussion: HelpExamples.discussion(
            """
            Commands, options and values complete, and so do workflow ids: they are read from the journal of the \
            output directory on the command line (-d DIR), else $SHOAL_DIR's, else the context's, else ./output.
            """, HelpExamples.completion))

    @Argument(help: "The shell: bash, zsh or fish.", completion: .list(["bash", "zsh", "fish"])) var shell: String

    func validate() throws {
        guard CompletionShell(rawValue: shell) != nil else {
            throw ValidationError("the shell must be bash, zsh or fish, got '\(shell.prefix(40))'")
        }
    }

    func run() {
        print(Shoal.completionScript(for: CompletionShell(rawValue: shell) ?? .bash))
    }
}

extension CompletionKind {
    /// The workflow ids in the journal of the output directory named on the
    /// command line being completed (`-d DIR`, `--dir DIR`), $SHOAL_DIR or the context's.
    static var workflowIDs: CompletionKind {
        .custom { words, index, prefix in
            // The prefix is the word at the cursor; with words after it, the
            // one handed over may be the last word's instead.
            let current = words.indices.contains(index) ? words[index] : prefix
            return WorkflowIDCompletion.ids(words: words, prefix: current.hasPrefix(prefix) ? prefix : current)
        }
    }
}

enum WorkflowIDCompletion {
    /// Ids starting with `prefix`; none when there is no journal (a
    /// completion never fails loudly).
    static func ids(words: [String], prefix: String) -> [String] {
        let path = outputDirectory(words) + "/.shoal/journal.sqlite"
        guard FileManager.default.fileExists(atPath: path),
            let workflows = try? Journal(path: path).summaries()
        else { return [] }
        return workflows.map(\.id).filter { $0.hasPrefix(prefix) }
    }

    static func outputDirectory(_ words: [String]) -> String {
        let names: Set<String> = ["-d", "--dir"]
        var directory = ProcessInfo.processInfo.environment["SHOAL_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (try? ShoalConfig.loadActive())?.context?.dir ?? "output"
        for (index, word) in words.enumerated() {
            if names.contains(word), index + 1 < words.count {
                directory = words[index + 1]
            } else if let equals = word.firstIndex(of: "="), names.contains(String(word[..<equals])) {
                directory = String(word[word.index(after: equals)...])
            }
        }
        if directory.hasPrefix("~/"), let home = ProcessInfo.processInfo.environment["HOME"] {
            directory = home + directory.dropFirst()
        }
        return directory
    }
}

/// A suggestion for a mistyped subcommand, before ArgumentParser reads the
/// rest of the line (it would complain about the first option instead).
enum SubcommandSuggestion {
    /// The error for `arguments` (without the program name), or nil when
    /// their subcommands are known.
    static func message(for arguments: [String]) -> String? {
        var command: ParsableCommand.Type = Shoal.self
        var path = "shoal"
        for word in arguments {
            let subcommands = command.configuration.subcommands
            guard !word.hasPrefix("-"), !subcommands.isEmpty else { return nil }
            var names = subcommands.map { $0._commandName }
            if command == Shoal.self { names.append("help") }
            if let next = subcommands.first(where: { $0._commandName == word }) {
                command = next
                path += " \(word)"
                continue
            }
            if names.contains(word) { return nil }
            let shown = String(word.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.prefix(40))
            guard let closest = closest(to: word, in: names) else {
                return "unknown command '\(shown)'; `\(path) --help` lists the commands"
            }
            return "unknown command '\(shown)'; did you mean '\(closest)'? (`\(path) --help` lists the commands)"
        }
        return nil
    }

    /// The nearest name by edit distance, if it is near enough to be a typo.
    static func closest(to word: String, in names: [String]) -> String? {
        let word = Array(word.lowercased().prefix(64))
        var best: (distance: Int, name: String)?
        for name in names {
            let distance = editDistance(word, Array(name))
            if distance < (best?.distance ?? Int.max) { best = (distance, name) }
        }
        guard let best, best.distance <= max(1, min(3, best.name.count / 3)) else {
            // A prefix is also a likely slip: `shoal stat`.
            return names.first { $0.hasPrefix(String(word)) && word.count >= 3 }
        }
        return best.name
    }

    /// Levenshtein distance with adjacent transpositions counted as one.
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], previous2[j - 2] + 1)
                }
            }
            previous2 = previous
            previous = current
        }
        return previous[b.count]
    }
}
