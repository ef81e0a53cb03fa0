import ArgumentParser
import Coordinator
import Foundation
import ShoalSupport

/// `shoal keys`: CURVE key pairs and the coordinator's allow-list.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Make CURVE keys and manage the coordinator's allow-list.",
        discussion: HelpExamples.discussion(
            """
            Every peer of the bus has a key pair: NAME.key (secret, mode 0600) and NAME.pub (public). The \
            coordinator accepts only the public keys in its allow-list directory, which it re-reads every second: \
            `allow` adds a key, `revoke` removes it and cuts that peer off.
            """, HelpExamples.keys),
        subcommands: [GenerateKey.self, InitKeys.self, ListKeys.self, AllowKey.self, RevokeKey.self])
}

struct AllowDirectoryOption: ParsableArguments {
    @Option(help: ArgumentHelp("The allow-list directory (default ~/.shoal/allow).", valueName: "dir"))
    var allow: String?

    var path: String { allow ?? KeyDefaults.allowDirectory }
}

struct GenerateKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Generate a key pair: DIR/NAME.key (0600) and DIR/NAME.pub.",
        discussion: HelpExamples.keysGenerate)

    @Argument(help: "The key's name: the agent id, `coordinator`, or a user's name.") var name: String
    @Option(help: ArgumentHelp("Where to write the files (default ~/.shoal/keys).", valueName: "dir"))
    var dir: String?
    @Flag(help: "Replace an existing key of that name.") var force = false

    func validate() throws {
        guard KeyFile.isValidName(name) else {
            throw ValidationError(
                "invalid key name '\(name.prefix(64))': use 1-64 letters, digits, '.', '_' or '-', "
                    + "starting with a letter or digit")
        }
    }

    func run() throws {
        let directory = dir ?? KeyDefaults.keyDirectory
        do {
            let contents = try KeyFile.generate(name: name, directory: directory, overwrite: force)
            print("secret key  \(directory)/\(name).key (mode 0600: keep it on this host)")
            print("public key  \(directory)/\(name).pub")
            print("            \(contents.publicKey)")
        } catch let error as ShoalError {
            fail(error.description)
        }
    }
}

/// `shoal keys init DIR NAME...`: the keys of a whole single-host deployment in one directory (the compose file's
/// init service). Keys that exist are kept, so running it again changes nothing.
struct InitKeys: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Make the key pairs NAME... in DIR (keeping those that exist) and allow every one but the coordinator.",
        discussion: HelpExamples.discussion(
            """
            For a coordinator and its peers that share one host or volume, as compose/compose.yaml does: \
            DIR/NAME.key (0600) and DIR/NAME.pub for every NAME, DIR/coordinator.key for the coordinator, and the \
            allow-list DIR/allow with the public key of every NAME except `coordinator`. Keys allowed by other \
            means stay allowed.
            """, HelpExamples.keysInit))

    @Argument(help: ArgumentHelp("The directory for the keys; the allow-list is DIR/allow.", valueName: "dir"))
    var dir: String
    @Argument(help: "The key names, e.g. coordinator infra validation cli (`coordinator` is never allowed).")
    var names: [String]

    func validate() throws {
        guard !names.isEmpty else { throw ValidationError("give at least one key name after the directory") }
        for name in names where !KeyFile.isValidName(name) {
            throw ValidationError(
                "invalid key name '\(name.prefix(64))': use 1-64 letters, digits, '.', '_' or '-', "
                    + "starting with a letter or digit")
        }
    }

    func run() throws {
        let allow = "\(dir)/allow"
        do {
            try SecureFile.createDirectory(dir, mode: 0o700)
            try SecureFile.createDirectory(allow, mode: 0o700)
            var allowed: Set<String> = []
            for name in names {
                let secretPath = "\(dir)/\(name).key"
                let contents: KeyFile.Contents
                if FileManager.default.fileExists(atPath: secretPath) {
                    contents = try KeyFile.loadSecret(secretPath)
                    print("kept        \(secretPath) \(contents.publicKey)")
                } else {
                    contents = try KeyFile.generate(name: name, directory: dir)
                    print("made        \(secretPath) \(contents.publicKey)")
                }
                guard name != "coordinator" else { continue }
                try KeyFile.writePublic(contents, to: "\(allow)/\(name).pub")
                allowed.insert("\(name).pub")
            }
            print("allow-list  \(allow): \(allowed.sorted().joined(separator: " "))")
        } catch let error as ShoalError {
            fail(error.description)
        }
    }
}

struct ListKeys: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the allowed public keys.", discussion: HelpExamples.keysList)

    @OptionGroup var allow: AllowDirectoryOption
    @OptionGroup var format: OutputFormatOption

    func run() throws {
        let loaded: (entries: [AllowListDirectory.Entry], problems: [String])
        do {
            loaded = try AllowListDirectory(path: allow.path).load()
        } catch let error as ShoalError {
            fail(error.description)
        }
        for problem in loaded.problems {
            FileHandle.standardError.write(Data("warning: ignored: \(problem)\n".utf8))
        }
        let items = loaded.entries.map { OutputDocuments.Key(name: $0.name, publicKey: $0.publicKey, file: $0.file) }
        if format.printDocument(OutputDocuments.List(kind: "KeyList", items: items)) { return }
        if format.format == .name {
            for entry in loaded.entries { print(entry.name) }
            return
        }
        print("\(pad("NAME", 24)) \(pad("PUBLIC KEY", 40)) FILE")
        for entry in loaded.entries {
            print("\(pad(entry.name, 24)) \(entry.publicKey) \(entry.file)")
        }
    }
}

struct AllowKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allow",
        abstract: "Add a public key file to the allow-list (a running coordinator picks it up within a second).",
        discussion: HelpExamples.keysAllow)

    @Argument(help: "The peer's NAME.pub file.") var file: String
    @OptionGroup var allow: AllowDirectoryOption
    @Flag(help: "Replace an allowed key of the same name.") var force = false

    func run() throws {
        do {
            let contents = try KeyFile.loadPublic(file)
            let directory = allow.path
            let target = "\(directory)/\(contents.name).pub"
            if !force, let existing = try? KeyFile.loadPublic(target), existing.publicKey != contents.publicKey {
                fail(
                    "another key named '\(contents.name)' is already allowed (\(target)); "
                        + "revoke it first or pass --force")
            }
            try SecureFile.createDirectory(directory, mode: 0o700)
            // Only the public half is written, whatever the file held.
            try KeyFile.writePublic(contents, to: target)
            print("allowed \(contents.name) \(contents.publicKey) (\(target))")
        } catch let error as ShoalError {
            fail(error.description)
        }
    }
}

struct RevokeKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Remove a key from the allow-list; a running coordinator cuts that peer off within a second.",
        discussion: HelpExamples.keysRevoke)

    @Argument(help: "The key's name (as `shoal keys list` shows it).") var name: String
    @OptionGroup var allow: AllowDirectoryOption

    func run() throws {
        do {
            let entries = try AllowListDirectory(path: allow.path).load().entries
            let matches = entries.filter { $0.name == name || $0.publicKey == name }
            guard !matches.isEmpty else {
                fail("no allowed key named '\(name.prefix(64))' in \(allow.path); `shoal keys list` shows them")
            }
            for entry in matches {
                guard unlink(entry.file) == 0 else {
                    fail("cannot remove \(entry.file): \(String(cString: strerror(errno)))")
                }
                print("revoked \(entry.name) \(entry.publicKey)")
            }
        } catch let error as ShoalError {
            fail(error.description)
        }
    }
}
