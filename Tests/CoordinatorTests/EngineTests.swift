import Foundation
import Logging
import Testing

@testable import Coordinator
@testable import Protocol
@testable import ZeroMQ

@Suite(.serialized) struct EngineTests {
    let context = Context()

    private func planWith(_ steps: [PlannedStep]) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(Plan(steps: steps)))
    }

    @Test func aStatusReplyNamesTheEventsPortSoAFollowerThatDidNotSubmitGetsTheEvents() async throws {
        let coordinator = try await TestCoordinator.start()
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let accepted = try coordinator.client(context).submit(WorkflowRequest())
            let other = try coordinator.client(context)
            let reply = try other.call(Header(type: .status, workflow: accepted.workflow), Empty())
                .decode(StatusReply.self)
            #expect(reply.eventsPort != nil)
            #expect(reply.eventsPort == accepted.eventsPort)
            #expect(reply.eventsPort == BoundEndpoints.port(of: coordinator.endpoints.events))
        }
    }

    @Test func aFailedValidationCheckResumedRunsWithItsParams() async throws {
        let coordinator = try await TestCoordinator.start { $0.ackTimeout = .seconds(10) }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let planner = try RawAgent(id: "planner-p", role: .planner, coordinator: coordinator, context: context)
            let checker = try RawAgent(id: "validation-p", role: .validation, coordinator: coordinator, context: context)
            try planner.join()
            try checker.join()
            let client = try coordinator.client(context)
            let workflow = try client.submit(WorkflowRequest()).workflow
            let plan = try #require(try planner.waitStep())
            try planner.ack(plan.key)
            let check = PlannedStep(name: "validate/nodes", role: .validation, params: ["check": "nodes"])
            try planner.result(plan.key, values: ["plan": try planWith([check])])
            let first = try #require(try checker.waitStep())
            #expect(first.assignment.params == ["check": "nodes"])
            try checker.ack(first.key)
            try checker.result(first.key, outcome: .failed)
            _ = try #require(try checker.waitControl(.confirm))
            #expect(try client.status(workflow).state == .failed)
            let resumed = try client.resume(workflow)
            #expect(resumed.state == .running)
            #expect(resumed.step("validate/nodes")?.params == ["check": "nodes"])
            let again = try #require(try checker.waitStep())
            #expect(again.key.step == "validate/nodes")
            #expect(again.key.attempt == 2)
            #expect(again.assignment.params == ["check": "nodes"], "the resumed check runs with its params")
            try checker.ack(again.key)
            try checker.result(again.key)
            _ = try #require(try checker.waitControl(.confirm))
            #expect(try client.status(workflow).state == .succeeded)
        }
    }

    @Test func aPlanOfAnotherShapeFailsTheWorkflowWithOneLineNamingTheField() async throws {
        let coordinator = try await TestCoordinator.start { $0.ackTimeout = .seconds(10) }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let planner = try RawAgent(id: "planner-m", role: .planner, coordinator: coordinator, context: context)
            try planner.join()
            let client = try coordinator.client(context)
            let cases: [([String: JSONValue], String)] = [
                (["servers": 1], "step 'plan' output field 'plan': missing"),
                (
                    [
                        "plan": [
                            "steps": [["name": "x", "role": "wizard", "needs": [], "critical": false, "params": [:]]]
                        ]
                    ],
                    "step 'plan' output field 'plan.steps.0.role'"
                ),
                (["plan": ["steps": "none"]], "step 'plan' output field 'plan.steps': not an array"),
            ]
            for (values, expected) in cases {
                let workflow = try client.submit(WorkflowRequest()).workflow
                let plan = try #require(try planner.waitStep())
                try planner.ack(plan.key)
                try planner.result(plan.key, values: values)
                _ = try #require(try planner.waitControl(.confirm))
                let status = try client.status(workflow)
                #expect(status.state == .failed)
                let error = status.error ?? ""
                #expect(error.hasPrefix(expected), "\(error)")
                #expect(!error.contains("\n"))
                #expect(status.steps.count == 1 && status.step(.plan)?.values.isEmpty == true)
            }
        }
    }

    @Test func eventsCarryOnlyTheStepsThatChangedAndApplyInOrder() async throws {
        let coordinator = try await TestCoordinator.start { $0.ackTimeout = .seconds(10) }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let planner = try RawAgent(id: "planner-e", role: .planner, coordinator: coordinator, context: context)
            let docs = try RawAgent(id: "docs-e", role: .docs, coordinator: coordinator, context: context)
            try planner.join()
            try docs.join()
            let client = try coordinator.client(context)
            let workflow = try client.submit(WorkflowRequest()).workflow
            let events = try Socket(context: context, type: .sub)
            if let keys = coordinator.curve() { try events.makeCurveClient(keys) }
            try events.connect(coordinator.endpoints.events)
            try events.subscribe(WireFormat.workflowTopic(workflow))
            var mirror = try client.status(workflow)
            let plan = try #require(try planner.waitStep())
            try planner.ack(plan.key)
            let steps = (0..<20).map { PlannedStep(name: "d\($0)", role: .docs, needs: $0 == 0 ? ["plan"] : ["d\($0 - 1)"]) }
            try planner.result(plan.key, values: ["plan": try planWith(steps)])
            for _ in 0..<20 {
                let step = try #require(try docs.waitStep())
                try docs.ack(step.key)
                try docs.result(step.key)
            }
            var received: [WorkflowEvent] = []
            let deadline = ContinuousClock.now + .seconds(10)
            while mirror.state == .running && ContinuousClock.now < deadline {
                _ = try docs.pump(timeout: .milliseconds(20)) { _, _ in Optional<Int>.none }
                while let frames = try events.receive(wait: false) {
                    let event = try Codec.decode(frames.dropFirst()).decode(WorkflowEvent.self)
                    received.append(event)
                    if !event.apply(to: &mirror) { mirror = try client.status(workflow) }
                }
            }
            #expect(mirror.state == .succeeded)
            #expect(mirror == (try client.status(workflow)), "the events rebuild the snapshot")
            // After the plan, no event carries more than a few steps.
            let later = received.filter { !$0.steps.contains { $0.name == "plan" } }
            #expect(!later.isEmpty)
            #expect(later.allSatisfy { $0.steps.count <= 3 }, "\(received.map(\.steps.count))")
        }
    }

    @Test func aChainOf500StepsTakesNoLongerPerStepAtItsEndThanAtItsStart() async throws {
        let coordinator = try await TestCoordinator.start { $0.ackTimeout = .seconds(30); $0.heartbeatInterval = .seconds(1) }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let agent = try RawAgent(id: "bench-c", role: .bench, coordinator: coordinator, context: context)
            try agent.join()
            let client = try coordinator.client(context)
            let workflow = try client.submit(WorkflowRequest(), planner: .bench, params: [:]).workflow
            let plan = try #require(try agent.waitStep())
            try agent.ack(plan.key)
            let steps = (0..<500).map { PlannedStep(name: "s\($0)", role: .bench, needs: $0 == 0 ? [] : ["s\($0 - 1)"]) }
            try agent.result(plan.key, values: ["plan": try planWith(steps)])
            var durations: [Duration] = []
            var last = ContinuousClock.now
            for index in 0..<500 {
                let step = try #require(try agent.waitStep(), "step \(index)")
                #expect(step.key.step == "s\(index)")
                try agent.ack(step.key)
                try agent.result(step.key)
                let now = ContinuousClock.now
                durations.append(now - last)
                last = now
            }
            var status = try client.status(workflow)
            let deadline = ContinuousClock.now + .seconds(10)
            while status.state == .running && ContinuousClock.now < deadline {
                _ = try agent.pump(timeout: .milliseconds(20)) { _, _ in Optional<Int>.none }
                status = try client.status(workflow)
            }
            #expect(status.state == .succeeded)
            // The fastest step of each window is the cost of a step when nothing else runs: the rest of the
            // suite runs beside this test on a loaded machine and slows steps at random, but not all fifty. A
            // cost that grows with the chain (re-saving every step, as the journal once did) raises the fastest
            // step of the end with the chain's length.
            let start = durations[1..<51].min()!
            let end = durations[450..<500].min()!
            #expect(end <= start * 3 + .milliseconds(3), "first 50 fastest \(start), last 50 fastest \(end)")
        }
    }

    @Test func aPlanWithACycleOrUnknownNeedFailsTheWorkflowQuickly() {
        let cycle = Plan(steps: [
            PlannedStep(name: "a", role: .docs, needs: ["b"]), PlannedStep(name: "b", role: .docs, needs: ["a"]),
        ])
        #expect(CoordinatorCore.problems(of: cycle, existing: ["plan"]).first?.contains("cycle") == true)
        let unknown = Plan(steps: [PlannedStep(name: "a", role: .docs, needs: ["nope"])])
        #expect(CoordinatorCore.problems(of: unknown, existing: ["plan"]).first?.contains("unknown") == true)
        let big = Plan(steps: (0..<20_000).map { PlannedStep(name: "s\($0)", role: .bench, needs: $0 == 0 ? [] : ["s\($0 - 1)"]) })
        #expect(CoordinatorCore.problems(of: big, existing: ["plan"]).isEmpty)
        #expect(CoordinatorCore.ordered(Plan(steps: big.steps.reversed())).map(\.name) == big.steps.map(\.name))
    }

    @Test func finishedWorkflowsLeaveMemoryAndAreStillListedAndShown() async throws {
        let coordinator = try await TestCoordinator.start()
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let agent = try RawAgent(id: "planner-m", role: .planner, coordinator: coordinator, context: context)
            try agent.join()
            let client = try coordinator.client(context)
            var ids: [String] = []
            for _ in 0..<5 {
                let id = try client.submit(WorkflowRequest()).workflow
                ids.append(id)
                let step = try #require(try agent.waitStep())
                try agent.ack(step.key)
                try agent.result(step.key, values: ["plan": emptyPlan])
                _ = try #require(try agent.waitControl(.confirm))
            }
            let stats = try client.stats()
            #expect(stats.workflows == 5)
            #expect(stats.running == 0, "finished workflows are not held in memory")
            #expect(Set(try client.list().map(\.id)) == Set(ids))
            for id in ids { #expect(try client.status(id).state == .succeeded) }
            // A resend of a result for a finished workflow is still confirmed.
            try agent.result(StepKey(workflow: ids[0], step: "plan", attempt: 1))
            #expect(try agent.waitControl(.confirm) != nil)
        }
    }

    @Test func retainPrunesFinishedWorkflowsFromTheJournal() async throws {
        let coordinator = try await TestCoordinator.start {
            $0.retain = .milliseconds(300)
            $0.journalSync = .full
        }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let agent = try RawAgent(id: "planner-r", role: .planner, coordinator: coordinator, context: context)
            try agent.join()
            let client = try coordinator.client(context)
            let id = try client.submit(WorkflowRequest()).workflow
            let step = try #require(try agent.waitStep())
            try agent.ack(step.key)
            try agent.result(step.key, values: ["plan": emptyPlan])
            _ = try #require(try agent.waitControl(.confirm))
            #expect(try client.status(id).state == .succeeded)
            let deadline = ContinuousClock.now + .seconds(10)
            var pruned = false
            while !pruned && ContinuousClock.now < deadline {
                _ = try agent.pump(timeout: .milliseconds(100)) { _, _ in Optional<Int>.none }
                pruned = (try? client.status(id)) == nil
            }
            #expect(pruned, "the finished workflow is deleted after --retain")
            #expect(try client.stats().workflows == 0)
            #expect(try coordinator.journal.workflow(id) == nil)
        }
    }

    @Test func aMissingJournalKeyWithSealedRowsRefusesToStartNamingTheFile() async throws {
        let directory = NSTemporaryDirectory() + "shoal-key-\(UUID().uuidString)"
        let path = directory + "/journal.sqlite"
        try sealedRow(in: path)
        let original = try Data(contentsOf: URL(fileURLWithPath: path + ".key"))
        try FileManager.default.removeItem(atPath: path + ".key")
        let missing = await startError(journal: path)
        #expect(missing?.contains(path + ".key") == true, "\(missing ?? "started")")
        #expect(missing?.contains("missing") == true)
        #expect(!FileManager.default.fileExists(atPath: path + ".key"), "the key made in passing is removed again")
        try writePrivate(Data(repeating: 9, count: 32), to: path + ".key", mode: 0o600)
        let replaced = await startError(journal: path)
        #expect(replaced?.contains(path + ".key") == true, "\(replaced ?? "started")")
        #expect(replaced?.contains("replaced") == true)
        try writePrivate(original, to: path + ".key", mode: 0o600)
        #expect(await startError(journal: path) == nil, "the right key starts again")
    }

    @Test func anEmptyJournalBesideItsKeyIsWarnedAbout() async throws {
        let directory = NSTemporaryDirectory() + "shoal-empty-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/journal.sqlite"
        try writePrivate(Data(repeating: 1, count: 32), to: path + ".key", mode: 0o600)
        try writePrivate(Data(), to: path, mode: 0o600)
        let coordinator = try await TestCoordinator.start { $0.journalPath = path }
        defer { Task { await coordinator.stop() } }
        #expect(coordinator.logs.all.contains { $0.level == .warning && $0.message.contains("journal is empty") })
    }

    private func writePrivate(_ data: Data, to path: String, mode: mode_t) throws {
        try data.write(to: URL(fileURLWithPath: path))
        chmod(path, mode)
    }

    /// A journal with one sealed artifact, as a coordinator leaves it.
    private func sealedRow(in path: String) throws {
        let journal = try Journal(path: path)
        let key = StepKey(workflow: "k3s-dev-000001", step: "provision", attempt: 1)
        let workflow = WorkflowSnapshot(
            id: key.workflow, state: .succeeded, request: WorkflowRequest(), createdAt: 1, finishedAt: 2,
            steps: [StepSnapshot(name: "provision", role: .infra, needs: [], critical: true)], error: nil, revision: 1)
        try journal.insert(workflow, submitID: nil)
        let result = StepResult(
            outcome: .succeeded,
            output: StepOutput(
                summary: "ok", artifacts: [Artifact(name: "token", path: nil, sensitive: true, text: "secret")]),
            error: nil, agent: "infra-1", host: "h", pid: 1, startedAt: 1, finishedAt: 2)
        try journal.recordResult(key, result, workflow: workflow, step: workflow.steps[0], at: 2)
    }

    /// Starts a coordinator on `journal`; the error it stops with at once, or nil once it is ready.
    private func startError(journal: String) async -> String? {
        var configuration = CoordinatorConfiguration()
        configuration.controlEndpoint = "tcp://127.0.0.1:*"
        configuration.eventsEndpoint = "tcp://127.0.0.1:*"
        configuration.journalPath = journal
        configuration.outputDirectory = NSTemporaryDirectory() + "shoal-out-\(UUID().uuidString)"
        let (stream, continuation) = AsyncStream.makeStream(of: BoundEndpoints.self)
        let service = CoordinatorService(configuration: configuration, logger: Logger(label: "test")) {
            continuation.yield($0)
        }
        let task = Task { () -> String? in
            do {
                try await service.run()
                return nil
            } catch {
                continuation.finish()
                return "\(error)"
            }
        }
        var iterator = stream.makeAsyncIterator()
        if await iterator.next() != nil {
            task.cancel()
            _ = await task.value
            return nil
        }
        return await task.value
    }
}
