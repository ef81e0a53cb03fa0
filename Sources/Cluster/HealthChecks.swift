import Foundation
import Protocol
import ShoalSupport

/// What the plan promised, so the checks know what to expect.
public struct HealthExpectation: Codable, Sendable, Equatable {
    /// Planned node count.
    public var nodes: Int
    public var argocd: Bool
    public var monitoring: Bool
    public var headlamp: Bool
    /// Where Prometheus, Grafana and Headlamp run.
    public var monitoringNamespace: String
    /// Where Argo CD runs.
    public var argocdNamespace: String

    public init(
        nodes: Int, argocd: Bool = true, monitoring: Bool = true, headlamp: Bool = true,
        monitoringNamespace: String = "monitoring", argocdNamespace: String = "argocd"
    ) {
        self.nodes = nodes
        self.argocd = argocd
        self.monitoring = monitoring
        self.headlamp = headlamp
        self.monitoringNamespace = monitoringNamespace
        self.argocdNamespace = argocdNamespace
    }
}

/// The health report: every check and the score.
public struct HealthReport: Codable, Sendable, Equatable {
    public var checks: [CheckResult]
    /// 0-100: the weights of passed checks over the weights of all checks, rounded down.
    public var score: Int
    /// `healthy` (every check passed), `unhealthy` (score below 50, or the nodes check failed) or `degraded`.
    public var status: String
    /// Every cluster of the fleet this cluster's Argo CD deploys to, and the fleet's score; nil without a fleet.
    public var fleet: FleetReport?

    /// Scores a set of results (see docs/validation.md).
    public static func make(_ checks: [CheckResult]) -> HealthReport {
        let total = checks.reduce(0) { $0 + max(0, $1.weight) }
        let passed = checks.filter(\.passed).reduce(0) { $0 + max(0, $1.weight) }
        let score = total == 0 ? 0 : passed * 100 / total
        let nodesFailed = checks.contains { $0.name == HealthCheckKind.nodes.rawValue && !$0.passed }
        let status =
            if !checks.isEmpty && checks.allSatisfy(\.passed) {
                "healthy"
            } else if score < 50 || nodesFailed || checks.isEmpty { "unhealthy" } else { "degraded" }
        return HealthReport(checks: checks, score: score, status: status)
    }
}

/// The validation checks. A check never throws: an error becomes a failed result that says why.
public enum HealthChecks {
    /// The checks that apply to a plan: nodes, system pods, DNS and capacity always; Argo CD and Applications
    /// with Argo CD; Prometheus and Grafana with monitoring; Headlamp with Headlamp.
    public static func applicable(_ expectation: HealthExpectation) -> [HealthCheckKind] {
        HealthCheckKind.allCases.filter { kind in
            switch kind {
            case .argocd, .applications: expectation.argocd
            case .prometheus, .grafana: expectation.monitoring
            case .headlamp: expectation.headlamp
            default: true
            }
        }
    }

    /// Runs one check.
    /// - Parameters:
    ///   - kind: the check.
    ///   - client: the cluster.
    ///   - expectation: what the plan promised.
    /// - Returns: the verdict, failed with the reason when the cluster could not be asked.
    public static func run(
        _ kind: HealthCheckKind, client: any ClusterClient, expectation: HealthExpectation
    ) async -> CheckResult {
        var result: Verdict
        do {
            switch kind {
            case .nodes: result = try await nodes(client, expectation)
            case .systemPods: result = try await systemPods(client)
            case .argocd: result = try await argocd(client, expectation)
            case .applications: result = try await applications(client, expectation)
            case .prometheus: result = try await prometheus(client, expectation)
            case .grafana: result = try await grafana(client, expectation)
            case .headlamp: result = try await headlamp(client, expectation)
            case .dns: result = try await dns(client)
            case .capacity: result = try await capacity(client)
            }
        } catch {
            result = Verdict(
                passed: false, message: "could not check: \(error)", remedy: remedy(for: error), details: [])
        }
        return CheckResult(
            name: kind.rawValue, passed: result.passed, weight: kind.weight, message: result.message,
            remedy: result.passed ? nil : result.remedy, details: result.details, explanation: kind.explanation)
    }

    /// Runs every applicable check, one task each, and scores them.
    public static func report(client: any ClusterClient, expectation: HealthExpectation) async -> HealthReport {
        let kinds = applicable(expectation)
        let results = await withTaskGroup(of: (Int, CheckResult).self) { group in
            for (index, kind) in kinds.enumerated() {
                group.addTask { (index, await run(kind, client: client, expectation: expectation)) }
            }
            var collected: [(Int, CheckResult)] = []
            for await item in group { collected.append(item) }
            return collected.sorted { $0.0 < $1.0 }.map(\.1)
        }
        return HealthReport.make(results)
    }

