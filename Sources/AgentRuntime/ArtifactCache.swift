import FoundationEssentials
import Protocol

/// Artifact bytes by SHA-256 digest, bounded in bytes and in entries; the least recently used go first.
/// Kept in memory only, sensitive artifacts included: nothing of it reaches the disk or a log.
/// Owned by the agent's socket thread.
struct ArtifactCache {
    let maxBytes: Int
    let maxEntries: Int
    private var entries: [String: (data: Data, used: UInt64)] = [:]
    private var clock: UInt64 = 0
    private(set) var bytes = 0
    /// Lookups answered from the cache, and entries evicted to stay within the bounds.
    private(set) var hits = 0
    private(set) var evictions = 0

    init(maxBytes: Int, maxEntries: Int) {
        self.maxBytes = max(0, maxBytes)
        self.maxEntries = max(0, maxEntries)
    }

    var count: Int { entries.count }

    /// The bytes of `digest`, marked as just used.
    mutating func get(_ digest: String) -> Data? {
        guard let entry = entries[digest] else { return nil }
        clock += 1
        entries[digest] = (entry.data, clock)
        hits += 1
        return entry.data
    }

    func contains(_ digest: String) -> Bool { entries[digest] != nil }

    /// Keeps `data` under `digest`, evicting the least recently used entries as the bounds require; bytes
    /// larger than the whole bound are not kept.
    mutating func insert(_ digest: String, _ data: Data) {
        guard data.count <= maxBytes, maxEntries > 0 else { return }
        if let old = entries.removeValue(forKey: digest) { bytes -= old.data.count }
        while !entries.isEmpty && (bytes + data.count > maxBytes || entries.count >= maxEntries) {
            // A linear scan: the cache holds a few hundred entries at most, and eviction follows a fetch.
            guard let oldest = entries.min(by: { $0.value.used < $1.value.used }) else { break }
            entries[oldest.key] = nil
            bytes -= oldest.value.data.count
            evictions += 1
        }
        clock += 1
        entries[digest] = (data, clock)
        bytes += data.count
    }

    /// The SHA-256 of `data` as the wire writes it: 64 lowercase hex digits.
    static func digest(_ data: Data) -> String {
        Sodium.sha256Hex(data)
    }
}
