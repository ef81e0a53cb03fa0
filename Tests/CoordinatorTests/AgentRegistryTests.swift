import PropertyBased
import Testing

@testable import Coordinator
@testable import Protocol

/// `pick` answers from each role's kept order as a walk over every agent of the role would.
@Suite struct AgentRegistryTests {
    /// The rule itself, over every agent: least loaded, then the one given a step last, then by id; an avoided
    /// agent only when no other has room.
    private static func reference(_ registry: AgentRegistry, role: Role, avoiding avoid: Set<String>) -> String? {
        let candidates = registry.agents.values
            .filter { $0.hello.role == role && $0.hasCapacity && registry.isReachable($0.id) }
            .sorted { PickKey($0) < PickKey($1) }
        return (candidates.first { !avoid.contains($0.id) } ?? candidates.first)?.id
    }

    private static func entry(_ id: String, role: Role, capacity: Int) -> AgentEntry {
        AgentEntry(
            hello: Hello(agent: id, role: role, host: "h", pid: 1, capacity: capacity, version: "test"),
            identity: Array(id.utf8), lastSeen: 0)
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func picksAsAWalkOverEveryAgentWouldAcrossJoinsAssignmentsResultsAndLeaves(seed: UInt64) {
        // Seeded, so a failure names a sequence that replays.
        var random = Xoshiro(seed: (seed, 0x5eed, seed &* 31, 1))
        var registry = AgentRegistry()
        let roles: [Role] = [.validation, .docs]
        let ids = (0..<12).map { "agent-\($0)" }
        var clock: Int64 = 0
        var keys = 0
        for _ in 0..<3000 {
            clock += 1
            let id = ids.randomElement(using: &random)!
            switch Int.random(in: 0..<10, using: &random) {
            case 0:
                // Joins, or joins again with another role or capacity (a new incarnation).
                var entry = Self.entry(
                    id, role: roles.randomElement(using: &random)!, capacity: Int.random(in: 0...3, using: &random))
                entry.inFlight = registry[id]?.inFlight ?? []
                registry[id] = entry
                registry.subscriptionChanged(WireFormat.agentTopic(id), subscribed: true)
            case 1:
                registry.remove(id)
            case 2:
                registry.subscriptionChanged(WireFormat.agentTopic(id), subscribed: Bool.random(using: &random))
            case 3, 4, 5:
                // A step given to whoever `pick` chose.
                let role = roles.randomElement(using: &random)!
                let avoid = Set(ids.filter { _ in Int.random(in: 0..<4, using: &random) == 0 })
                let picked = registry.pick(role: role, avoiding: avoid)
                #expect(picked == Self.reference(registry, role: role, avoiding: avoid), "seed \(seed)")
                if let picked {
                    keys += 1
                    registry[picked]?.inFlight.insert(StepKey(workflow: "w", step: "s\(keys)", attempt: 1))
                    registry[picked]?.lastAssigned = clock
                }
            case 6, 7:
                // A result.
                if let key = registry[id]?.inFlight.randomElement(using: &random) {
                    registry[id]?.inFlight.remove(key)
                }
            case 8:
                _ = registry.touch(id, identity: Array("\(id)-\(clock)".utf8), now: clock)
            default:
                registry.connectionsReset()
            }
            for role in roles {
                #expect(registry.pick(role: role, avoiding: []) == Self.reference(registry, role: role, avoiding: []))
            }
        }
    }

    @Test func aChainStaysOnTheAgentGivenTheLastStepAndParallelStepsSpreadByLoad() {
        var registry = AgentRegistry()
        for id in ["a", "b", "c"] {
            registry[id] = Self.entry(id, role: .validation, capacity: 2)
            registry.subscriptionChanged(WireFormat.agentTopic(id), subscribed: true)
        }
        #expect(registry.pick(role: .validation, avoiding: []) == "a", "by id among agents never given a step")
        let step = StepKey(workflow: "w", step: "s", attempt: 1)
        registry["b"]?.inFlight.insert(step)
        registry["b"]?.lastAssigned = 5
        #expect(registry.pick(role: .validation, avoiding: []) == "a", "the least loaded")
        registry["b"]?.inFlight.remove(step)
        #expect(registry.pick(role: .validation, avoiding: []) == "b", "the one given the last step")
        #expect(registry.pick(role: .validation, avoiding: ["b"]) == "a")
        #expect(registry.pick(role: .docs, avoiding: []) == nil)
        for id in ["a", "b", "c"] {
            for n in 0..<2 { registry[id]?.inFlight.insert(StepKey(workflow: "w", step: "\(id)\(n)", attempt: 1)) }
        }
        #expect(registry.pick(role: .validation, avoiding: []) == nil, "every agent full")
        registry.remove("c")
        registry["a"]?.inFlight.remove(StepKey(workflow: "w", step: "a0", attempt: 1))
        #expect(registry.pick(role: .validation, avoiding: ["a"]) == "a", "an avoided agent when no other has room")
    }
}