    struct Verdict {
        var passed: Bool
        var message: String
        var remedy: String?
        var details: [String]
    }

    private static func remedy(for error: Error) -> String {
        guard let error = error as? ShoalError else {
            return "Run the check again; if it persists, see the error above."
        }
        switch error.code {
        case .unreachable:
            return "The API server does not answer: check that K3s runs on the servers (systemctl status k3s) and that "
                + "the kubeconfig's server address is reachable from this agent."
        case .forbidden:
            return "The kubeconfig's user may not read this: use the admin kubeconfig written by the provision step."
        case .notFound:
            return
                "An object the check needs does not exist: see the message; the step that creates it may have failed."
        case .timeout:
            return "The cluster answered too slowly: check the API server's load and the network, then validate again."
        default:
            return "See the message; `shoal validate WORKFLOW` runs the checks again."
        }
    }

    // MARK: The checks

    private static func nodes(_ client: any ClusterClient, _ expectation: HealthExpectation) async throws -> Verdict {
        let nodes = try await client.nodes()
        let ready = nodes.filter(\.ready)
        let details = nodes.map { node in
            "\(node.name): \(node.ready ? "Ready" : "NotReady")"
                + " roles=\(node.roles.isEmpty ? "<none>" : node.roles.joined(separator: ","))"
                + " version=\(node.kubeletVersion)" + (node.unschedulable ? " SchedulingDisabled" : "")
                + (node.problems.isEmpty ? "" : " (\(node.problems.joined(separator: "; ")))")
        }
        let passed = ready.count == expectation.nodes && nodes.count == expectation.nodes
        let notReady = nodes.filter { !$0.ready }.map(\.name)
        return Verdict(
            passed: passed,
            message: "\(ready.count) of \(expectation.nodes) planned nodes Ready (\(nodes.count) registered)",
            remedy: notReady.isEmpty
                ? "The cluster has \(nodes.count) nodes where \(expectation.nodes) were planned: check the provision step's "
                    + "Terraform output and the k3s-agent service on the missing machines (journalctl -u k3s-agent)."
                : "Nodes not Ready: \(notReady.joined(separator: ", ")). Run `kubectl describe node NAME` and check the "
                    + "k3s (server) or k3s-agent service on that machine: `journalctl -u k3s-agent -e`.",
            details: details)
    }

    private static func podVerdict(
        pods: [Pod], required: [(label: String, prefix: String)], area: String, remedyPrefix: String
    ) -> Verdict {
        var details: [String] = []
        var failures: [String] = []
        for component in required {
            let matching = pods.filter { $0.name.hasPrefix(component.prefix) && !$0.completed }
            if matching.isEmpty {
                failures.append("\(component.label): no pod")
                details.append("\(component.label): no pod found")
            } else if !matching.contains(where: \.healthy) {
                let reasons = matching.map { "\($0.name) \($0.phase)\($0.reason.map { " (\($0))" } ?? "")" }
                failures.append("\(component.label): not ready")
                details.append("\(component.label): " + reasons.joined(separator: ", "))
            } else {
                details.append("\(component.label): \(matching.filter(\.healthy).count)/\(matching.count) ready")
            }
        }
        let requiredPrefixes = required.map(\.prefix)
        for pod in pods
        where !pod.completed && !pod.healthy && !requiredPrefixes.contains(where: { pod.name.hasPrefix($0) }) {
            failures.append("\(pod.name): \(pod.phase)\(pod.reason.map { " (\($0))" } ?? "")")
            details.append(
                "\(pod.name): \(pod.phase), ready=\(pod.ready), restarts=\(pod.restarts)"
                    + (pod.reason.map { ", \($0)" } ?? ""))
        }
        let total = pods.filter { !$0.completed }.count
        let healthy = pods.filter(\.healthy).count
        return Verdict(
            passed: failures.isEmpty,
            message: failures.isEmpty
                ? "\(area): \(healthy)/\(total) pods running and ready"
                : "\(area): " + failures.joined(separator: "; "),
            remedy:
                "\(remedyPrefix) `kubectl -n NAMESPACE describe pod NAME` and `kubectl -n NAMESPACE logs NAME` show why; "
                + "CrashLoopBackOff means the container exits, Pending/Unschedulable means no node has room, "
                + "CreateContainerConfigError means a ConfigMap or Secret it reads is missing.",
            details: details)
    }

