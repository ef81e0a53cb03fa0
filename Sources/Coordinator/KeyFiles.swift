import Foundation
import ShoalSupport
import ZeroMQ

/// shoal's CURVE key files: `NAME.key` holds a key pair and is readable by
/// its owner only (0600); `NAME.pub` holds the public half and may be
/// copied anywhere. Both are UTF-8 text: `#` comment lines, then
/// `field: value` lines (`format`, `name`, `public-key`, and in `.key`
/// files `secret-key`), keys in Z85.
public enum KeyFile {
    /// The format written, and the only one read.
    public static let format = "shoal-curve-1"

    /// A key file's contents.
    public struct Contents: Sendable, Equatable {
        public var name: String
        public var publicKey: String
        /// Present in `.key` files only.
        public var secretKey: String?

        public init(name: String, publicKey: String, secretKey: String? = nil) {
            self.name = name
            self.publicKey = publicKey
            self.secretKey = secretKey
        }

        /// The key pair; nil for a public key file.
        public var keyPair: CurveKeyPair? {
            secretKey.map { CurveKeyPair(publicKey: publicKey, secretKey: $0) }
        }
    }

    /// Whether a name can name a key: what an agent id may be (it becomes a file name).
    public static func isValidName(_ name: String) -> Bool { Names.isAgentID(name) }

    // MARK: Writing

    /// Generates a key pair and writes `DIR/NAME.key` (0600) and `DIR/NAME.pub` (0644).
    /// - Parameters:
    ///   - overwrite: replace existing files; otherwise an existing `NAME.key` is an error.
    /// - Returns: the new contents.
    /// - Throws: `ShoalError(.invalidInput)` for a bad name or an existing key,
    ///   `ShoalError(.io)` when the files cannot be written.
    @discardableResult
    public static func generate(name: String, directory: String, overwrite: Bool = false) throws -> Contents {
        try checkName(name)
        let secretPath = "\(directory)/\(name).key"
        if !overwrite && FileManager.default.fileExists(atPath: secretPath) {
            throw ShoalError(
                .invalidInput, "\(secretPath) already exists; pick another name or pass --force to replace it")
        }
        let pair: CurveKeyPair
        do {
            pair = try CurveKeyPair.generate()
        } catch {
            throw ShoalError(
                .notSupported, "cannot generate a CURVE key pair (libzmq built without CURVE?)", cause: "\(error)")
        }
        let contents = Contents(name: name, publicKey: pair.publicKey, secretKey: pair.secretKey)
        try SecureFile.createDirectory(directory, mode: 0o700)
        try SecureFile.write(render(contents), to: secretPath, mode: 0o600)
        try writePublic(contents, to: "\(directory)/\(name).pub")
        return contents
    }

    /// Writes the public half of a key (never its secret) to `path` (0644).
    /// - Throws: `ShoalError(.io)`.
    public static func writePublic(_ contents: Contents, to path: String) throws {
        try SecureFile.write(
            render(Contents(name: contents.name, publicKey: contents.publicKey)), to: path, mode: 0o644)
    }

    /// The text of a key file.
    public static func render(_ contents: Contents) -> String {
        var lines: [String] = []
        if contents.secretKey != nil {
            lines.append("# shoal CURVE secret key \"\(contents.name)\". Keep it private: mode 0600, never copied.")
            lines.append(
                "# Its public half is \(contents.name).pub; only that file goes to a coordinator's allow-list.")
        } else {
            lines.append("# shoal CURVE public key \"\(contents.name)\". Safe to share.")
            lines.append("# On the coordinator's host: shoal keys allow \(contents.name).pub")
        }
        lines.append("format: \(format)")
        lines.append("name: \(contents.name)")
        lines.append("public-key: \(contents.publicKey)")
        if let secret = contents.secretKey { lines.append("secret-key: \(secret)") }
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: Reading

    /// Reads a secret key file: it must exist, be readable by its owner
    /// only, and hold a secret key that matches its public key.
    /// - Throws: `ShoalError` with a one-line message naming the file and what to do.
    public static func loadSecret(_ path: String) throws -> Contents {
        guard let mode = SecureFile.mode(of: path) else {
            throw ShoalError(
                .notFound, "key file '\(path)' does not exist; create one with `shoal keys generate NAME --dir DIR`")
        }
        if mode & 0o077 != 0 {
            throw ShoalError(
                .forbidden,
                "secret key file '\(path)' is readable by others (mode \(String(mode, radix: 8))); "
                    + "run `chmod 600 \(path)`")
        }
        let contents = try parse(read(path), path: path)
        guard let secret = contents.secretKey else {
            throw ShoalError(.invalidInput, "'\(path)' holds no secret key (a .pub file?); pass the NAME.key file")
        }
        guard let derived = try? CurveKeyPair.publicKey(forSecret: secret), derived == contents.publicKey else {
            throw ShoalError(
                .invalidInput, "'\(path)' is not a valid shoal key file: its secret and public keys do not match")
        }
        return contents
    }

    /// Reads the public key of a key file (`.pub`, or the public half of a `.key`).
    /// - Throws: `ShoalError` with a one-line message naming the file.
    public static func loadPublic(_ path: String) throws -> Contents {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ShoalError(.notFound, "public key file '\(path)' does not exist")
        }
        let contents = try parse(read(path), path: path)
        return Contents(name: contents.name, publicKey: contents.publicKey)
    }

