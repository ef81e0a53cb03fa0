import Foundation
import ShoalSupport

/// The real-mode `ClusterClient`: runs `kubectl --kubeconfig PATH ... -o json` with a timeout and decodes its
/// output. kubectl's errors become `ShoalError`s: `.unreachable` (connection refused, no route, DNS, TLS
/// handshake, timeouts talking to the server), `.forbidden`, `.notFound`, `.timeout` (kubectl itself outlived its
/// timeout) and `.commandFailed` for anything else, with stderr's tail as the cause.
public struct KubectlClient: ClusterClient {
    /// The kubeconfig file (written 0600 by the provision step).
    public var kubeconfig: String
    /// `kubectl` on PATH, or a path.
    public var executable: String
    /// Per call; also passed to kubectl as `--request-timeout`.
    public var timeout: Duration
    public var runner: ProcessRunner

    /// - Parameters:
    ///   - kubeconfig: path of the kubeconfig to use.
    ///   - executable: the kubectl program.
    ///   - timeout: how long one call may take.
    ///   - runner: runs kubectl.
    public init(
        kubeconfig: String, executable: String = "kubectl", timeout: Duration = .seconds(30),
        runner: ProcessRunner = ProcessRunner()
    ) {
        self.kubeconfig = kubeconfig
        self.executable = executable
        self.timeout = timeout
        self.runner = runner
    }

    // MARK: Running kubectl

    /// Runs kubectl; the standard output on success.
    /// - Throws: `ShoalError` as described on the type.
    /// - Parameter limit: replaces the client's `timeout` for this call (a rollout wait lasts longer).
    func kubectl(_ arguments: [String], input: Data? = nil, timeout limit: Duration? = nil) async throws -> String {
        let timeout = limit ?? self.timeout
        let seconds = max(1, Int(timeout.components.seconds))
        let result = try await runner.run(
            executable, ["--kubeconfig", kubeconfig, "--request-timeout", "\(seconds)s"] + arguments, input: input,
            timeout: timeout + .seconds(5))
        if result.timedOut {
            throw ShoalError(
                .timeout, "kubectl \(Self.verb(arguments)) did not finish within \(timeout.shortDescription)")
        }
        guard result.succeeded else { throw Self.error(from: result, arguments: arguments) }
        return result.standardOutput
    }

    static func verb(_ arguments: [String]) -> String {
        arguments.prefix { !$0.hasPrefix("-") }.prefix(3).joined(separator: " ")
    }