    private static func systemPods(_ client: any ClusterClient) async throws -> Verdict {
        let pods = try await client.pods(namespace: "kube-system")
        return podVerdict(
            pods: pods,
            required: [
                ("CoreDNS", "coredns-"), ("metrics-server", "metrics-server-"),
                ("local-path-provisioner", "local-path-provisioner-"), ("Traefik", "traefik-"),
            ],
            area: "kube-system",
            remedyPrefix: "K3s deploys these add-ons itself; a missing one means the k3s server did not finish "
                + "starting or was started with --disable (check `journalctl -u k3s`).")
    }

    private static func argocd(_ client: any ClusterClient, _ expectation: HealthExpectation) async throws -> Verdict {
        let namespace = expectation.argocdNamespace
        let pods = try await client.pods(namespace: namespace)
        var required: [(label: String, prefix: String)] = [
            ("application-controller", "argocd-application-controller-"), ("repo-server", "argocd-repo-server-"),
            ("server", "argocd-server-"), ("redis", "argocd-redis-"),
        ]
        // Installs without them (core install) are fine; present ones must be ready.
        for optional in ["applicationset-controller", "dex-server", "notifications-controller"]
        where pods.contains(where: { $0.name.hasPrefix("argocd-\(optional)-") }) {
            required.append((optional, "argocd-\(optional)-"))
        }
        return podVerdict(
            pods: pods, required: required, area: namespace,
            remedyPrefix: "Argo CD in namespace \(namespace) is not complete: re-run the gitops-engine step, or "
                + "`kubectl -n \(namespace) rollout status deploy,sts` to see which component is stuck;")
    }

    private static func applications(_ client: any ClusterClient, _ expectation: HealthExpectation) async throws
        -> Verdict
    {
        let apps = try await client.applications(namespace: expectation.argocdNamespace)
        if apps.isEmpty {
            return Verdict(
                passed: !expectation.monitoring,
                message: "no Argo CD Applications in namespace \(expectation.argocdNamespace)",
                remedy: "The monitoring step applies the Applications: re-run it, or apply "
                    + "output/argocd-apps/WORKFLOW/*.yaml with kubectl.",
                details: [])
        }
        var details: [String] = []
        var failing: [String] = []
        var files: [String] = []
        for app in apps {
            let path = app.path.isEmpty ? "" : " path \(app.path)"
            var line = "\(app.name): \(app.syncStatus)/\(app.healthStatus) (\(app.repoURL)\(path))"
            let texts = app.conditions.map { "\($0.type): \($0.message)" } + (app.message.map { [$0] } ?? [])
            if !app.healthy {
                failing.append("\(app.name) \(app.syncStatus)/\(app.healthStatus)")
                if !texts.isEmpty { line += " - " + texts.joined(separator: " | ") }
                for file in manifestFiles(in: texts.joined(separator: " ")) where !files.contains(file) {
                    files.append(file)
                }
            }
            details.append(line)
        }
        let remedy =
            files.isEmpty
            ? "Open the Application in Argo CD (or `kubectl -n \(expectation.argocdNamespace) get application NAME -o yaml`) "
                + "and fix what its conditions and resources report; then commit and let Argo CD sync."
            : "Fix \(files.joined(separator: ", ")) in the GitOps repository (see the details for the reason: a file that "
                + "does not parse, or a ServiceAccount, ConfigMap or Secret that does not exist), commit, and let Argo CD "
                + "sync again (or `argocd app sync NAME`)."
        return Verdict(
            passed: failing.isEmpty,
            message: failing.isEmpty
                ? "\(apps.count) Applications Synced and Healthy"
                : "\(failing.count) of \(apps.count) Applications not Synced and Healthy: "
                    + failing.joined(separator: ", "),
            remedy: remedy, details: details)
    }

    /// File names (`monitoring/20-grafana.yaml`) mentioned in a message.
    static func manifestFiles(in text: String) -> [String] {
        guard let regex = try? NSRegularExpression(pattern: #"[A-Za-z0-9_./-]+\.(?:ya?ml|json)"#) else { return [] }
        var found: [String] = []
        for match in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            guard let range = Range(match.range, in: text) else { continue }
            let file = String(text[range])
            if !found.contains(file) { found.append(file) }
        }
        return found
    }

