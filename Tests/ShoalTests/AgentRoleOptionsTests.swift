import ArgumentParser
import Testing

@testable import shoal

/// The role options `shoal agent` shares with its step worker, `shoal agent-worker`.
@Suite struct AgentRoleOptionsTests {
    @Test func theWorkerArgumentsOfAnAgentGiveTheWorkerTheSameRoleOptions() throws {
        let agent = try AgentCommand.parse([
            "monitoring", "--coordinator", "tcp://127.0.0.1:7401", "--work-dir", "/var/lib/shoal", "--gitops-listen",
            "0.0.0.0:8418", "--gitops-advertise", "10.0.0.7", "--gitops-push-url", "http://127.0.0.1:8080",
            "--advertise-address", "lab.example", "--log-level", "debug", "--insecure",
        ])
        let arguments = agent.roleOptions.workerArguments(parentPID: 4242)
        #expect(arguments.first == "agent-worker")
        let worker = try AgentWorkerCommand.parse(Array(arguments.dropFirst()))
        #expect(worker.parent.parentPid == 4242)
        let (sent, received) = (agent.roleOptions, worker.roleOptions)
        #expect(received.role == sent.role && received.workDir == sent.workDir)
        #expect(received.gitopsListen == sent.gitopsListen && received.gitopsAdvertise == sent.gitopsAdvertise)
        #expect(received.gitopsPushURL == sent.gitopsPushURL && received.advertiseAddress == sent.advertiseAddress)
        #expect(received.logging.logLevel == "debug")
        #expect(received.agentOptions.workDirectory == "/var/lib/shoal")
        // An agent that is a container's pid 1 names no parent: the worker follows the one it starts with.
        let fromInit = try AgentWorkerCommand.parse(Array(agent.roleOptions.workerArguments(parentPID: 1).dropFirst()))
        #expect(fromInit.parent.parentPid == nil)
    }

    @Test func bothCommandsRefuseAnUnknownRoleAndABadAddress() {
        let cases = [(["nope"], "unknown role 'nope'"), (["infra", "--advertise-address", "0.0.0.0"], "0.0.0.0")]
        for (arguments, message) in cases {
            #expect(
                refusal(AgentCommand.self, arguments + ["--coordinator", "tcp://127.0.0.1:7401", "--insecure"])
                    .contains(message))
            #expect(refusal(AgentWorkerCommand.self, arguments).contains(message))
        }
        #expect(refusal(AgentWorkerCommand.self, ["docs", "--parent-pid", "1"]).contains("--parent-pid"))
        #expect(AgentWorkerCommand.configuration.shouldDisplay == false)
    }

    private func refusal(_ command: any ParsableCommand.Type, _ arguments: [String]) -> String {
        do {
            _ = try command.parse(arguments)
            return "accepted"
        } catch {
            return command.message(for: error)
        }
    }
}
