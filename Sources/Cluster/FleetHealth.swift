import Foundation
import Protocol

/// The score of one cluster of a fleet.
public struct ClusterScore: Codable, Sendable, Equatable {
    /// The cluster's name (its workflow id).
    public var name: String
    /// Its API server as the fleet's Argo CD reaches it.
    public var server: String
    /// `fleet` (the cluster whose Argo CD deploys to the others) or `member`.
    public var role: String
    public var score: Int
    public var status: String
    public var checks: [CheckResult]
}

/// Every cluster of a fleet and the fleet as a whole (see docs/validation.md).
public struct FleetReport: Codable, Sendable, Equatable {
    /// The fleet's workflow id.
    public var fleet: String
    /// The fleet's own cluster first, then the members by name.
    public var clusters: [ClusterScore]
    /// The lowest cluster score: a fleet is as healthy as its least healthy cluster.
    public var score: Int
    /// `healthy` when every cluster is and every ApplicationSet rendered, `unhealthy` when a cluster is, else
    /// `degraded`.
    public var status: String
    /// ApplicationSets that generated nothing, each naming its file.
    public var problems: [String]

    /// Scores the clusters (see docs/validation.md).
    public static func make(fleet: String, clusters: [ClusterScore], problems: [String]) -> FleetReport {
        let score = clusters.map(\.score).min() ?? 0
        let status =
            if clusters.contains(where: { $0.status == "unhealthy" }) || clusters.isEmpty {
                "unhealthy"
            } else if clusters.allSatisfy({ $0.status == "healthy" }) && problems.isEmpty {
                "healthy"
            } else { "degraded" }
        return FleetReport(fleet: fleet, clusters: clusters, score: score, status: status, problems: problems)
    }
}

extension HealthReport {
    /// The report with the fleet's: its status is healthy only when the fleet is too.
    public func including(_ fleet: FleetReport) -> HealthReport {
        var copy = self
        copy.fleet = fleet
        if status == "healthy" && fleet.status != "healthy" { copy.status = fleet.status }
        return copy
    }
}

/// Scores a fleet: the fleet's own cluster by its ordinary report, each member by the checks that apply to a cluster
/// the fleet's Argo CD deploys to, on that cluster (nodes, system pods, DNS, capacity, Prometheus, Grafana,
/// Headlamp) plus `fleet-applications`: the Applications of the fleet's Argo CD that deploy there.
public enum FleetHealth {
    /// The check of the Applications that deploy to a member; it weighs as `applications` does.
    public static let applicationsCheck = "fleet-applications"

    /// A member of the fleet and how to reach it.
    public struct Member: Sendable {
        public var name: String
        public var server: String
        /// Its cluster; nil when this host cannot reach it (only its Applications are checked then).
        public var client: (any ClusterClient)?
        /// The nodes it should have.
        public var nodes: Int

        public init(name: String, server: String, client: (any ClusterClient)?, nodes: Int) {
            self.name = name
            self.server = server
            self.client = client
            self.nodes = nodes
        }
    }

    /// - Parameters:
    ///   - fleet: the fleet's workflow id.
    ///   - own: the fleet's own cluster's report.
    ///   - fleetClient: the fleet's cluster, whose Argo CD holds the Applications.
    ///   - members: the joined clusters.
    ///   - headlamp: whether the fleet's monitoring stack has Headlamp.
    ///   - problems: ApplicationSets that rendered nothing.
    public static func report(
        fleet: String, own: HealthReport, fleetClient: any ClusterClient, members: [Member], headlamp: Bool,
        problems: [String], argocdNamespace: String = "argocd"
    ) async -> FleetReport {
        var clusters = [
            ClusterScore(
                name: fleet, server: ApplicationStatus.inClusterServer, role: "fleet", score: own.score,
                status: own.status, checks: own.checks)
        ]
        let applications = await Result(catching: { try await fleetClient.applications(namespace: argocdNamespace) })
        for member in members.sorted(by: { $0.name < $1.name }) {
            var checks: [CheckResult] = []
            if let client = member.client {
                let expectation = HealthExpectation(
                    nodes: member.nodes, argocd: false, monitoring: true, headlamp: headlamp)
                for kind in HealthChecks.applicable(expectation) {
                    checks.append(await HealthChecks.run(kind, client: client, expectation: expectation))
                }
            } else {
                checks.append(
                    CheckResult(
                        name: HealthCheckKind.nodes.rawValue, passed: false, weight: HealthCheckKind.nodes.weight,
                        message: "no access to \(member.server) from this host",
                        remedy: "Run `shoal validate` where the member's kubeconfig is (its output directory).",
                        details: [], explanation: HealthCheckKind.nodes.explanation))
            }
            checks.append(applicationsVerdict(member, applications, problems: problems))
            let report = HealthReport.make(checks)
            clusters.append(
                ClusterScore(
                    name: member.name, server: member.server, role: "member", score: report.score,
                    status: report.status, checks: report.checks))
        }
        return FleetReport.make(fleet: fleet, clusters: clusters, problems: problems)
    }