    /// The Service of a monitoring component: the one named exactly, else the first whose name starts with it.
    private static func findService(
        _ client: any ClusterClient, _ namespace: String, _ component: String, preferredPort: Int
    ) async throws -> (Service, Int)? {
        let services = try await client.services(namespace: namespace)
        let service =
            services.first { $0.name == component }
            ?? services.first { $0.name.hasPrefix(component + "-") && !$0.name.hasSuffix("-headless") }
        guard let service, let first = service.ports.first else { return nil }
        let port = service.ports.first { $0.port == preferredPort }?.port ?? first.port
        return (service, port)
    }

    private static func missingService(_ component: String, _ namespace: String) -> Verdict {
        Verdict(
            passed: false, message: "no \(component) Service in namespace \(namespace)",
            remedy: "The monitoring Application did not create it: check the `applications` check and "
                + "`kubectl -n \(namespace) get deploy,svc`.",
            details: [])
    }

    private static func prometheus(_ client: any ClusterClient, _ expectation: HealthExpectation) async throws
        -> Verdict
    {
        let namespace = expectation.monitoringNamespace
        guard let (service, port) = try await findService(client, namespace, "prometheus", preferredPort: 9090) else {
            return missingService("Prometheus", namespace)
        }
        let ready = try await client.serviceProxyGet(
            namespace: namespace, service: service.name, port: port, path: "/-/ready")
        let where_ = "\(namespace)/\(service.name):\(port)"
        guard ready.status == 200 else {
            return Verdict(
                passed: false,
                message: "Prometheus \(where_) /-/ready answered \(ready.status): \(ready.body.prefix(200))",
                remedy: "Prometheus is not ready: `kubectl -n \(namespace) logs deploy/\(service.name)`; a 503 "
                    + "without endpoints means its pod is not running (see the applications check).",
                details: [])
        }
        let targets = try await client.serviceProxyGet(
            namespace: namespace, service: service.name, port: port, path: "/api/v1/targets")
        guard targets.status == 200,
            let json = try? JSONSerialization.jsonObject(with: Data(targets.body.utf8)) as? [String: Any],
            json["status"] as? String == "success",
            let data = json["data"] as? [String: Any],
            let active = data["activeTargets"] as? [[String: Any]]
        else {
            return Verdict(
                passed: false,
                message: "Prometheus \(where_) /api/v1/targets answered \(targets.status) without a target list",
                remedy: "Check Prometheus's logs and its configuration (the prometheus ConfigMap).", details: [])
        }
        var details: [String] = []
        var down: [String] = []
        for target in active {
            let labels = target["labels"] as? [String: Any] ?? [:]
            let job = labels["job"] as? String ?? target["scrapePool"] as? String ?? "?"
            let instance = labels["instance"] as? String ?? "?"
            let health = target["health"] as? String ?? "unknown"
            let error = target["lastError"] as? String ?? ""
            details.append("\(job) \(instance): \(health)\(error.isEmpty ? "" : " (\(error))")")
            if health != "up" { down.append("\(job) \(instance)") }
        }
        let passed = !active.isEmpty && down.isEmpty
        return Verdict(
            passed: passed,
            message: active.isEmpty
                ? "Prometheus is ready but has no active targets"
                : "Prometheus ready; \(active.count - down.count)/\(active.count) targets up"
                    + (down.isEmpty ? "" : "; down: " + down.joined(separator: ", ")),
            remedy: active.isEmpty
                ? "Its scrape configuration finds nothing: check the prometheus ConfigMap and its RBAC (ClusterRole)."
                : "A target that is down names its error in the details: a pod that is not running, a port that "
                    + "does not match, or a missing RBAC rule; fix it in the GitOps repository and commit.",
            details: details)
    }

    private static func grafana(_ client: any ClusterClient, _ expectation: HealthExpectation) async throws -> Verdict {
        let namespace = expectation.monitoringNamespace
        guard let (service, port) = try await findService(client, namespace, "grafana", preferredPort: 3000) else {
            return missingService("Grafana", namespace)
        }
        let answer = try await client.serviceProxyGet(
            namespace: namespace, service: service.name, port: port, path: "/api/health")
        let json = (try? JSONSerialization.jsonObject(with: Data(answer.body.utf8))) as? [String: Any]
        let database = json?["database"] as? String
        let version = json?["version"] as? String
        let passed = answer.status == 200 && database == "ok"
        return Verdict(
            passed: passed,
            message: passed
                ? "Grafana \(version.map { "\($0) " } ?? "")healthy (database ok)"
                : "Grafana /api/health answered \(answer.status)"
                    + (database.map { " (database \($0))" } ?? ": \(answer.body.prefix(200))"),
            remedy: database == "failing"
                ? "Grafana cannot reach its database: check its storage volume and `kubectl -n \(namespace) logs deploy/\(service.name)`."
                : "Grafana is not serving: `kubectl -n \(namespace) describe pod -l app.kubernetes.io/name=grafana`; "
                    + "a missing admin Secret shows as CreateContainerConfigError.",
            details: [
                "GET /api/health -> \(answer.status) \(answer.body.replacingOccurrences(of: "\n", with: " ").prefix(200))"
            ])
    }

