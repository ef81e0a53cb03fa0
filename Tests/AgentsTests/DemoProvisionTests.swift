import Foundation
import Protocol
import ShoalSupport
import Testing

@testable import Agents

/// Demo-mode provisioning against the stand-in `terraform` (see Tests/Fixtures/standins): init, validate and plan
/// run at once, and validate and plan again when init installed something.
@Suite(.serialized) struct DemoProvisionTests {
    private func demoRequest() -> WorkflowRequest {
        var request = realRequest()
        request.realDeployment = false
        return request
    }

    private func commands(_ standIns: StandIns) -> [String] {
        standIns.terraformCalls().map { $0.split(separator: " ").first.map(String.init) ?? "" }
    }

    @Test func initThatInstallsNothingLeavesOneValidateAndOnePlan() async throws {
        let standIns = try StandIns()
        let work = temporaryDirectory()
        defer {
            standIns.delete()
            try? FileManager.default.removeItem(atPath: work)
        }
        try standIns.answer("init.installs-nothing", "")
        let handler = InfraHandler(options: standIns.options(workDirectory: work))
        let output = try await handler.run(stepContext("provision", role: .infra, request: demoRequest()))

        #expect(commands(standIns).sorted() == ["init", "plan", "validate"])
        #expect(output.summary.contains("terraform init+validate+plan ok (3 to add)"))
        #expect(
            output.log.prefix(3) == ["terraform init: exit 0", "terraform validate: exit 0", "terraform plan: exit 0"])
        #expect(output.artifacts.contains { $0.name == "cluster-state" })
    }

    @Test func initThatInstalledSomethingRunsValidateAndPlanAgainAfterIt() async throws {
        let standIns = try StandIns()
        let work = temporaryDirectory()
        defer {
            standIns.delete()
            try? FileManager.default.removeItem(atPath: work)
        }
        let handler = InfraHandler(options: standIns.options(workDirectory: work))
        let output = try await handler.run(stepContext("provision", role: .infra, request: demoRequest()))

        let calls = commands(standIns)
        #expect(calls.sorted() == ["init", "plan", "plan", "validate", "validate"])
        #expect(calls.suffix(2).sorted() == ["plan", "validate"], "the second validate and plan follow init: \(calls)")
        #expect(output.summary.contains("terraform init+validate+plan ok (3 to add)"))
    }

    @Test func aFailedInitIsTheErrorReportedThoughValidateAndPlanRanBesideIt() async throws {
        let standIns = try StandIns()
        let work = temporaryDirectory()
        defer {
            standIns.delete()
            try? FileManager.default.removeItem(atPath: work)
        }
        try standIns.answer("init.stderr", "Error: Unsupported Terraform Core version")
        try standIns.answer("validate.stderr", "Error: a validation error that init's error comes before")
        let handler = InfraHandler(options: standIns.options(workDirectory: work))
        await #expect {
            try await handler.run(stepContext("provision", role: .infra, request: demoRequest()))
        } throws: { error in
            let shoal = error as? ShoalError
            return shoal?.message.contains("terraform init failed") == true
                && shoal?.cause?.contains("Unsupported Terraform Core version") == true
        }
    }
}
