/// The health checks every workflow's validation steps run, and the verdict of one: part of the step contract
/// (`validate/<check>` steps are named by a kind, and hand on a `CheckResult`), so they live with the wire types.

/// The validation checks; each runs as its own task.
public enum HealthCheckKind: String, CaseIterable, Codable, Sendable {
    case nodes
    case systemPods = "system-pods"
    case argocd
    case applications
    case prometheus
    case grafana
    case headlamp
    case dns
    case capacity

    /// Its share of the score (see docs/validation.md).
    public var weight: Int {
        switch self {
        case .nodes: 20
        case .systemPods: 15
        case .argocd: 15
        case .applications: 20
        case .prometheus: 10
        case .grafana: 5
        case .headlamp: 5
        case .dns: 5
        case .capacity: 5
        }
    }

    /// What the check verifies, in one sentence.
    public var explanation: String {
        switch self {
        case .nodes: "Every planned node is registered and Ready."
        case .systemPods:
            "The K3s add-ons in kube-system (CoreDNS, metrics-server, local-path-provisioner, Traefik) run and are ready."
        case .argocd:
            "The Argo CD components (application-controller, repo-server, server, redis, ...) run and are ready."
        case .applications:
            "Every Argo CD Application, children of the App of Apps included, is Synced and Healthy "
                + "(a parent's health does not include its children's)."
        case .prometheus: "Prometheus answers /-/ready and every active target in /api/v1/targets is up."
        case .grafana: "Grafana's /api/health reports its database ok."
        case .headlamp: "Headlamp's web UI answers through its Service."
        case .dns: "The kube-dns Service has ready CoreDNS endpoints, so names resolve inside the cluster."
        case .capacity:
            "Pod requests fit the nodes' allocatable CPU and memory with headroom, and no pod is unschedulable."
        }
    }
}

/// The verdict of one check.
public struct CheckResult: Codable, Sendable, Equatable {
    /// The check's kind (`HealthCheckKind.rawValue`).
    public var name: String
    public var passed: Bool
    public var weight: Int
    /// What was found, in one line.
    public var message: String
    /// What to do about it, when it failed.
    public var remedy: String?
    /// One line per object looked at.
    public var details: [String]
    /// What the check verifies.
    public var explanation: String

    public init(
        name: String, passed: Bool, weight: Int, message: String, remedy: String? = nil, details: [String] = [],
        explanation: String = ""
    ) {
        self.name = name
        self.passed = passed
        self.weight = weight
        self.message = message
        self.remedy = remedy
        self.details = details
        self.explanation = explanation
    }
}
