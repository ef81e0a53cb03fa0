import ArgumentParser
import Foundation
import Protocol
import ShoalSupport

/// `shoal context`: the named contexts of the config file.
struct ContextCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "context",
        abstract: "Manage named contexts: a coordinator, keys and an output directory that every command uses.",
        discussion: HelpExamples.discussion(
            """
            The contexts live in $XDG_CONFIG_HOME/shoal/config.yaml (~/.config/shoal/config.yaml), or the file \
            given with --config FILE or $SHOAL_CONFIG; the current one is the file's, or $SHOAL_CONTEXT's (empty \
            for none). Every setting is taken from a flag first, then the environment ($SHOAL_COORDINATOR, \
            $SHOAL_KEY, $SHOAL_COORDINATOR_KEY, $SHOAL_DIR), then the context; `shoal context show` prints each \
            value and where it came from. Relative paths in the file are relative to the file's directory. The \
            file is written 0600; `set`, `use` and `delete` rewrite it (comments are not kept).
            """, HelpExamples.context),
        subcommands: [
            ListContexts.self, UseContext.self, SetContext.self, ShowContext.self, DeleteContext.self,
        ])
}

/// Loads the config file as written (relative paths kept) for a change, or ends with its one-line error.
private func loadForChange() -> (path: String, config: ShoalConfigFile) {
    let path = ShoalConfig.file.value
    do {
        return (path, try ShoalConfigFile.load(path, resolvingPaths: false))
    } catch let error as ConfigError {
        fail(error.description, code: 78)
    } catch {
        fail("\(path): \(error)", code: 78)
    }
}

private func save(_ config: ShoalConfigFile, to path: String) {
    do {
        try config.write(to: path)
    } catch let error as ShoalError {
        fail(error.description)
    } catch {
        fail("cannot write \(path): \(error)")
    }
}

private func checkContextName(_ name: String) throws {
    guard ShoalConfig.isValidContextName(name) else {
        throw ValidationError(
            "invalid context name '\(Names.printable(String(name.prefix(64))))': use 1-64 letters, digits, '.', '_' "
                + "or '-', starting with a letter or digit")
    }
}

struct ListContexts: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the contexts; * marks the current one.",
        discussion: HelpExamples.contextList)

    @OptionGroup var format: OutputFormatOption

    struct Item: Encodable {
        var name: String
        var current: Bool
        var coordinator: String?
        var key: String?
        var coordinatorKey: String?
        var dir: String?
        var insecure: Bool?
        var create: CreateDefaults?
    }

    struct CreateDefaults: Encodable {
        var environment: String?
        var nodes: Int?
        var target: String?
    }

    func run() {
        let active = ShoalConfig.active
        let names = active.config.contexts.keys.sorted()
        let items = names.map { name -> Item in
            let context = active.config.contexts[name]!
            let create =
                context.environment == nil && context.nodes == nil && context.target == nil
                ? nil : CreateDefaults(environment: context.environment, nodes: context.nodes, target: context.target)
            return Item(
                name: name, current: name == active.name.value, coordinator: context.coordinator, key: context.key,
                coordinatorKey: context.coordinatorKey, dir: context.dir, insecure: context.insecure, create: create)
        }
        if format.printDocument(OutputDocuments.List(kind: "ContextList", items: items)) { return }
        if format.format == .name {
            for name in names { print(name) }
            return
        }
        print("\(pad("CURRENT", 7)) \(pad("NAME", 20)) \(pad("COORDINATOR", 28)) DIR")
        for item in items {
            print(
                "\(pad(item.current ? "*" : "", 7)) \(pad(item.name, 20)) \(pad(item.coordinator ?? "-", 28)) "
                    + (item.dir ?? "-"))
        }
        if items.isEmpty {
            FileDescriptorIO.printError(
                "no contexts in \(active.file.value); `shoal context set NAME --coordinator ...` makes one\n")
        }
    }
}

struct UseContext: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "use", abstract: "Make NAME the current context.", discussion: HelpExamples.contextUse)

    @Argument(help: "The context's name.", completion: .contextNames) var name: String

    func validate() throws { try checkContextName(name) }

    func run() {
        var (path, config) = loadForChange()
        guard config.contexts[name] != nil else {
            fail("no context '\(name)' in \(path); `shoal context list` shows them", code: ExitCode.failure.rawValue)
        }
        config.currentContext = name
        save(config, to: path)
        print("current context: \(name) (\(path))")
        if let chosen = ShoalConfig.environment["SHOAL_CONTEXT"], chosen != name {
            FileDescriptorIO.printError("note: $SHOAL_CONTEXT is set and wins over the file's current context\n")
        }
    }
}

