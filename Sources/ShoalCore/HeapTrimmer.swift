import CShoalSupport

/// Hands back to the system the memory the allocator keeps free after a burst. libzmq allocates each
/// connection's buffers on its I/O thread: when thousands of agents disconnect, glibc keeps the freed pages in
/// that thread's arena (about 400 MiB after 5,000 agents) until `malloc_trim`. A long-lived process calls `tick`
/// from its loop; at most once per `interval` it looks at the free bytes held and trims when they pass
/// `threshold`.
public struct HeapTrimmer: Sendable {
    public let interval: Duration
    public let threshold: Int
    private var nextCheck: ContinuousClock.Instant

    public init(interval: Duration = .seconds(10), threshold: Int = 64 << 20) {
        self.interval = interval
        self.threshold = threshold
        nextCheck = .now + interval
    }

    /// The free bytes held before a trim when it trimmed, else nil.
    public mutating func tick(now: ContinuousClock.Instant = .now) -> Int? {
        guard now >= nextCheck else { return nil }
        nextCheck = now + interval
        let free = HeapTrimmer.freeBytes
        guard free > threshold else { return nil }
        shoal_heap_trim()
        return free
    }

    /// Bytes the allocator holds free in all its arenas.
    public static var freeBytes: Int { Int(shoal_heap_free_bytes()) }
}
