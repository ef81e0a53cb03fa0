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

    var id: String { hello.agent }
    var hasCapacity: Bool { inFlight.count < max(1, hello.capacity) }
}

/// Live agents and the subscriptions the XPUB socket has seen.
struct AgentRegistry {
    private(set) var agents: [String: AgentEntry] = [:]
    /// Topics with at least one subscriber.
    private(set) var subscriptions: Set<String> = []

    subscript(id: String) -> AgentEntry? {
        get { agents[id] }
        set { agents[id] = newValue }
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

    /// Least loaded first; among equals the one that waited longest.
    func pick(role: Role, avoiding avoid: Set<String>) -> String? {
        let candidates = agents.values.filter { $0.hello.role == role && $0.hasCapacity && isReachable($0.id) }
        let preferred = candidates.filter { !avoid.contains($0.id) }
        let pool = preferred.isEmpty ? candidates : preferred
        return pool.min { a, b in
            (a.inFlight.count, a.lastAssigned, a.id) < (b.inFlight.count, b.lastAssigned, b.id)
        }?.id
    }

    @discardableResult
    mutating func remove(_ id: String) -> AgentEntry? {
        agents.removeValue(forKey: id)
    }

    func expired(now: Int64, timeoutMilliseconds: Int64) -> [String] {
        agents.values.filter { now - $0.lastSeen > timeoutMilliseconds }.map(\.id).sorted()
    }

    var all: [AgentEntry] { agents.values.sorted { $0.id < $1.id } }
}
