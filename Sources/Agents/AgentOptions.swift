import AgentRuntime
import Logging
import Protocol
import ShoalSupport

/// Per-process settings of an agent that are not part of the bus protocol.
public struct AgentOptions: Sendable {
    /// Where the agent keeps its files: Terraform directories, the GitOps
    /// repositories it serves. In embedded mode, the output directory.
    public var workDirectory: String
    /// host:port the monitoring agent serves GitOps repositories on.
    public var gitopsListen = "127.0.0.1:0"
    /// Host the cluster uses to reach the served repositories (default: the listen host).
    public var gitopsAdvertise: String?
    /// Bounded waits of real deployments (nodes Ready, rollouts, Applications Synced and Healthy), unless the
    /// request sets its own (`--wait-timeout`).
    public var waitTimeout: Duration = .seconds(300)
    /// How long one kubectl call may take.
    public var kubectlTimeout: Duration = .seconds(30)
    /// How long `terraform apply` and `destroy` may take.
    public var terraformApplyTimeout: Duration = .seconds(3600)
    /// The programs real mode runs: names looked up on PATH, or paths.
    public var kubectlExecutable = "kubectl"
    public var terraformExecutable = "terraform"
    /// The infra agent's address for other hosts (kubeconfig server, docker's published ports), unless the
    /// request sets one (`--advertise-address`).
    public var advertiseAddress: String?
    /// The ssh target's host key checks: the programs, and the operator's known_hosts (`~/.ssh/known_hosts`
    /// when nil).
    public var sshKeyscanExecutable = "ssh-keyscan"
    public var sshKeygenExecutable = "ssh-keygen"
    public var knownHostsPath: String?

    public init(workDirectory: String) {
        self.workDirectory = workDirectory.hasPrefix("/") ? workDirectory : FileManagerPath.current + "/" + workDirectory
    }
}

enum FileManagerPath {
    static var current: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { return "." }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// The step handler of each role.
public enum AgentHandlers {
    /// - Throws: `ShoalError` when the role cannot start here (the monitoring
    ///   agent's repository server cannot bind, say).
    public static func make(role: Role, options: AgentOptions, logger: Logger) throws -> any StepHandler {
        let handler: any StepHandler
        switch role {
        case .planner: handler = PlannerHandler()
        case .infra: handler = InfraHandler(options: options)
        case .argocd: handler = ArgoCDHandler(options: options)
        case .monitoring: handler = try MonitoringHandler(options: options, logger: logger)
        case .validation: handler = ValidationHandler(options: options)
        case .docs: handler = DocsHandler()
        case .bench: return BenchHandler()
        }
        return PreflightGate(role: role, inner: SimulatedDelay(handler))
    }
}

/// Demo mode's `--sim-delay`: each simulated step lasts at least this long,
/// which makes the processes visible and gives fault tests a window.
struct SimulatedDelay: StepHandler {
    let inner: any StepHandler
    init(_ inner: any StepHandler) { self.inner = inner }

    func run(_ context: StepContext) async throws -> StepOutput {
        let delay = context.request.realDeployment ? 0 : context.request.simDelayMilliseconds
        if delay > 0 { try await Task.sleep(for: .milliseconds(delay)) }
        return try await inner.run(context)
    }
}
