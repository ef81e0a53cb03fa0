/// The roles an agent can serve.
public enum Role: String, Codable, Sendable, CaseIterable {
    case planner, infra, argocd, monitoring, validation, docs
    /// No-op steps (and their planner) for `make bench`; no deployment runs it.
    case bench
    /// The roles of a deployment (`bench` left out).
    public static let allCases: [Role] = [.planner, .infra, .argocd, .monitoring, .validation, .docs]
}

public enum Environment: String, Codable, Sendable, CaseIterable {
    case development, staging, production
}

/// Where K3s runs.
public enum Target: String, Codable, Sendable, CaseIterable {
    /// This machine.
    case local
    /// Lab hosts reached over SSH.
    case ssh
    /// K3s in containers.
    case docker
}

/// What a user asked for: the input of the planner.
public struct WorkflowRequest: Codable, Sendable, Equatable {
    public var platform: String = "k3s"
    public var environment: Environment = .development
    public var nodes: Int = 1
    public var monitoring: Bool = true
    public var headlamp: Bool = true
    public var argocd: Bool = true
    public var target: Target = .local
    public var hosts: [String] = []
    public var realDeployment: Bool = false
    /// How long each simulated step lasts, in milliseconds (demo mode).
    public var simDelayMilliseconds: Int = 0
    /// A cluster name; the workflow id when empty.
    public var clusterName: String = ""
    /// Three servers with embedded etcd even outside production.
    public var highAvailability: Bool = false
    /// K3s release (INSTALL_K3S_VERSION); the infra agent's default when empty.
    public var k3sVersion: String = ""
    /// Argo CD release; the argocd agent's default when empty.
    public var argocdVersion: String = ""
    /// SSH private key for the ssh target, a path on the infra agent's machine.
    public var sshKeyPath: String?
    /// Directory with a k3s binary and image tarball for air-gapped installs (infra agent's machine).
    public var airgapDirectory: String?
    /// A local copy of Argo CD's install manifest (air-gapped installs), a path on the argocd agent's machine.
    public var argocdManifest: String?
    /// A git remote the user owns: the GitOps repository is pushed there and the Applications point at it.
    public var gitopsRemote: String?
    /// How long each bounded wait of a real deployment may last (nodes Ready, rollouts, Applications Synced and
    /// Healthy), in seconds; 0 for the agents' default.
    public var waitTimeoutSeconds: Int = 0
    /// The address other hosts reach the cluster at: the kubeconfig's server, a TLS SAN, and for the docker
    /// target where the API and NodePorts are published. The infra agent's own setting, else 127.0.0.1
    /// (local, docker) or the first host (ssh), when nil.
    public var advertiseAddress: String?
    /// ssh target: the address the nodes join the first server at; its InternalIP when nil.
    public var apiAddress: String?
    /// ssh target: the K3s node IP (`--node-ip`) of hosts with several interfaces, keyed by the HOST part of a
    /// `hosts` entry.
    public var nodeIPs: [String: String] = [:]
    /// ssh target: flannel's interface (`--flannel-iface`) per host, keyed like `nodeIPs`.
    public var flannelInterfaces: [String: String] = [:]
    /// User applications as `NAME=SOURCE` (`--app`), each an Application in the GitOps repository's `apps/`; the
    /// monitoring agent parses them with the full grammar.
    public var applications: [String] = []
    /// Whether the example applications (a web server, PostgreSQL, Valkey) are committed and deployed.
    public var examples: Bool = false
    /// How the monitoring stack is laid out in git: `manifests` (a plain directory) or `kustomize` (a base with an
    /// overlay per environment).
    public var monitoringSource: String = "manifests"
    /// `HOST:PORT` of the shoal coordinator's metrics endpoint (`--metrics-listen`), scraped by the monitoring
    /// stack's Prometheus as the job `shoal-coordinator`; no job when nil.
    public var coordinatorMetrics: String?

    public init() {}

    /// The values of `monitoringSource`.
    public static let monitoringSources = ["manifests", "kustomize", "helm"]

