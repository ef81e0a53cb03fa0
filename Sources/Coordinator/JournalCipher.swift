import Crypto
import Foundation
import ShoalSupport

/// Encrypts the journal's sensitive artifacts (kubeconfigs, join tokens,
/// passwords, the simulated cluster's Secrets) with ChaCha20-Poly1305. The
/// 32-byte key lives in a file of its own beside the journal, mode 0600, so
/// a copy of the journal alone (a backup, a bug report) reveals none of
/// them. Each row is sealed with its workflow, step and artifact name as
/// associated data: a sealed value moved to another row does not open.
struct JournalCipher: Sendable {
    /// Sealed values start with this, so they never parse as plain text.
    static let magic = Data("shoal-sealed-1:".utf8)
    let keyPath: String
    /// The key's bytes (swift-crypto's `SymmetricKey` is not `Sendable` here).
    private let keyBytes: Data
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    /// Loads the key at `keyPath`, or creates it (0600) when the file does not exist.
    /// - Throws: `ShoalError(.forbidden)` when the key file is readable by
    ///   others, `ShoalError(.invalidInput)` when it is not a key,
    ///   `ShoalError(.io)` when it cannot be read or written.
    init(keyPath: String) throws {
        self.keyPath = keyPath
        if SecureFile.mode(of: keyPath) == nil {
            try JournalCipher.create(keyPath)
        }
        guard let mode = SecureFile.mode(of: keyPath) else {
            throw ShoalError(.io, "cannot create journal key '\(keyPath)'")
        }
        guard mode & 0o077 == 0 else {
            throw ShoalError(
                .forbidden,
                "journal key '\(keyPath)' is readable by others (mode \(String(mode, radix: 8))); "
                    + "run `chmod 600 \(keyPath)`")
        }
        guard let data = FileManager.default.contents(atPath: keyPath) else {
            throw ShoalError(.io, "cannot read journal key '\(keyPath)'")
        }
        guard data.count == 32 else {
            throw ShoalError(.invalidInput, "'\(keyPath)' is not a journal key (expected 32 bytes)")
        }
        keyBytes = data
    }

    /// Writes a fresh key unless another process just did: the key is
    /// written aside and linked into place, which fails if the file exists.
    private static func create(_ keyPath: String) throws {
        let aside = "\(keyPath).\(getpid()).new"
        try SecureFile.write(SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }, to: aside, mode: 0o600)
        defer { unlink(aside) }
        if link(aside, keyPath) != 0 && errno != EEXIST {
            throw ShoalError(.io, "cannot create journal key '\(keyPath)'", cause: String(cString: strerror(errno)))
        }
    }

    private static func associatedData(_ row: [String]) -> Data {
        Data(row.joined(separator: "\u{0}").utf8)
    }

    /// Seals `data` for the row named by `row` (workflow, step, name).
    func seal(_ data: Data, row: [String]) throws -> Data {
        do {
            let box = try ChaChaPoly.seal(data, using: key, authenticating: JournalCipher.associatedData(row))
            return JournalCipher.magic + box.combined
        } catch {
            throw ShoalError(.io, "cannot encrypt a journal row", cause: "\(error)")
        }
    }

    /// Opens what `seal` made for the same row.
    /// - Throws: `ShoalError(.forbidden)` when the value was sealed with
    ///   another key or for another row, or was altered.
    func open(_ sealed: Data, row: [String]) throws -> Data {
        guard sealed.starts(with: JournalCipher.magic) else {
            throw ShoalError(.invalidInput, "a sensitive journal row is not sealed (\(row.joined(separator: "/")))")
        }
        do {
            let box = try ChaChaPoly.SealedBox(combined: sealed.dropFirst(JournalCipher.magic.count))
            return try ChaChaPoly.open(box, using: key, authenticating: JournalCipher.associatedData(row))
        } catch {
            throw ShoalError(
                .forbidden,
                "cannot decrypt a sensitive journal row (\(row.joined(separator: "/"))): "
                    + "the journal key '\(keyPath)' is not the one it was written with")
        }
    }
}
