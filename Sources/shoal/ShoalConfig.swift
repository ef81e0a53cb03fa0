import ArgumentParser
import Foundation
import Protocol
import ShoalSupport
import Yams

/// Where a setting's value came from, as `shoal context show` prints it.
enum SettingSource: Sendable, Equatable, CustomStringConvertible {
    case flag
    case environment(String)
    case config(String)
    case defaultValue

    var description: String {
        switch self {
        case .flag: "flag"
        case .environment(let name): "env:\(name)"
        case .config(let context): "config:\(context)"
        case .defaultValue: "default"
        }
    }
}

/// A resolved setting: its value (nil when nothing sets it) and its source.
struct Setting<Value: Sendable>: Sendable {
    var value: Value
    var source: SettingSource
}

/// One named context of the config file. Paths are absolute once loaded (relative ones resolve against the file's
/// directory).
struct ShoalContext: Sendable, Equatable {
    var coordinator: String?
    var key: String?
    var coordinatorKey: String?
    var dir: String?
    var insecure: Bool?
    /// Defaults of `shoal create`.
    var environment: String?
    var nodes: Int?
    var target: String?
}

/// A config file that cannot be used: which file, which line, what is wrong.
struct ConfigError: Error, CustomStringConvertible {
    var file: String
    var line: Int?
    var message: String

    var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}

/// The config file `$XDG_CONFIG_HOME/shoal/config.yaml` (`~/.config/shoal/config.yaml`, or `--config FILE`, or
/// `$SHOAL_CONFIG`): named contexts and the current one.
struct ShoalConfigFile: Sendable, Equatable {
    var currentContext: String?
    var contexts: [String: ShoalContext] = [:]

    static let contextKeys = ["coordinator", "key", "coordinatorKey", "dir", "insecure", "create"]
    static let createKeys = ["environment", "nodes", "target"]

