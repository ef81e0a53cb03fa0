import Protocol

/// A live agent as the coordinator knows it.
struct AgentEntry {
    var hello: Hello
    /// The ROUTER routing id of its DEALER; refreshed on every message, so a
    /// reconnected agent is reached on its new connection.
    var identity: [UInt8]
    var lastSeen: Int64
    var inFlight: Set<StepKey> = []
    var lastAssigned: Int64 = 0
    /// What the agent last reported rejecting.
    var rejected: [String: Int]?
    /// The CURVE public key it registered with (nil on a plain-TCP bus).
    var key: String?
    /// The heartbeat interval granted in its welcome for while it holds no step (milliseconds; 0: none).
    var idleInterval: Int64 = 0
    /// Its last heartbeat listed no step: it is judged on `idleInterval` until it is given one.
    var idle = false

    var id: String { hello.agent }
    var hasCapacity: Bool { inFlight.count < max(1, hello.capacity) }
}

/// Where an agent stands among those of its role for `pick`: least loaded first; among equals the one given a
/// step most recently (its process is awake and its artifact cache holds what the workflow's steps share, so a
/// chain stays on one agent while parallel steps still spread by load); then by id.
struct PickKey: Comparable {
    var load: Int
    /// The time of its last assignment, negated: the most recent sorts first.
    var recency: Int64
    var id: String

    init(_ entry: AgentEntry) {
        load = entry.inFlight.count
        recency = -entry.lastAssigned
        id = entry.id
    }

    static func < (a: PickKey, b: PickKey) -> Bool { (a.load, a.recency, a.id) < (b.load, b.recency, b.id) }
}

/// Live agents, ordered by role for `pick`, and the subscriptions the XPUB socket has seen.
struct AgentRegistry {
    private(set) var agents: [String: AgentEntry] = [:]
    /// The agents of each role in `pick`'s order, kept sorted as their load and assignments change, so a pick
    /// looks at the first agents of its role rather than at all of them.
    private var order: [Role: [PickKey]] = [:]
    /// How many agents of each role have room for another step: none, and a pick answers at once.
    private var open: [Role: Int] = [:]
    /// Topics with at least one subscriber.
    private(set) var subscriptions: Set<String> = []

    subscript(id: String) -> AgentEntry? {
        get { agents[id] }
        set {
            let old = agents[id]
            agents[id] = newValue
            reindex(from: old, to: newValue)
        }
    }

    /// Moves an agent in its role's order when what orders it changed.
    private mutating func reindex(from old: AgentEntry?, to new: AgentEntry?) {
        let oldKey = old.map(PickKey.init)
        let newKey = new.map(PickKey.init)
        guard oldKey != newKey || old?.hello.role != new?.hello.role || old?.hasCapacity != new?.hasCapacity
        else { return }
        if let old, let oldKey {
            let role = old.hello.role
            if let index = order[role]?.firstIndex(of: oldKey, sortedBy: <) { order[role]!.remove(at: index) }
            if order[role]?.isEmpty == true { order[role] = nil }
            if old.hasCapacity { open[role, default: 0] -= 1 }
        }
        if let new, let newKey {
            let role = new.hello.role
            order[role, default: []].insert(newKey, at: order[role]?.insertionIndex(of: newKey, sortedBy: <) ?? 0)
            if new.hasCapacity { open[role, default: 0] += 1 }
        }
    }

    /// Marks a known agent as just heard from on `identity`; false when the agent is unknown. Updates in place:
    /// the role (and so the index by role) does not change.
    mutating func touch(_ id: String, identity: [UInt8], now: Int64) -> Bool {
        guard agents[id] != nil else { return false }
        agents[id]!.lastSeen = now
        if agents[id]!.identity != identity { agents[id]!.identity = identity }
        return true
    }

    /// The CURVE key an agent registered with.
    func key(of id: String) -> String? { agents[id]?.key }

    /// Whether the agent's last heartbeat listed no step, set in place.
    mutating func setIdle(_ id: String, _ idle: Bool) {
        guard agents[id] != nil, agents[id]!.idle != idle else { return }
        agents[id]!.idle = idle
    }

    /// What the agent last reported rejecting, set in place.
    mutating func setRejected(_ id: String, _ rejected: [String: Int]?) {
        guard agents[id] != nil, agents[id]!.rejected != rejected else { return }
        agents[id]!.rejected = rejected
    }

    mutating func subscriptionChanged(_ topic: String, subscribed: Bool) {
        if subscribed { subscriptions.insert(topic) } else { subscriptions.remove(topic) }
    }

    /// Every connection was closed: subscriptions count again once renewed.
    mutating func connectionsReset() {
        subscriptions = []
    }

    /// An agent may be given work once its own topic's subscription arrived:
    /// a step published earlier would be lost (the slow-joiner problem).
    func isReachable(_ id: String) -> Bool {
        subscriptions.contains(WireFormat.agentTopic(id))
    }

    /// The first agent of `role` in `PickKey` order that has room and is reachable, one of `avoid` only when no
    /// other is. Walks the role's order from its start: past full, unreachable and avoided agents only.
    func pick(role: Role, avoiding avoid: Set<String>) -> String? {
        guard open[role, default: 0] > 0, let keys = order[role] else { return nil }
        var avoided: String?
        for key in keys {
            guard let agent = agents[key.id], agent.hasCapacity, isReachable(key.id) else { continue }
            guard avoid.contains(key.id) else { return key.id }
            if avoided == nil { avoided = key.id }
        }
        return avoided
    }

    @discardableResult
    mutating func remove(_ id: String) -> AgentEntry? {
        guard let entry = agents.removeValue(forKey: id) else { return nil }
        reindex(from: entry, to: nil)
        return entry
    }

    /// Agents not heard from for `liveness` heartbeat intervals: `interval` while an agent holds a step, was
    /// given one since it last spoke, or has not yet said it holds none; its granted idle interval otherwise.
    /// An agent given a step is judged from the assignment on, so one that died idle is found within the
    /// short window.
    func expired(now: Int64, interval: Int64, liveness: Int) -> [String] {
        var found: [String] = []
        for agent in agents.values {
            let busy = !agent.idle || !agent.inFlight.isEmpty || agent.lastAssigned > agent.lastSeen
            let since = busy ? max(agent.lastSeen, agent.lastAssigned) : agent.lastSeen
            if now - since > Int64(liveness) * (busy ? interval : max(interval, agent.idleInterval)) {
                found.append(agent.id)
            }
        }
        return found.sorted()
    }

    var all: [AgentEntry] { agents.values.sorted { $0.id < $1.id } }
    var count: Int { agents.count }
}

extension Array {
    /// The first index at which `element` could be inserted keeping a sorted array sorted (a binary search).
    func insertionIndex(of element: Element, sortedBy less: (Element, Element) -> Bool) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if less(self[middle], element) { low = middle + 1 } else { high = middle }
        }
        return low
    }
}

extension Array where Element: Equatable {
    /// The index of `element` in a sorted array, found by a binary search.
    func firstIndex(of element: Element, sortedBy less: (Element, Element) -> Bool) -> Int? {
        let index = insertionIndex(of: element, sortedBy: less)
        return index < count && self[index] == element ? index : nil
    }
}
