/// A min-heap of deadlines: the coordinator looks only at the ones due, never
/// at every step. Entries are not removed when a deadline changes; the
/// coordinator checks each popped entry against the step's current state
/// and drops stale ones.
struct DeadlineHeap {
    enum Kind: Sendable {
        /// No ack in time: publish again, then give the step to another agent.
        case ack
        /// A running step outlived `--step-timeout`.
        case run
        /// After a restart, no agent claimed the step in time.
        case orphan
        /// A requeued step's backoff ended: it is ready again.
        case backoff
    }

    struct Entry: Sendable {
        var at: Int64
        var sequence: UInt64
        var kind: Kind
        var workflow: String
        var step: Int
        var attempt: Int
    }

    private var entries: [Entry] = []
    private var sequence: UInt64 = 0

    var count: Int { entries.count }

    private static func less(_ a: Entry, _ b: Entry) -> Bool {
        (a.at, a.sequence) < (b.at, b.sequence)
    }

    mutating func push(at: Int64, _ kind: Kind, workflow: String, step: Int, attempt: Int) {
        sequence &+= 1
        entries.append(Entry(at: at, sequence: sequence, kind: kind, workflow: workflow, step: step, attempt: attempt))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard DeadlineHeap.less(entries[child], entries[parent]) else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    /// The earliest entry due at `now`, removed; nil when none is due.
    mutating func popDue(now: Int64) -> Entry? {
        guard let first = entries.first, first.at <= now else { return nil }
        let last = entries.removeLast()
        guard !entries.isEmpty else { return first }
        entries[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < entries.count && DeadlineHeap.less(entries[left], entries[smallest]) { smallest = left }
            if right < entries.count && DeadlineHeap.less(entries[right], entries[smallest]) { smallest = right }
            guard smallest != parent else { break }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
        return first
    }

    /// When the next entry is due, if any.
    var next: Int64? { entries.first?.at }
}

/// A FIFO queue with amortized O(1) push and pop.
struct RingQueue<Element> {
    private var storage: [Element] = []
    private var head = 0

    var isEmpty: Bool { head >= storage.count }
    var count: Int { storage.count - head }
    var first: Element? { isEmpty ? nil : storage[head] }

    mutating func append(_ element: Element) { storage.append(element) }

    @discardableResult
    mutating func popFirst() -> Element? {
        guard !isEmpty else { return nil }
        let element = storage[head]
        head += 1
        if head > 1024 && head * 2 > storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }
}
