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

/// Live agents, indexed by role, and the subscriptions the XPUB socket has seen.
struct AgentRegistry {
    private(set) var agents: [String: AgentEntry] = [:]
    /// Agent ids by role, so picking one looks only at agents of that role.
    private var byRole: [Role: Set<String>] = [:]
    /// Topics with at least one subscriber.
    private(set) var subscriptions: Set<String> = []

    subscript(id: String) -> AgentEntry? {
        get { agents[id] }
        set {
            let oldRole = agents[id]?.hello.role
            if let oldRole, oldRole != newValue?.hello.role { byRole[oldRole]?.remove(id) }
            agents[id] = newValue
            if let newValue, newValue.hello.role != oldRole { byRole[newValue.hello.role, default: []].insert(id) }
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

    /// Least loaded first; among equals the one given a step most recently. Looks
    /// only at the agents of `role`.
    func pick(role: Role, avoiding avoid: Set<String>) -> String? {
        var best: AgentEntry?
        var bestAvoided: AgentEntry?
        func better(_ a: AgentEntry, _ b: AgentEntry?) -> Bool {
            guard let b else { return true }
            // Among equals the one given a step last: its process is awake and its artifact cache holds what
            // the workflow's steps share, so a chain stays on one agent while parallel steps still spread by load.
            return (a.inFlight.count, -a.lastAssigned, a.id) < (b.inFlight.count, -b.lastAssigned, b.id)
        }
        for id in byRole[role] ?? [] {
            guard let agent = agents[id], agent.hasCapacity, isReachable(id) else { continue }
            if avoid.contains(id) {
                if better(agent, bestAvoided) { bestAvoided = agent }
            } else if better(agent, best) {
                best = agent
            }
        }
        return (best ?? bestAvoided)?.id
    }

    @discardableResult
    mutating func remove(_ id: String) -> AgentEntry? {
        guard let entry = agents.removeValue(forKey: id) else { return nil }
        byRole[entry.hello.role]?.remove(id)
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