    /// Reads `path`; an absent file is an empty config.
    /// - Parameters:
    ///   - resolvingPaths: make relative paths absolute against the file's directory (false to rewrite the file
    ///     as it was).
    /// - Throws: `ConfigError` naming the file and the line.
    static func load(_ path: String, resolvingPaths: Bool = true) throws -> ShoalConfigFile {
        guard FileManager.default.fileExists(atPath: path) else { return ShoalConfigFile() }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, message: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, message: "not UTF-8 text")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigError(file: path, line: line(of: error), message: "not valid YAML: \(problem(of: error))")
        } catch {
            throw ConfigError(file: path, message: "not valid YAML")
        }
        guard let root else { return ShoalConfigFile() }
        let base = (absolutePath(path) as NSString).deletingLastPathComponent
        var parser = Parser(file: path, base: resolvingPaths ? base : nil)
        return try parser.config(root)
    }

    /// Writes the file 0600, atomically (its directory 0700 when it is made).
    func write(to path: String) throws {
        var root: [(String, Node)] = [("apiVersion", Node(OutputDocuments.apiVersion)), ("kind", Node("Config"))]
        if let currentContext { root.append(("currentContext", Node(currentContext))) }
        var contexts: [(Node, Node)] = []
        for name in self.contexts.keys.sorted() {
            let context = self.contexts[name]!
            var fields: [(Node, Node)] = []
            func add(_ key: String, _ value: String?) { if let value { fields.append((Node(key), Node(value))) } }
            add("coordinator", context.coordinator)
            add("key", context.key)
            add("coordinatorKey", context.coordinatorKey)
            add("dir", context.dir)
            if let insecure = context.insecure { fields.append((Node("insecure"), Node(insecure ? "true" : "false"))) }
            var create: [(Node, Node)] = []
            if let environment = context.environment { create.append((Node("environment"), Node(environment))) }
            if let nodes = context.nodes { create.append((Node("nodes"), Node(String(nodes)))) }
            if let target = context.target { create.append((Node("target"), Node(target))) }
            if !create.isEmpty { fields.append((Node("create"), Node(create))) }
            contexts.append((Node(name), Node(fields)))
        }
        root.append(("contexts", Node(contexts)))
        let text: String
        do {
            text = try Yams.serialize(node: Node(root.map { (Node($0.0), $0.1) }))
        } catch {
            throw ShoalError(.io, "cannot write the config file \(path)", cause: "\(error)")
        }
        try SecureFile.createDirectory((path as NSString).deletingLastPathComponent, mode: 0o700)
        try SecureFile.write(text, to: path, mode: 0o600)
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): mark.line
        case .duplicatedKeysInMapping(_, let context): context.mark.line
        default: nil
        }
    }

    private static func problem(of error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _):
            problem
        case .duplicatedKeysInMapping(let duplicates, _): "duplicated key \(duplicates.joined(separator: ", "))"
        case .reader(let problem, _, _, _): problem
        default: "\(error)".split(separator: "\n").first.map(String.init) ?? "unreadable"
        }
    }

    /// Reads the node tree by hand, so that every complaint names its line.
    private struct Parser {
        let file: String
        let base: String?

        func error(_ node: Node?, _ message: String) -> ConfigError {
            ConfigError(file: file, line: node?.mark?.line, message: message)
        }

        func mapping(_ node: Node, _ what: String, keys allowed: [String]) throws -> [(String, Node, Node)] {
            guard let mapping = node.mapping else { throw error(node, "\(what) must be a mapping") }
            var fields: [(String, Node, Node)] = []
            for (key, value) in mapping {
                guard let name = key.string else { throw error(key, "a key of \(what) must be a string") }
                if !allowed.isEmpty && !allowed.contains(name) {
                    throw error(
                        key,
                        "unknown key '\(Names.printable(String(name.prefix(40))))' in \(what); known: "
                            + allowed.joined(separator: ", "))
                }
                fields.append((name, key, value))
            }
            return fields
        }

        func string(_ node: Node, _ what: String) throws -> String {
            guard let scalar = node.scalar, !scalar.string.isEmpty
            else { throw error(node, "\(what) must be a non-empty string") }
            guard !scalar.string.contains(where: \.isNewline), scalar.string.utf8.count <= 4096 else {
                throw error(node, "\(what) must be one line")
            }
            return scalar.string
        }

        func path(_ node: Node, _ what: String) throws -> String {
            let value = try string(node, what)
            return ShoalConfig.expand(value, base: base)
        }

        mutating func config(_ root: Node) throws -> ShoalConfigFile {
            var config = ShoalConfigFile()
            var currentNode: Node?
            for (name, _, value) in try mapping(
                root, "the file", keys: ["apiVersion", "kind", "currentContext", "contexts"])
            {
                switch name {
                case "apiVersion":
                    guard try string(value, "apiVersion") == OutputDocuments.apiVersion else {
                        throw error(value, "apiVersion must be \(OutputDocuments.apiVersion)")
                    }
                case "kind":
                    guard try string(value, "kind") == "Config" else { throw error(value, "kind must be Config") }
                case "currentContext":
                    // `currentContext:` with no value is none; anything but a name is refused.
                    if value.scalar?.string.isEmpty != true { config.currentContext = try string(value, name) }
                    currentNode = value
                default:
                    if value.scalar?.string.isEmpty == true { continue }
                    for (contextName, key, body) in try mapping(value, "contexts", keys: []) {
                        guard ShoalConfig.isValidContextName(contextName) else {
                            let shown = Names.printable(String(contextName.prefix(40)))
                            throw error(key, "invalid context name '\(shown)'")
                        }
                        config.contexts[contextName] = try context(body, contextName)
                    }
                }
            }
            if let current = config.currentContext, config.contexts[current] == nil {
                throw error(currentNode, "currentContext '\(current)' is not one of the contexts")
            }
            return config
        }

        func context(_ node: Node, _ name: String) throws -> ShoalContext {
            var context = ShoalContext()
            let what = "context '\(name)'"
            for (key, _, value) in try mapping(node, what, keys: ShoalConfigFile.contextKeys) {
                switch key {
                case "coordinator":
                    let endpoint = try string(value, "coordinator")
                    guard ShoalConfig.isEndpoint(endpoint) else {
                        throw error(value, "coordinator must be an endpoint such as tcp://host:7401")
                    }
                    context.coordinator = endpoint
                case "key": context.key = try path(value, "key")
                case "coordinatorKey": context.coordinatorKey = try path(value, "coordinatorKey")
                case "dir": context.dir = try path(value, "dir")
                case "insecure":
                    guard let flag = value.bool else { throw error(value, "insecure must be true or false") }
                    context.insecure = flag
                default:
                    for (field, _, setting) in try mapping(value, "create of \(what)", keys: ShoalConfigFile.createKeys)
                    {
                        let text = try string(setting, field)
                        if let problem = ShoalConfig.problem(createField: field, value: text) {
                            throw error(setting, problem)
                        }
                        switch field {
                        case "environment": context.environment = text
                        case "nodes": context.nodes = Int(text)
                        default: context.target = text
                        }
                    }
                }
            }
            return context
        }
    }
}