    private static func read(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ShoalError(.io, "cannot read key file '\(path)'")
        }
        guard data.count <= 4096 else {
            throw ShoalError(.invalidInput, "'\(path)' is too large to be a shoal key file")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Parses a key file's text.
    /// - Throws: `ShoalError(.invalidInput)` saying what is wrong.
    public static func parse(_ text: String, path: String) throws -> Contents {
        func malformed(_ why: String) -> ShoalError {
            ShoalError(.invalidInput, "'\(path)' is not a valid shoal key file: \(why)")
        }
        var fields: [String: String] = [:]
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            // Z85 uses ':' too, so only the first one separates.
            guard let colon = line.firstIndex(of: ":") else {
                throw malformed("a line is neither a comment nor 'field: value'")
            }
            let field = line[..<colon].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            guard fields.updateValue(value, forKey: field) == nil else {
                throw malformed("'\(field.prefix(20))' appears twice")
            }
        }
        guard fields["format"] == format else { throw malformed("expected 'format: \(format)'") }
        guard let name = fields["name"], isValidName(name) else {
            throw malformed("'name' must be 1-64 letters, digits, '.', '_' or '-'")
        }
        guard let publicKey = fields["public-key"], CurveKeyPair.isValidKey(publicKey) else {
            throw malformed("'public-key' must be a 40-character Z85 key")
        }
        let secretKey = fields["secret-key"]
        if let secretKey, !CurveKeyPair.isValidKey(secretKey) {
            throw malformed("'secret-key' must be a 40-character Z85 key")
        }
        return Contents(name: name, publicKey: publicKey, secretKey: secretKey)
    }

    private static func checkName(_ name: String) throws {
        guard isValidName(name) else {
            throw ShoalError(
                .invalidInput,
                "invalid key name '\(name.prefix(64))': use 1-64 letters, digits, '.', '_' or '-', "
                    + "starting with a letter or digit")
        }
    }
}

/// A coordinator's allow-list: a directory of `NAME.pub` files, one per
/// agent or client allowed on the bus.
public struct AllowListDirectory: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// One allowed key.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var publicKey: String
        public var file: String
    }

    /// Reads every `*.pub` file.
    /// - Returns: the valid entries, sorted by name, and a line per file that could not be used.
    /// - Throws: `ShoalError(.notFound)` when the directory does not exist.
    public func load() throws -> (entries: [Entry], problems: [String]) {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw ShoalError(
                .notFound,
                "allow-list directory '\(path)' does not exist or cannot be read; "
                    + "add keys to it with `shoal keys allow NAME.pub --allow \(path)`")
        }
        var entries: [Entry] = []
        var problems: [String] = []
        for file in names.sorted() where file.hasSuffix(".pub") && !file.hasPrefix(".") {
            let full = "\(path)/\(file)"
            do {
                let contents = try KeyFile.loadPublic(full)
                entries.append(Entry(name: contents.name, publicKey: contents.publicKey, file: full))
            } catch let error as ShoalError {
                problems.append(error.message)
            }
        }
        return (entries, problems)
    }

    /// A cheap fingerprint of the directory (names, sizes, modification
    /// times), to reload only when something changed.
    public func fingerprint() -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return ["missing"] }
        return names.sorted().filter { $0.hasSuffix(".pub") }.map { name in
            var info = stat()
            guard stat("\(path)/\(name)", &info) == 0 else { return name }
            return "\(name) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) \(info.st_ino)"
        }
    }
}