    /// Limits shared by the CLI and the coordinator, which re-checks every
    /// request that arrives from the network.
    public static let nodeRange = 1...99
    public static let supportedPlatforms = ["k3s"]
    public static let knownPlatforms = ["k3s", "eks", "aks", "gke"]
    public static let productionMinimumNodes = 3

    /// Checks the request's rules.
    /// - Returns: a one-line reason per broken rule; empty when valid.
    public func problems() -> [String] {
        var problems: [String] = []
        if !WorkflowRequest.supportedPlatforms.contains(platform) {
            if WorkflowRequest.knownPlatforms.contains(platform) {
                problems.append("platform '\(platform)' is not supported yet; use -p k3s")
            } else {
                problems.append("unknown platform '\(platform.prefix(40))'; use -p k3s")
            }
        }
        if !WorkflowRequest.nodeRange.contains(nodes) {
            problems.append("--nodes must be between 1 and 99, got \(nodes)")
        } else if environment == .production && nodes < WorkflowRequest.productionMinimumNodes {
            problems.append(
                "production needs at least 3 nodes (3 servers with embedded etcd for a highly available control plane), got \(nodes)"
            )
        }
        if simDelayMilliseconds < 0 || simDelayMilliseconds > 600_000 {
            problems.append("--sim-delay must be between 0 and 10 minutes")
        }
        if hosts.count > 99 { problems.append("at most 99 hosts") }
        if highAvailability && nodes < WorkflowRequest.productionMinimumNodes {
            problems.append("--ha needs at least 3 nodes (3 servers with embedded etcd), got \(nodes)")
        }
        for (name, value) in [("--k3s-version", k3sVersion), ("--argocd-version", argocdVersion)] where value.utf8.count > 64 {
            problems.append("\(name) is too long")
        }
        if let remote = gitopsRemote, remote.isEmpty || remote.hasPrefix("-") || remote.utf8.count > 2048 {
            problems.append("--gitops-remote must be a git URL (not empty, not starting with '-')")
        }
        if argocdManifest != nil && !argocd {
            problems.append("--argocd-manifest needs Argo CD; drop --no-argocd or the manifest")
        }
        if !(0...86_400).contains(waitTimeoutSeconds) {
            problems.append("--wait-timeout must be between 1s and 24h")
        }
        if target != .ssh {
            for (flag, used) in [
                ("--api-address", apiAddress != nil), ("--node-ip", !nodeIPs.isEmpty),
                ("--flannel-iface", !flannelInterfaces.isEmpty),
            ] where used {
                problems.append("\(flag) is only used with --target ssh (the target is \(target.rawValue))")
            }
        }
        if applications.count > 50 { problems.append("at most 50 --app applications") }
        for app in applications
        where app.utf8.count > 2200 || !app.contains("=")
            || !app.unicodeScalars.allSatisfy({ $0.value > 32 && $0.value < 127 })
        {
            problems.append("invalid --app '\(app.prefix(80).filter { $0.isASCII && !$0.isWhitespace })': use NAME=SOURCE")
        }
        if !WorkflowRequest.monitoringSources.contains(monitoringSource) {
            problems.append("--monitoring-source must be manifests, kustomize or helm")
        } else if monitoringSource != "manifests" && !argocd {
            problems.append("--monitoring-source \(monitoringSource) needs Argo CD; drop --no-argocd")
        }
        problems += inputProblems()
        return problems
    }
}