/// The settings of the command being run: its config file and context, and each value with its source
/// (flags > environment > file).
enum ShoalConfig {
    /// `--config FILE` of the command line; `Shoal.main` takes it off before parsing, ahead of any other code.
    nonisolated(unsafe) static var flagPath: String?

    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// The config file and where its path came from.
    static var file: Setting<String> {
        if let flagPath { return Setting(value: absolutePath(expand(flagPath, base: nil)), source: .flag) }
        if let path = environment["SHOAL_CONFIG"], !path.isEmpty {
            return Setting(value: absolutePath(expand(path, base: nil)), source: .environment("SHOAL_CONFIG"))
        }
        let home = environment["HOME"] ?? "."
        let base = environment["XDG_CONFIG_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? home + "/.config"
        return Setting(value: base + "/shoal/config.yaml", source: .defaultValue)
    }

    /// The loaded file and the context in effect. A file that cannot be used ends the command with a one-line
    /// error and exit 78 (EX_CONFIG).
    static let active: Active = {
        do {
            return try loadActive()
        } catch let error as ConfigError {
            fail(error.description, code: 78)
        } catch {
            fail("\(file.value): \(error)", code: 78)
        }
    }()

    /// The config file and the context in effect: $SHOAL_CONTEXT (empty for none), else the file's currentContext.
    /// - Throws: `ConfigError` naming the file (and the line).
    static func loadActive() throws -> Active {
        let file = file
        let config = try ShoalConfigFile.load(file.value)
        let name: Setting<String?>
        if let chosen = environment["SHOAL_CONTEXT"] {
            name = Setting(value: chosen.isEmpty ? nil : chosen, source: .environment("SHOAL_CONTEXT"))
            if let chosen = name.value, config.contexts[chosen] == nil {
                throw ConfigError(
                    file: file.value,
                    message: "SHOAL_CONTEXT names '\(Names.printable(String(chosen.prefix(40))))', which is not "
                        + "one of its contexts (`shoal context list` shows them)")
            }
        } else if let current = config.currentContext {
            name = Setting(value: current, source: .config(current))
        } else {
            name = Setting(value: nil, source: .defaultValue)
        }
        return Active(file: file, config: config, name: name)
    }

    struct Active: Sendable {
        var file: Setting<String>
        var config: ShoalConfigFile
        var name: Setting<String?>
        var context: ShoalContext? { name.value.flatMap { config.contexts[$0] } }
    }

    /// A string setting: the flag, else the environment variable, else the current context's value.
    static func resolve(
        flag: String?, environment variable: String?, _ field: KeyPath<ShoalContext, String?>
    ) -> Setting<String?> {
        if let flag { return Setting(value: flag, source: .flag) }
        if let variable, let value = environment[variable], !value.isEmpty {
            return Setting(value: value, source: .environment(variable))
        }
        let active = active
        if let name = active.name.value, let value = active.context?[keyPath: field] {
            return Setting(value: value, source: .config(name))
        }
        return Setting(value: nil, source: .defaultValue)
    }

    /// The coordinator endpoint: --coordinator, $SHOAL_COORDINATOR, the context's.
    static func coordinator(flag: String?) -> Setting<String?> {
        resolve(flag: flag, environment: "SHOAL_COORDINATOR", \.coordinator)
    }

    /// The output directory: -d/--dir, $SHOAL_DIR, the context's, ./output.
    static func directory(flag: String?) -> Setting<String> {
        let setting = resolve(flag: flag, environment: "SHOAL_DIR", \.dir)
        return Setting(value: setting.value.map { expand($0, base: nil) } ?? "output", source: setting.source)
    }

    static func isEndpoint(_ value: String) -> Bool { value.hasPrefix("tcp://") || value.hasPrefix("ipc://") }

    static func isValidContextName(_ name: String) -> Bool { Names.isAgentID(name) }

    /// Why a `create` default is unusable, or nil.
    static func problem(createField field: String, value: String) -> String? {
        switch field {
        case "environment":
            Environment(rawValue: value.lowercased()) == nil
                ? "environment must be development, staging or production" : nil
        case "nodes":
            Int(value).map { (1...99).contains($0) } == true ? nil : "nodes must be a number from 1 to 99"
        default:
            Target(rawValue: value.lowercased()) == nil ? "target must be local, ssh or docker" : nil
        }
    }

    /// `~/x` against $HOME; a relative path against `base` when given.
    static func expand(_ path: String, base: String?) -> String {
        if path == "~" || path.hasPrefix("~/") {
            return (environment["HOME"] ?? ".") + path.dropFirst()
        }
        if let base, !path.hasPrefix("/") { return base + "/" + path }
        return path
    }

    /// Takes `--config FILE` (or `--config=FILE`) off the command line, wherever it is before `--`.
    static func takeConfigFlag(_ arguments: [String]) -> [String] {
        var remaining: [String] = []
        var index = 0
        var ended = false
        while index < arguments.count {
            let word = arguments[index]
            if ended {
                remaining.append(word)
            } else if word == "--" {
                ended = true
                remaining.append(word)
            } else if word == "--config" {
                guard index + 1 < arguments.count, !arguments[index + 1].isEmpty else {
                    fail("--config needs a file", code: ExitCode.validationFailure.rawValue)
                }
                flagPath = arguments[index + 1]
                index += 1
            } else if word.hasPrefix("--config=") {
                let value = String(word.dropFirst("--config=".count))
                guard !value.isEmpty else { fail("--config needs a file", code: ExitCode.validationFailure.rawValue) }
                flagPath = value
            } else {
                remaining.append(word)
            }
            index += 1
        }
        return remaining
    }
}

/// `-d/--dir DIR`: the output tree of every command that reads or writes one.
struct OutputDirectoryOption: ParsableArguments {
    @Option(
        name: [.customShort("d"), .customLong("dir")],
        help: ArgumentHelp(
            "The output directory (or $SHOAL_DIR, or the context's; default ./output).", valueName: "dir"),
        completion: .directory)
    var dir: String?

    /// The directory, resolved: flag, environment, context, `output`.
    var setting: Setting<String> { ShoalConfig.directory(flag: dir) }
    var path: String { setting.value }
}