    /// Maps kubectl's standard error to an error code.
    static func error(from result: ProcessResult, arguments: [String]) -> ShoalError {
        let stderr = result.standardError.isEmpty ? result.standardOutput : result.standardError
        // Terminals wrap long lines; the recorded messages show it.
        let flat = stderr.replacingOccurrences(of: "\n", with: "")
        let tail = result.standardErrorTail(lines: 4)
        let what = "kubectl \(verb(arguments))"
        let unreachableMarkers = [
            "was refused", "connection refused", "Unable to connect to the server", "no route to host",
            "i/o timeout", "no such host", "TLS handshake timeout", "context deadline exceeded",
            "net/http: request canceled", "connect: network is unreachable",
        ]
        if flat.contains("(Forbidden)") || flat.contains(" is forbidden: ") {
            return ShoalError(
                .forbidden, "\(what): forbidden by the cluster's RBAC for this kubeconfig's user", cause: tail)
        }
        if flat.contains("(NotFound)") || flat.range(of: #"\" not found"#) != nil
            || flat.contains("the server doesn't have a resource type")
        {
            return ShoalError(.notFound, "\(what): not found", cause: tail)
        }
        if unreachableMarkers.contains(where: flat.contains) {
            return ShoalError(.unreachable, "\(what): the Kubernetes API server is unreachable", cause: tail)
        }
        if flat.contains("(Unauthorized)") || flat.contains("must be logged in") {
            return ShoalError(.forbidden, "\(what): the kubeconfig's credentials were refused", cause: tail)
        }
        return ShoalError(.commandFailed, "\(what) failed with exit status \(result.status)", cause: tail)
    }

    private func getJSON(_ arguments: [String]) async throws -> ManifestValue {
        let output = try await kubectl(["get"] + arguments + ["-o", "json"])
        do {
            guard let value = try ManifestParser.compose(output, source: "kubectl output").first else {
                throw ShoalError(.protocolViolation, "kubectl printed nothing")
            }
            return value
        } catch {
            throw ShoalError(
                .protocolViolation, "kubectl get \(arguments.first ?? "") printed something that is not JSON",
                cause: "\(error)")
        }
    }

    private static func namespaceArguments(_ namespace: String?) -> [String] {
        namespace.map { ["--namespace", $0] } ?? ["--all-namespaces"]
    }

    // MARK: ClusterClient

    public func nodes() async throws -> [Node] {
        (try await getJSON(["nodes"])["items"]?.array ?? []).map(Self.node)
    }

    public func pods(namespace: String?) async throws -> [Pod] {
        (try await getJSON(["pods"] + Self.namespaceArguments(namespace))["items"]?.array ?? []).map(Self.pod)
    }

    public func services(namespace: String?) async throws -> [Service] {
        (try await getJSON(["services"] + Self.namespaceArguments(namespace))["items"]?.array ?? []).map(Self.service)
    }

    public func applications(namespace: String) async throws -> [ApplicationStatus] {
        let list = try await getJSON(["applications.argoproj.io", "--namespace", namespace])
        return (list["items"]?.array ?? []).map { Self.application($0, namespace: namespace) }
    }

    public func endpointAddresses(namespace: String, service: String) async throws -> [String] {
        let endpoints = try await getJSON(["endpoints", service, "--namespace", namespace])
        return Self.addresses(endpoints)
    }

    public func serviceProxyGet(namespace: String, service: String, port: Int, path: String) async throws
        -> (status: Int, body: String)
    {
        let trimmed = path.hasPrefix("/") ? String(path.dropFirst()) : path
        let url = "/api/v1/namespaces/\(namespace)/services/\(service):\(port)/proxy/\(trimmed)"
        do {
            return (200, try await kubectl(["get", "--raw", url]))
        } catch let error as ShoalError where error.code == .notFound || error.code == .commandFailed {
            let cause = error.cause ?? ""
            if cause.contains("services \"\(service)\" not found") { throw error }
            // kubectl reports the HTTP status of a failed raw GET only as the API's reason.
            let statuses = [
                ("(ServiceUnavailable)", 503), ("(NotFound)", 404), ("(InternalError)", 500), ("(BadRequest)", 400),
                ("(MethodNotAllowed)", 405), ("(Timeout)", 504), ("(TooManyRequests)", 429),
            ]
            if let status = statuses.first(where: { cause.contains($0.0) })?.1 { return (status, cause) }
            throw error
        }
    }

    public func secretData(namespace: String, name: String) async throws -> [String: String] {
        let secret = try await getJSON(["secret", name, "--namespace", namespace])
        var result: [String: String] = [:]
        for (key, value) in secret["data"]?.stringMap ?? [:] {
            result[key] = Data(base64Encoded: value).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
        return result
    }

    public func apply(manifests: String, serverSide: Bool) async throws {
        var arguments = ["apply", "-f", "-"]
        if serverSide { arguments += ["--server-side", "--force-conflicts"] }
        _ = try await kubectl(arguments, input: Data(manifests.utf8))
    }

    // MARK: Decoding kubectl's objects

    static func node(_ item: ManifestValue) -> Node {
        let conditions = item["status", "conditions"]?.array ?? []
        let ready = conditions.first { $0["type"]?.string == "Ready" }
        var problems: [String] = []
        if let ready, ready["status"]?.string != "True" {
            problems.append(
                "Ready=\(ready["status"]?.string ?? "?")"
                    + (ready["reason"]?.string.map { " \($0)" } ?? "")
                    + (ready["message"]?.string.map { ": \($0)" } ?? ""))
        }
        for condition in conditions where condition["type"]?.string != "Ready" && condition["status"]?.string == "True"
        {
            problems.append(condition["type"]?.string ?? "?")
        }
        let roles = (item["metadata", "labels"]?.stringMap ?? [:]).keys
            .filter { $0.hasPrefix("node-role.kubernetes.io/") }
            .map { String($0.dropFirst("node-role.kubernetes.io/".count)) }.sorted()
        return Node(
            name: item["metadata", "name"]?.string ?? "",
            ready: ready?["status"]?.string == "True",
            roles: roles,
            kubeletVersion: item["status", "nodeInfo", "kubeletVersion"]?.string ?? "",
            allocatableCPUMillicores: item["status", "allocatable", "cpu"]?.string.flatMap(Quantity.millicores) ?? 0,
            allocatableMemoryBytes: item["status", "allocatable", "memory"]?.string.flatMap(Quantity.bytes) ?? 0,
            problems: problems,
            unschedulable: item["spec", "unschedulable"]?.bool ?? false)
    }

    static func pod(_ item: ManifestValue) -> Pod {
        let labels = item["metadata", "labels"]?.stringMap ?? [:]
        let statuses = item["status", "containerStatuses"]?.array ?? []
        let conditions = item["status", "conditions"]?.array ?? []
        var cpu = 0
        var memory = 0
        for container in item["spec", "containers"]?.array ?? [] {
            cpu += container["resources", "requests", "cpu"]?.string.flatMap(Quantity.millicores) ?? 0
            memory += container["resources", "requests", "memory"]?.string.flatMap(Quantity.bytes) ?? 0
        }
        let waiting = (item["status", "initContainerStatuses"]?.array ?? []) + statuses
        let reason =
            waiting.lazy.compactMap { $0["state", "waiting", "reason"]?.string }.first
            ?? conditions.first { $0["status"]?.string == "False" && $0["reason"]?.string == "Unschedulable" }?[
                "reason"]?.string
            ?? item["status", "reason"]?.string
            ?? waiting.lazy.compactMap { $0["state", "terminated", "reason"]?.string }.first
        return Pod(
            namespace: item["metadata", "namespace"]?.string ?? "",
            name: item["metadata", "name"]?.string ?? "",
            phase: item["status", "phase"]?.string ?? "Unknown",
            ready: conditions.contains { $0["type"]?.string == "Ready" && $0["status"]?.string == "True" },
            restarts: statuses.reduce(0) { $0 + ($1["restartCount"]?.int ?? 0) },
            ownerKind: item["metadata", "ownerReferences"]?.array?.first?["kind"]?.string,
            app: labels["app.kubernetes.io/name"] ?? labels["app"] ?? labels["k8s-app"],
            labels: labels,
            requestedCPUMillicores: cpu,
            requestedMemoryBytes: memory,
            reason: reason,
            nodeName: item["spec", "nodeName"]?.string)
    }

    static func service(_ item: ManifestValue) -> Service {
        let ports = (item["spec", "ports"]?.array ?? []).compactMap { port -> ServicePort? in
            guard let number = port["port"]?.int else { return nil }
            return ServicePort(name: port["name"]?.string, port: number, nodePort: port["nodePort"]?.int)
        }
        return Service(
            namespace: item["metadata", "namespace"]?.string ?? "", name: item["metadata", "name"]?.string ?? "",
            type: item["spec", "type"]?.string ?? "ClusterIP", ports: ports,
            selector: item["spec", "selector"]?.stringMap ?? [:])
    }

    static func application(_ item: ManifestValue, namespace: String) -> ApplicationStatus {
        let source = item["spec", "source"] ?? item["spec", "sources"]?.array?.first ?? .null
        let conditions = (item["status", "conditions"]?.array ?? []).map {
            ApplicationCondition(type: $0["type"]?.string ?? "", message: $0["message"]?.string ?? "")
        }
        let phase = item["status", "operationState", "phase"]?.string
        let operationMessage =
            phase == "Failed" || phase == "Error" ? item["status", "operationState", "message"]?.string : nil
        return ApplicationStatus(
            name: item["metadata", "name"]?.string ?? "",
            namespace: item["metadata", "namespace"]?.string ?? namespace,
            syncStatus: item["status", "sync", "status"]?.string ?? "Unknown",
            healthStatus: item["status", "health", "status"]?.string ?? "Unknown",
            message: item["status", "health", "message"]?.string ?? operationMessage,
            conditions: conditions,
            repoURL: source["repoURL"]?.string ?? "",
            path: source["path"]?.string ?? "",
            targetRevision: source["targetRevision"]?.string ?? "HEAD",
            revision: item["status", "sync", "revision"]?.string,
            destinationServer: ApplicationStatus.remoteServer(item["spec", "destination", "server"]?.string))
    }

    static func addresses(_ endpoints: ManifestValue) -> [String] {
        (endpoints["subsets"]?.array ?? []).flatMap { subset in
            (subset["addresses"]?.array ?? []).compactMap { $0["ip"]?.string }
        }
    }
}
