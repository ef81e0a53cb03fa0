import FoundationEssentials
import Glibc
import Protocol
import ShoalCore

/// The results an agent produced, by idempotency key, and which of them the
/// coordinator confirmed. Kept in memory and, with a state directory, in an
/// append-only JSON-lines file that is written before a result is sent, so
/// neither a duplicate step nor a restart makes a step run twice.
///
/// A result with a sensitive artifact (a kubeconfig, a join token, a password) is written sealed
/// (ChaCha20-Poly1305, with its step key as associated data), never in clear: the key is derived from the agent's
/// CURVE secret key, or, for an agent without one, kept in `AGENT.record.key` (0600) beside the record.
struct IdempotencyRecord {
    private struct Line: Codable {
        var key: StepKey
        var result: StepResult?
        /// The whole result, sealed, when it carries a sensitive artifact.
        var sealed: Data?
        var confirmed: Bool?
    }

    private(set) var results: [StepKey: StepResult] = [:]
    private(set) var unconfirmed: Set<StepKey> = []
    private var order: [StepKey] = []
    private var file: AppendFile?
    private var sealingKey: [UInt8]?
    /// Keys kept in memory before the oldest confirmed ones are forgotten.
    static let capacity = 2000

    /// Opens (and replays) the record of `agent` in `directory`, or a memory-only one.
    /// - Parameters:
    ///   - sealingSecret: the agent's CURVE secret key (Z85), to derive the sealing key from; nil keeps a key file.
    /// - Throws: `ShoalError(.io)` when the directory or file cannot be used.
    init(directory: String?, agent: String, sealingSecret: String? = nil) throws {
        file = nil
        guard let directory else { return }
        try SecureFile.createDirectory(directory, mode: 0o700)
        let path = "\(directory)/\(agent).results.jsonl"
        sealingKey = try IdempotencyRecord.sealingKey(
            secret: sealingSecret, keyFile: "\(directory)/\(agent).record.key")
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw ShoalError(.io, "cannot create the idempotency record \(path)")
            }
        }
        let decoder = JSONDecoder()
        if let data = FileManager.default.contents(atPath: path) {
            // A torn last line (a crash mid-write) is skipped, not fatal.
            for line in data.split(separator: UInt8(ascii: "\n")) {
                guard let entry = try? decoder.decode(Line.self, from: Data(line)) else { continue }
                if let result = entry.result { insert(entry.key, result) }
                // A sealed result that does not open (another key) is as good as absent.
                if let sealed = entry.sealed, let result = open(sealed, key: entry.key) { insert(entry.key, result) }
                if entry.confirmed == true { unconfirmed.remove(entry.key) }
            }
        }
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else {
            throw ShoalError(.io, "cannot open the idempotency record \(path)", cause: String(cString: strerror(errno)))
        }
        file = AppendFile(fd: fd)
    }

    private mutating func insert(_ key: StepKey, _ result: StepResult) {
        if results.updateValue(result, forKey: key) == nil { order.append(key) }
        unconfirmed.insert(key)
        while order.count > IdempotencyRecord.capacity, let oldest = order.first, !unconfirmed.contains(oldest) {
            order.removeFirst()
            results[oldest] = nil
        }
    }

    /// Records a finished step before its result is sent.
    mutating func record(_ key: StepKey, _ result: StepResult) {
        insert(key, result)
        if result.output.artifacts.contains(where: \.sensitive) {
            // Without a sealed form the result stays in memory only: never in clear on disk.
            guard let sealed = seal(result, key: key) else { return }
            append(Line(key: key, result: nil, sealed: sealed, confirmed: nil))
        } else {
            append(Line(key: key, result: result, sealed: nil, confirmed: nil))
        }
    }

    private func seal(_ result: StepResult, key: StepKey) -> Data? {
        guard let sealingKey, let data = try? JSONEncoder().encode(result) else { return nil }
        return Sodium.seal(data, key: sealingKey, authenticating: Array(key.description.utf8))
    }

    private func open(_ sealed: Data, key: StepKey) -> StepResult? {
        guard let sealingKey, let data = Sodium.open(sealed, key: sealingKey, authenticating: Array(key.description.utf8))
        else { return nil }
        return try? JSONDecoder().decode(StepResult.self, from: data)
    }

    /// The record's key: derived from the CURVE secret, else read from (or created in) `keyFile`, 0600.
    static func sealingKey(secret: String?, keyFile: String) throws -> [UInt8] {
        if let secret {
            return Sodium.hkdfSHA256(
                inputKeyMaterial: Array(secret.utf8), info: Array("shoal idempotency record".utf8))
        }
        if let data = FileManager.default.contents(atPath: keyFile), data.count == 32 { return [UInt8](data) }
        let fresh = Sodium.randomKey()
        try SecureFile.write(Data(fresh), to: keyFile, mode: 0o600)
        return fresh
    }

    /// Records the coordinator's confirmation.
    mutating func confirm(_ key: StepKey) {
        guard unconfirmed.remove(key) != nil else { return }
        append(Line(key: key, result: nil, sealed: nil, confirmed: true))
    }

    private func append(_ line: Line) {
        guard let file, var data = try? JSONEncoder().encode(line) else { return }
        data.append(UInt8(ascii: "\n"))
        try? FileDescriptorIO.writeAll(file.fd, data)
        _ = fsync(file.fd)
    }
}

/// The record's file, open for appending, closed with the last copy of the record.
private final class AppendFile: Sendable {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }
}