    private static func headlamp(_ client: any ClusterClient, _ expectation: HealthExpectation) async throws -> Verdict
    {
        let namespace = expectation.monitoringNamespace
        var found = try await findService(client, namespace, "headlamp", preferredPort: 80)
        if found == nil { found = try await findService(client, "kube-system", "headlamp", preferredPort: 80) }
        guard let (service, port) = found else { return missingService("Headlamp", namespace) }
        let answer = try await client.serviceProxyGet(
            namespace: service.namespace, service: service.name, port: port, path: "/")
        let passed = (200..<400).contains(answer.status)
        return Verdict(
            passed: passed,
            message: "Headlamp \(service.namespace)/\(service.name):\(port) / answered \(answer.status)",
            remedy:
                "Headlamp is not serving: `kubectl -n \(service.namespace) describe pod -l app.kubernetes.io/name=headlamp` "
                + "and its logs; check its ServiceAccount and RBAC in the GitOps repository.",
            details: [])
    }

    private static func dns(_ client: any ClusterClient) async throws -> Verdict {
        let addresses = try await client.endpointAddresses(namespace: "kube-system", service: "kube-dns")
        return Verdict(
            passed: !addresses.isEmpty,
            message: addresses.isEmpty
                ? "kube-dns has no ready endpoints: names do not resolve inside the cluster"
                : "kube-dns has \(addresses.count) ready endpoint(s)",
            remedy: "CoreDNS is not ready: `kubectl -n kube-system logs -l k8s-app=kube-dns`; check the coredns "
                + "ConfigMap and that the node network (flannel) is up.",
            details: addresses.map { "endpoint \($0)" })
    }

    /// Requests above this share of allocatable leave no room for a rollout or a restarted pod.
    static let capacityLimitPercent = 90

    private static func capacity(_ client: any ClusterClient) async throws -> Verdict {
        let nodes = try await client.nodes()
        let pods = try await client.pods(namespace: nil)
        let live = pods.filter { $0.phase != "Succeeded" && $0.phase != "Failed" }
        let cpuAllocatable = nodes.filter(\.ready).reduce(0) { $0 + $1.allocatableCPUMillicores }
        let memoryAllocatable = nodes.filter(\.ready).reduce(0) { $0 + $1.allocatableMemoryBytes }
        let cpuRequested = live.reduce(0) { $0 + $1.requestedCPUMillicores }
        let memoryRequested = live.reduce(0) { $0 + $1.requestedMemoryBytes }
        let cpuPercent = cpuAllocatable == 0 ? 100 : cpuRequested * 100 / cpuAllocatable
        let memoryPercent = memoryAllocatable == 0 ? 100 : memoryRequested * 100 / memoryAllocatable
        let unschedulable = live.filter { $0.reason == "Unschedulable" }.map { "\($0.namespace)/\($0.name)" }
        let mib = 1_048_576
        let passed = cpuPercent < capacityLimitPercent && memoryPercent < capacityLimitPercent && unschedulable.isEmpty
        var details = [
            "cpu: \(cpuRequested)m requested of \(cpuAllocatable)m allocatable (\(cpuPercent)%)",
            "memory: \(memoryRequested / mib)Mi requested of \(memoryAllocatable / mib)Mi allocatable (\(memoryPercent)%)",
        ]
        details += unschedulable.map { "unschedulable: \($0)" }
        return Verdict(
            passed: passed,
            message: "requests use \(cpuPercent)% of CPU and \(memoryPercent)% of memory on Ready nodes"
                + (unschedulable.isEmpty ? "" : "; \(unschedulable.count) pod(s) unschedulable"),
            remedy: "Add nodes (`shoal create -n N` with more nodes) or larger machines, or lower the requests in the "
                + "GitOps repository; keep requests under \(capacityLimitPercent)% of allocatable.",
            details: details)
    }
}
