import ArgumentParser
import Foundation
import Protocol

/// `shoal health`: a container or service health check. Exit 0 when the coordinator answers (and, with `--role`,
/// lists a live agent of that role on this host), 1 otherwise.
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Check that a coordinator answers and, with --role, that an agent of that role on this host is live.",
        discussion: HelpExamples.discussion(
            """
            For health checks (compose/compose.yaml, systemd): exit status 0 when healthy, 1 with a one-line reason \
            otherwise. An agent counts as live while the coordinator receives its heartbeats.
            """, HelpExamples.health))

    @OptionGroup var target: CoordinatorOption
    @Option(help: "The role of an agent that must be live on this host: planner, infra, argocd, ...")
    var role: String?
    @Option(help: "The host name the agent registered with (default: this host's name).") var host: String?

    func validate() throws {
        if let role, Role(rawValue: role) == nil {
            throw ValidationError(
                "unknown role '\(role.prefix(40))'; use one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
    }

    func run() async throws {
        let agents = await target.with { try $0.agents() }
        guard let role = role.flatMap(Role.init(rawValue:)) else {
            print("healthy: coordinator answers, \(agents.count) live agents")
            return
        }
        let host = host ?? ProcessInfo.processInfo.hostName
        guard let agent = agents.first(where: { $0.role == role && $0.host == host }) else {
            fail("unhealthy: no live \(role.rawValue) agent on \(host.prefix(64)) (\(agents.count) live agents)")
        }
        print("healthy: \(agent.id) is live")
    }
}