struct SetContext: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Create a context or change its settings (the first context made becomes the current one).",
        discussion: HelpExamples.discussion(
            """
            Only the settings given change; --unset SETTING removes one (coordinator, key, coordinator-key, dir, \
            insecure, environment, nodes, target). Paths given here are stored absolute.
            """, HelpExamples.contextSet))

    @Argument(help: "The context's name.", completion: .contextNames) var name: String
    @Option(help: "The coordinator's control endpoint, e.g. tcp://10.0.0.5:7401.") var coordinator: String?
    @Option(help: ArgumentHelp("This client's secret key file, NAME.key.", valueName: "file")) var key: String?
    @Option(help: ArgumentHelp("The coordinator's public key file, coordinator.pub.", valueName: "file"))
    var coordinatorKey: String?
    @Option(
        name: [.customShort("d"), .customLong("dir")], help: ArgumentHelp("The output directory.", valueName: "dir"))
    var dir: String?
    @Flag(inversion: .prefixedNo, help: "Plain TCP to the coordinator (one run with --insecure).") var insecure: Bool?
    @Option(help: "Default environment of `create`: development, staging or production.") var environment: String?
    @Option(help: "Default node count of `create`, 1 to 99.") var nodes: Int?
    @Option(help: "Default target of `create`: local, ssh or docker.") var target: String?
    @Option(help: ArgumentHelp("Remove a setting (repeatable).", valueName: "setting")) var unset: [String] = []

    static let settings = ["coordinator", "key", "coordinator-key", "dir", "insecure", "environment", "nodes", "target"]

    func validate() throws {
        try checkContextName(name)
        if let coordinator, !ShoalConfig.isEndpoint(coordinator) {
            throw ValidationError("--coordinator must be an endpoint such as tcp://host:7401")
        }
        for (field, value) in [("environment", environment), ("nodes", nodes.map(String.init)), ("target", target)] {
            if let value, let problem = ShoalConfig.problem(createField: field, value: value) {
                throw ValidationError("--\(problem)")
            }
        }
        for path in [key, coordinatorKey, dir].compactMap({ $0 }) {
            guard !path.isEmpty, !path.contains(where: \.isNewline) else {
                throw ValidationError("a path is one non-empty line")
            }
        }
        for setting in unset where !Self.settings.contains(setting) {
            let shown = Names.printable(String(setting.prefix(40)))
            throw ValidationError("--unset takes one of \(Self.settings.joined(separator: ", ")), got '\(shown)'")
        }
    }

    func run() {
        var (path, config) = loadForChange()
        let created = config.contexts[name] == nil
        var context = config.contexts[name] ?? ShoalContext()
        func stored(_ value: String) -> String { absolutePath(ShoalConfig.expand(value, base: nil)) }
        if let coordinator { context.coordinator = coordinator }
        if let key { context.key = stored(key) }
        if let coordinatorKey { context.coordinatorKey = stored(coordinatorKey) }
        if let dir { context.dir = stored(dir) }
        if let insecure { context.insecure = insecure }
        if let environment { context.environment = environment.lowercased() }
        if let nodes { context.nodes = nodes }
        if let target { context.target = target.lowercased() }
        for setting in unset {
            switch setting {
            case "coordinator": context.coordinator = nil
            case "key": context.key = nil
            case "coordinator-key": context.coordinatorKey = nil
            case "dir": context.dir = nil
            case "insecure": context.insecure = nil
            case "environment": context.environment = nil
            case "nodes": context.nodes = nil
            default: context.target = nil
            }
        }
        for file in [context.key, context.coordinatorKey].compactMap({ $0 }) {
            let resolved = ShoalConfig.expand(file, base: (path as NSString).deletingLastPathComponent)
            if !FileManager.default.fileExists(atPath: resolved) {
                FileDescriptorIO.printError("warning: \(resolved) does not exist (yet)\n")
            }
        }
        config.contexts[name] = context
        if config.currentContext == nil { config.currentContext = name }
        save(config, to: path)
        print("context \(name) \(created ? "created" : "updated") in \(path)"
            + (config.currentContext == name ? " (current)" : ""))
    }
}

