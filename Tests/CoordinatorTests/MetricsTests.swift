import Foundation
import Testing

@testable import Coordinator
@testable import Protocol
@testable import ZeroMQ

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The metrics text served at `address`, read on this thread.
private func scrape(_ address: String) throws -> String {
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var text = ""
    let url = URL(string: "http://\(address)/metrics")!
    URLSession.shared.dataTask(with: url) { data, _, _ in
        text = String(decoding: data ?? Data(), as: UTF8.self)
        done.signal()
    }.resume()
    guard done.wait(timeout: .now() + 10) == .success else { throw ShoalTestError("no answer from \(url)") }
    return text
}

private func value(_ text: String, _ series: String) -> Double? {
    text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.dropFirst(series.count + 1)) }
}

/// Scrapes until `series` has `expected`, or 10 s passed; returns the last value.
private func waitFor(_ address: String, _ series: String, _ expected: Double) throws -> Double? {
    let deadline = ContinuousClock.now + .seconds(10)
    var last: Double?
    while ContinuousClock.now < deadline {
        last = value(try scrape(address), series)
        if last == expected { return last }
        Thread.sleep(forTimeInterval: 0.02)
    }
    return last
}

@Suite struct MetricsTests {
    let context = Context()

    @Test func workflowGaugesFollowAFailureAResumeAndASuccess() async throws {
        let coordinator = try await TestCoordinator.start {
            $0.ackTimeout = .seconds(10)
            $0.metricsListen = try? MetricsServer.Listen(parsing: "127.0.0.1:0")
        }
        defer { Task { await coordinator.stop() } }
        let address = try #require(coordinator.endpoints.metrics)
        try await onOwnThread {
            let planner = try RawAgent(id: "planner-m", role: .planner, coordinator: coordinator, context: context)
            let checker = try RawAgent(id: "validation-m", role: .validation, coordinator: coordinator, context: context)
            try planner.join()
            try checker.join()
            let client = try coordinator.client(context)
            let workflow = try client.submit(WorkflowRequest()).workflow
            #expect(try waitFor(address, #"shoal_workflows{state="running"}"#, 1) == 1)
            let plan = try #require(try planner.waitStep())
            try planner.ack(plan.key)
            let check = PlannedStep(name: "validate/nodes", role: .validation, params: ["check": "nodes"])
            let body = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(Plan(steps: [check])))
            try planner.result(plan.key, values: ["plan": body])
            let first = try #require(try checker.waitStep())
            try checker.ack(first.key)
            try checker.result(first.key, outcome: .failed)
            _ = try #require(try checker.waitControl(.confirm))
            #expect(try client.status(workflow).state == .failed)
            #expect(try waitFor(address, #"shoal_workflows{state="failed"}"#, 1) == 1)
            #expect(try waitFor(address, #"shoal_workflows{state="running"}"#, 0) == 0)
            let failedChecks = #"shoal_step_duration_seconds_count{role="validation",step="validate",outcome="failed"}"#
            #expect(value(try scrape(address), failedChecks) == 1)

            _ = try client.resume(workflow)
            #expect(try waitFor(address, #"shoal_workflows{state="running"}"#, 1) == 1)
            #expect(try waitFor(address, #"shoal_workflows{state="failed"}"#, 0) == 0, "the resumed one left 'failed'")
            let again = try #require(try checker.waitStep())
            try checker.ack(again.key)
            try checker.result(again.key)
            _ = try #require(try checker.waitControl(.confirm))
            #expect(try waitFor(address, #"shoal_workflows{state="succeeded"}"#, 1) == 1)
            let text = try scrape(address)
            #expect(value(text, #"shoal_workflows{state="running"}"#) == 0)
            #expect(value(text, #"shoal_workflows{state="failed"}"#) == 0)
            #expect(
                value(text, #"shoal_step_duration_seconds_count{role="validation",step="validate",outcome="succeeded"}"#)
                    == 1)
            #expect(value(text, #"shoal_step_duration_seconds_count{role="planner",step="plan",outcome="succeeded"}"#) == 1)
        }
    }

    @Test func aPruneCountsTheJournalsWorkflowsAgain() async throws {
        let coordinator = try await TestCoordinator.start {
            // Long enough to see the finished workflow counted before the prune, even on a loaded machine.
            $0.retain = .seconds(10)
            $0.metricsListen = try? MetricsServer.Listen(parsing: "127.0.0.1:0")
        }
        defer { Task { await coordinator.stop() } }
        let address = try #require(coordinator.endpoints.metrics)
        try await onOwnThread {
            let agent = try RawAgent(id: "planner-q", role: .planner, coordinator: coordinator, context: context)
            try agent.join()
            let client = try coordinator.client(context)
            _ = try client.submit(WorkflowRequest()).workflow
            let step = try #require(try agent.waitStep())
            try agent.ack(step.key)
            try agent.result(step.key, values: ["plan": emptyPlan])
            _ = try #require(try agent.waitControl(.confirm))
            #expect(try waitFor(address, #"shoal_workflows{state="succeeded"}"#, 1) == 1)
            // The prune deletes it; the count after the commit says so.
            let deadline = ContinuousClock.now + .seconds(30)
            var succeeded: Double? = 1
            while succeeded != 0 && ContinuousClock.now < deadline {
                _ = try agent.pump(timeout: .milliseconds(100)) { _, _ in Optional<Int>.none }
                succeeded = value(try scrape(address), #"shoal_workflows{state="succeeded"}"#)
            }
            #expect(succeeded == 0)
            #expect(try client.stats().workflows == 0)
        }
    }

    @Test func aMetricsAddressIsIPv4AndAPort() throws {
        #expect((try? MetricsServer.Listen(parsing: "127.0.0.1:9464")) == (try? MetricsServer.Listen(parsing: "127.0.0.1:9464")))
        #expect(try MetricsServer.Listen(parsing: "0.0.0.0:0").port == 0)
        for bad in ["localhost:9464", "127.0.0.1", "127.0.0.1:99999", ":9464", "1.2.3.4:9464:1", "127.0.0.1:-1", ""] {
            #expect(throws: (any Error).self, "\(bad)") { try MetricsServer.Listen(parsing: bad) }
        }
    }
}
