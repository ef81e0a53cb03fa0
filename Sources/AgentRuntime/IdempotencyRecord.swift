import Foundation
import Protocol
import ShoalSupport

/// The results an agent produced, by idempotency key, and which of them the
/// coordinator confirmed. Kept in memory and, with a state directory, in an
/// append-only JSON-lines file that is written before a result is sent, so
/// neither a duplicate step nor a restart makes a step run twice.
struct IdempotencyRecord {
    private struct Line: Codable {
        var key: StepKey
        var result: StepResult?
        var confirmed: Bool?
    }

    private(set) var results: [StepKey: StepResult] = [:]
    private(set) var unconfirmed: Set<StepKey> = []
    private var order: [StepKey] = []
    private var file: FileHandle?
    /// Keys kept in memory before the oldest confirmed ones are forgotten.
    static let capacity = 2000

    /// Opens (and replays) the record of `agent` in `directory`, or a memory-only one.
    /// - Throws: `ShoalError(.io)` when the directory or file cannot be used.
    init(directory: String?, agent: String) throws {
        file = nil
        guard let directory else { return }
        try SecureFile.createDirectory(directory, mode: 0o700)
        let path = "\(directory)/\(agent).results.jsonl"
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
                if entry.confirmed == true { unconfirmed.remove(entry.key) }
            }
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw ShoalError(.io, "cannot open the idempotency record \(path)")
        }
        handle.seekToEndOfFile()
        file = handle
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
        append(Line(key: key, result: result, confirmed: nil))
    }

    /// Records the coordinator's confirmation.
    mutating func confirm(_ key: StepKey) {
        guard unconfirmed.remove(key) != nil else { return }
        append(Line(key: key, result: nil, confirmed: true))
    }

    private func append(_ line: Line) {
        guard let file, var data = try? JSONEncoder().encode(line) else { return }
        data.append(UInt8(ascii: "\n"))
        try? FileDescriptorIO.writeAll(file.fileDescriptor, data)
        try? file.synchronize()
    }
}