struct ShowContext: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print the settings in effect and where each came from: flag, env, config:CONTEXT or default.",
        discussion: HelpExamples.contextShow)

    @Option(help: "As a command given --coordinator would use it.") var coordinator: String?
    @OptionGroup var security: ClientSecurityOptions
    @OptionGroup var directory: OutputDirectoryOption
    @OptionGroup var format: OutputFormatOption

    func validate() throws { format.refuseName("context show") }

    /// One setting: its value (null when none) and where it came from.
    struct Entry<Value: Encodable>: Encodable {
        var value: Value?
        var source: String

        init(_ value: Value?, _ source: SettingSource) {
            self.value = value
            self.source = source.description
        }

        enum CodingKeys: String, CodingKey { case value, source }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(value, forKey: .value)
            try container.encode(source, forKey: .source)
        }
    }

    struct Create: Encodable {
        var environment: Entry<String>
        var nodes: Entry<Int>
        var target: Entry<String>
    }

    /// `kind: ContextSettings`.
    struct Document: Encodable {
        var apiVersion = OutputDocuments.apiVersion
        var kind = "ContextSettings"
        var config: Entry<String>
        var context: Entry<String>
        var coordinator: Entry<String>
        var key: Entry<String>
        var coordinatorKey: Entry<String>
        var insecure: Entry<Bool>
        var dir: Entry<String>
        var create: Create
    }

    func run() {
        let active = ShoalConfig.active
        let coordinator = ShoalConfig.coordinator(flag: coordinator)
        let key = security.keySetting
        let coordinatorKey = security.coordinatorKeySetting
        let insecure = security.insecureSetting
        let dir = directory.setting
        func fromContext<T>(_ field: KeyPath<ShoalContext, T?>) -> Entry<T> {
            if let name = active.name.value, let value = active.context?[keyPath: field] {
                return Entry(value, .config(name))
            }
            return Entry(nil, .defaultValue)
        }
        let document = Document(
            config: Entry(active.file.value, active.file.source), context: Entry(active.name.value, active.name.source),
            coordinator: Entry(coordinator.value, coordinator.source), key: Entry(key.value, key.source),
            coordinatorKey: Entry(coordinatorKey.value, coordinatorKey.source),
            insecure: Entry(insecure.value, insecure.source), dir: Entry(absolutePath(dir.value), dir.source),
            create: Create(
                environment: fromContext(\.environment), nodes: fromContext(\.nodes), target: fromContext(\.target)))
        if format.printDocument(document) { return }
        let rows: [(String, String?, String)] = [
            ("config", document.config.value, document.config.source),
            ("context", document.context.value, document.context.source),
            ("coordinator", document.coordinator.value, document.coordinator.source),
            ("key", document.key.value, document.key.source),
            ("coordinator-key", document.coordinatorKey.value, document.coordinatorKey.source),
            ("insecure", String(document.insecure.value ?? false), document.insecure.source),
            ("dir", document.dir.value, document.dir.source),
            ("create.environment", document.create.environment.value, document.create.environment.source),
            ("create.nodes", document.create.nodes.value.map(String.init), document.create.nodes.source),
            ("create.target", document.create.target.value, document.create.target.source),
        ]
        let width = max(24, rows.map { ($0.1 ?? "-").count }.max() ?? 0)
        print("\(pad("SETTING", 18)) \(pad("VALUE", width)) SOURCE")
        for (name, value, source) in rows { print("\(pad(name, 18)) \(pad(value ?? "-", width)) \(source)") }
    }
}

struct DeleteContext: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a context.", discussion: HelpExamples.contextDelete)

    @Argument(help: "The context's name.", completion: .contextNames) var name: String

    func validate() throws { try checkContextName(name) }

    func run() {
        var (path, config) = loadForChange()
        guard config.contexts.removeValue(forKey: name) != nil else {
            fail("no context '\(name)' in \(path); `shoal context list` shows them", code: ExitCode.failure.rawValue)
        }
        if config.currentContext == name { config.currentContext = nil }
        save(config, to: path)
        print("context \(name) deleted from \(path)")
    }
}

extension CompletionKind {
    /// The names of the config file's contexts (none when it cannot be read: a completion never fails loudly).
    static var contextNames: CompletionKind {
        .custom { _, _, prefix in
            let names = (try? ShoalConfigFile.load(ShoalConfig.file.value))?.contexts.keys.sorted() ?? []
            return names.filter { $0.hasPrefix(prefix) }
        }
    }
}