    private static func applicationsVerdict(
        _ member: Member, _ applications: Result<[ApplicationStatus], any Error>, problems: [String]
    ) -> CheckResult {
        let explanation =
            "Every Application of the fleet's Argo CD that deploys to this cluster is Synced and Healthy, "
            + "and there is at least one (the monitoring stack)."
        func result(_ passed: Bool, _ message: String, _ details: [String], _ remedy: String?) -> CheckResult {
            CheckResult(
                name: applicationsCheck, passed: passed, weight: HealthCheckKind.applications.weight, message: message,
                remedy: passed ? nil : remedy, details: details, explanation: explanation)
        }
        let all: [ApplicationStatus]
        switch applications {
        case .success(let list): all = list
        case .failure(let error):
            return result(false, "could not list the fleet's Applications: \(error)", [], "Check the fleet cluster.")
        }
        let mine = all.filter { $0.destinationServer == member.server }
        if mine.isEmpty {
            return result(
                false, "no Application of the fleet deploys to \(member.server)", problems,
                "The ApplicationSets in apps/fleet-*.yaml of the fleet's repository generate them: "
                    + (problems.isEmpty ? "check the cluster Secret's labels." : "fix what the details say."))
        }
        var details: [String] = []
        var failing: [String] = []
        var files: [String] = []
        for app in mine {
            let path = app.path.isEmpty ? "" : " path \(app.path)"
            var line = "\(app.name): \(app.syncStatus)/\(app.healthStatus) (\(app.repoURL)\(path))"
            if !app.healthy {
                let texts = app.conditions.map { "\($0.type): \($0.message)" } + (app.message.map { [$0] } ?? [])
                failing.append("\(app.name) \(app.syncStatus)/\(app.healthStatus)")
                if !texts.isEmpty { line += " - " + texts.joined(separator: " | ") }
                for file in HealthChecks.manifestFiles(in: texts.joined(separator: " ")) where !files.contains(file) {
                    files.append(file)
                }
            }
            details.append(line)
        }
        return result(
            failing.isEmpty,
            failing.isEmpty
                ? "\(mine.count) Applications Synced and Healthy"
                : "\(failing.count) of \(mine.count) Applications not Synced and Healthy: "
                    + failing.joined(separator: ", "),
            details,
            files.isEmpty
                ? "Open the Applications in the fleet's Argo CD and fix what their conditions report."
                : "Fix \(files.joined(separator: ", ")) in the fleet's GitOps repository, commit and push.")
    }

    /// The members of a simulated fleet: the clusters registered with `shoal.dev/fleet-role: member`, each checked
    /// on the model of what the fleet's Argo CD deployed there.
    public static func members(of cluster: SimulatedCluster, fleet: String) -> [Member] {
        cluster.registeredClusters().filter {
            $0.labels["shoal.dev/fleet"] == fleet && $0.labels["shoal.dev/fleet-role"] == "member"
        }.map { registered in
            let model = cluster.fleetMembers?[registered.server]
            return Member(
                name: registered.name, server: registered.server, client: model.map { $0.client() },
                nodes: model?.nodes.count ?? 1)
        }
    }

    /// Why ApplicationSets of a simulated cluster generated nothing.
    public static func problems(of cluster: SimulatedCluster) -> [String] {
        (cluster.applicationSetErrors ?? [:]).sorted { $0.key < $1.key }.map(\.value)
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