extension WorkflowRequest {
    // Decoding tolerates absent fields (older clients) but not wrong types.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        platform = try c.decodeIfPresent(String.self, forKey: .platform) ?? platform
        environment = try c.decodeIfPresent(Environment.self, forKey: .environment) ?? environment
        nodes = try c.decodeIfPresent(Int.self, forKey: .nodes) ?? nodes
        monitoring = try c.decodeIfPresent(Bool.self, forKey: .monitoring) ?? monitoring
        headlamp = try c.decodeIfPresent(Bool.self, forKey: .headlamp) ?? headlamp
        argocd = try c.decodeIfPresent(Bool.self, forKey: .argocd) ?? argocd
        target = try c.decodeIfPresent(Target.self, forKey: .target) ?? target
        hosts = try c.decodeIfPresent([String].self, forKey: .hosts) ?? hosts
        realDeployment = try c.decodeIfPresent(Bool.self, forKey: .realDeployment) ?? realDeployment
        simDelayMilliseconds = try c.decodeIfPresent(Int.self, forKey: .simDelayMilliseconds) ?? simDelayMilliseconds
        clusterName = try c.decodeIfPresent(String.self, forKey: .clusterName) ?? clusterName
        highAvailability = try c.decodeIfPresent(Bool.self, forKey: .highAvailability) ?? highAvailability
        k3sVersion = try c.decodeIfPresent(String.self, forKey: .k3sVersion) ?? k3sVersion
        argocdVersion = try c.decodeIfPresent(String.self, forKey: .argocdVersion) ?? argocdVersion
        sshKeyPath = try c.decodeIfPresent(String.self, forKey: .sshKeyPath)
        airgapDirectory = try c.decodeIfPresent(String.self, forKey: .airgapDirectory)
        argocdManifest = try c.decodeIfPresent(String.self, forKey: .argocdManifest)
        gitopsRemote = try c.decodeIfPresent(String.self, forKey: .gitopsRemote)
        waitTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .waitTimeoutSeconds) ?? waitTimeoutSeconds
        advertiseAddress = try c.decodeIfPresent(String.self, forKey: .advertiseAddress)
        apiAddress = try c.decodeIfPresent(String.self, forKey: .apiAddress)
        nodeIPs = try c.decodeIfPresent([String: String].self, forKey: .nodeIPs) ?? nodeIPs
        flannelInterfaces =
            try c.decodeIfPresent([String: String].self, forKey: .flannelInterfaces) ?? flannelInterfaces
        applications = try c.decodeIfPresent([String].self, forKey: .applications) ?? applications
        examples = try c.decodeIfPresent(Bool.self, forKey: .examples) ?? examples
        monitoringSource = try c.decodeIfPresent(String.self, forKey: .monitoringSource) ?? monitoringSource
        coordinatorMetrics = try c.decodeIfPresent(String.self, forKey: .coordinatorMetrics)
    }
}

/// One step of a plan: a node of the workflow's DAG.
public struct PlannedStep: Codable, Sendable, Equatable {
    /// Unique within the workflow, e.g. `provision` or `validate/nodes`.
    public var name: String
    public var role: Role
    /// Steps that must succeed first.
    public var needs: [String]
    /// A failed critical step stops the workflow; others only fail it.
    public var critical: Bool
    /// Step-specific parameters (a validation check's name, say).
    public var params: [String: JSONValue]

    public init(name: String, role: Role, needs: [String] = [], critical: Bool = false, params: [String: JSONValue] = [:]) {
        self.name = name
        self.role = role
        self.needs = needs
        self.critical = critical
        self.params = params
    }
}

/// The planner's output: the steps that follow the plan step.
public struct Plan: Codable, Sendable, Equatable {
    public var steps: [PlannedStep]
    public init(steps: [PlannedStep]) { self.steps = steps }

    /// Checks that names are unique, dependencies exist and there is no cycle.
    /// - Returns: a reason per problem; empty when the plan is a DAG.
    public func problems(existing: Set<String> = [StepName.plan.wireName]) -> [String] {
        var problems: [String] = []
        var names = existing
        for step in steps {
            if step.name.isEmpty || step.name.utf8.count > 100 { problems.append("bad step name '\(step.name.prefix(100))'") }
            if !names.insert(step.name).inserted { problems.append("duplicate step '\(step.name)'") }
        }
        for step in steps {
            for need in step.needs where !names.contains(need) {
                problems.append("step '\(step.name)' needs unknown step '\(need)'")
            }
        }
        // Kahn's algorithm: whatever cannot be ordered is on a cycle.
        var remaining = Dictionary(steps.map { ($0.name, Set($0.needs).subtracting(existing)) }, uniquingKeysWith: { first, _ in first })
        while let ready = remaining.first(where: { $0.value.isEmpty })?.key {
            remaining[ready] = nil
            for key in remaining.keys { remaining[key]?.remove(ready) }
        }
        if !remaining.isEmpty { problems.append("dependency cycle among \(remaining.keys.sorted().joined(separator: ", "))") }
        return problems
    }
}
