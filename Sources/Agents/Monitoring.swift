import AgentRuntime
import Cluster
import Foundation
import GitOps
import Logging
import Protocol
import ShoalSupport
import Terraform

/// Renders the monitoring stack, commits it to the workflow's GitOps repository, makes that repository reachable
/// by Argo CD (served over git smart HTTP, or pushed to `--gitops-remote`), applies the root Application (App of
/// Apps) and waits, bounded, until every Application is Synced and Healthy — or applies the manifests directly
/// (`kubectl apply --server-side`) when Argo CD is off.
final class MonitoringHandler: StepHandler {
    let options: AgentOptions
    private let server: GitHTTPServer?
    /// Why there is no server (git missing, say): reported by the steps that need it.
    private let serverProblem: String?
    private let listenHost: String
    private let boundPort: Int?

    init(options: AgentOptions, logger: Logger) throws {
        self.options = options
        let root = "\(options.workDirectory)/gitops"
        try SecureFile.createDirectory(root)
        let (host, port) = try MonitoringHandler.parseListen(options.gitopsListen)
        listenHost = host
        // Without git the agent still starts, so that the preflight step can say what is missing.
        do {
            let server = try GitHTTPServer(root: root, host: host, port: port)
            boundPort = try server.start()
            self.server = server
            serverProblem = nil
            logger.info("serving GitOps repositories", metadata: ["port": "\(boundPort ?? 0)", "root": "\(root)"])
        } catch let error as ShoalError where error.code == .executableNotFound {
            server = nil
            boundPort = nil
            serverProblem = error.message
            logger.warning("not serving GitOps repositories", metadata: ["reason": "\(error.message)"])
        }
    }

    deinit { server?.stop() }

    static func parseListen(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { throw ShoalError(.invalidInput, "--gitops-listen must be host:port, got '\(text.prefix(80))'") }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    static func isWildcard(_ host: String) -> Bool { host == "0.0.0.0" || host == "::" || host.isEmpty }

    /// Where the Applications point and where this agent reads the repository itself.
    struct Location {
        /// The Applications' repoURL: an address the cluster reaches.
        var repoURL: String
        /// Where the repository is served, as this host reaches it (nil when pushed to a remote).
        var servedURL: String?
    }

    /// The repoURL's host: `--gitops-advertise`; else `host.k3d.internal` for K3s in containers; else the listen
    /// address when it is a specific one; else the address this host uses toward the first SSH host, or its first
    /// non-loopback address.
    func advertisedHost(for request: WorkflowRequest) -> String {
        if let advertised = options.gitopsAdvertise, !advertised.isEmpty { return advertised }
        if request.target == .docker { return Self.dockerHostName }
        if !Self.isWildcard(listenHost) && !Self.isLoopback(listenHost) { return listenHost }
        if request.target == .ssh, let first = request.hosts.first, let parsed = try? SSHHost.parse(first).host,
            let source = RouteAddress.source(toward: parsed)
        {
            return source
        }
        return GitHTTPServer.hostAddresses().first ?? "127.0.0.1"
    }

    /// The name pods of a K3s-in-docker cluster use for the docker host (mapped in each container and, by this step,
    /// in CoreDNS).
    static let dockerHostName = "host.k3d.internal"

    func location(for context: StepContext) throws -> Location {
        let request = context.request
        if let remote = request.gitopsRemote { return Location(repoURL: remote, servedURL: nil) }
        guard let port = boundPort else {
            throw ShoalError(
                .executableNotFound,
                "the GitOps repository cannot be served on this host: \(serverProblem ?? "no server")")
        }
        if request.realDeployment && Self.isLoopback(listenHost) && (options.gitopsAdvertise ?? "").isEmpty {
            throw ShoalError(
                .invalidInput,
                "the GitOps repository is served on \(listenHost) only, which the cluster cannot reach: start the "
                    + "monitoring agent with --gitops-listen 0.0.0.0:PORT (or an address the cluster reaches), or "
                    + "use --gitops-remote URL")
        }
        var advertised = advertisedHost(for: request)
        if advertised.contains(":") && !advertised.hasPrefix("[") { advertised = "[\(advertised)]" }
        let local = Self.isWildcard(listenHost) ? "127.0.0.1" : listenHost
        let served = local.contains(":") ? "[\(local)]" : local
        return Location(
            repoURL: "http://\(advertised):\(port)/\(context.workflow)",
            servedURL: "http://\(served):\(port)/\(context.workflow)")
    }

    func run(_ context: StepContext) async throws -> StepOutput {
        let request = context.request
        let workflow = context.workflow
        let spec = MonitoringStackSpec(instance: workflow, headlamp: request.headlamp)
        let manifests = MonitoringStack.render(spec)
        let location = try location(for: context)
        let (root, children) = ArgoApplications.appOfApps(
            repoURL: location.repoURL, components: [(name: "monitoring", path: "monitoring", namespace: spec.namespace)]
        )

        let repository = GitRepository(path: "\(options.workDirectory)/gitops/\(workflow)")
        try await repository.initialize()
        try repository.write(manifests + children + [root])
        try context.checkLease()
        let commit = try await repository.commitAll(message: "Monitoring stack for \(workflow)")
        var log: [String] = ["commit \(commit.sha)" + (commit.created ? "" : " (unchanged)")]
        if let remote = request.gitopsRemote {
            try await repository.push(to: remote)
            log.append("pushed to \(Self.redacted(remote))")
        }

        let gitSource: any GitSource =
            location.servedURL.map { RewritingGitSource(rewrites: [location.repoURL: $0]) } ?? GitCLISource()
        let password = Secrets.password()
        let timeout = request.realDeployment ? context.waitTimeout(options) : .zero
        let outcome = try await ClusterSession.with(context, options: options, gitSource: gitSource) { session in
            let client = session.client
            // The admin Secret goes to the cluster only, never into the repository; its namespace must exist
            // first (Argo CD would create it only at sync).
            _ = try await client.createNamespace(spec.namespace)
            try await client.apply(
                manifests: MonitoringStack.grafanaAdminSecret(spec, password: password), serverSide: true)
            var applications: [String] = []
            var summary: String
            if request.argocd {
                if location.servedURL != nil && location.repoURL.contains("://\(Self.dockerHostName):") {
                    let note = try await Self.addDockerHostToCoreDNS(client, address: Self.hostGateway(context))
                    log.append(note)
                }
                try await client.apply(manifests: root.contents, serverSide: true)
                applications =
                    ["root"]
                    + children.map { ($0.path as NSString).lastPathComponent }
                    .map { String($0.dropLast(".yaml".count)) }
                let wait = try await Self.waitForApplications(
                    client, names: applications, timeout: timeout, interval: min(.seconds(2), timeout / 5))
                log.append(contentsOf: wait.details)
                summary =
                    wait.healthy
                    ? "Applications Synced and Healthy: \(applications.joined(separator: ", "))"
                    : "Applications not Synced and Healthy"
                        + (request.realDeployment ? " within \(timeout.shortDescription)" : "")
                        + ": \(wait.problems.joined(separator: "; ")) (see the validation report)"
            } else {
                for file in manifests {
                    do {
                        try await client.apply(manifests: file.contents, serverSide: true)
                    } catch let error as ShoalError {
                        throw ShoalError(
                            error.code, "applying \(file.path) failed: \(error.message)", cause: error.cause)
                    }
                    log.append("kubectl apply --server-side --force-conflicts -f \(file.path)")
                }
                summary = "applied with kubectl apply --server-side (Argo CD off)"
            }
            return (applications, summary, await session.stateArtifact(workflow: workflow))
        }

        var artifacts = [
            Artifact(
                name: "grafana-admin-password", path: "kubeconfigs/\(workflow)/grafana-admin-password", sensitive: true,
                text: password + "\n")
        ]
        if let state = outcome.2 { artifacts.append(state) }
        for file in manifests {
            let name = (file.path as NSString).lastPathComponent
            artifacts.append(
                Artifact(
                    name: "manifests/\(name)", path: "manifests/\(workflow)/monitoring/\(name)", text: file.contents))
        }
        for file in children {
            let name = (file.path as NSString).lastPathComponent.replacingOccurrences(of: ".yaml", with: "")
            artifacts.append(
                Artifact(
                    name: "argocd-apps/\(name)", path: "argocd-apps/\(workflow)/\(name)-app.yaml", text: file.contents))
        }
        artifacts.append(
            Artifact(name: "argocd-apps/root", path: "argocd-apps/\(workflow)/root-app.yaml", text: root.contents))
        let sha = String(commit.sha.prefix(12))
        var values: [String: JSONValue] = [
            "repoURL": .string(location.repoURL), "commit": .string(commit.sha),
            "applications": .array(outcome.0.map { .string($0) }),
            "manifests": .array(manifests.map { .string($0.path) }),
        ]
        if let served = location.servedURL { values["servedURL"] = .string(served) }
        return StepOutput(
            summary: "\(manifests.count) manifests committed (\(sha)\(commit.created ? "" : ", unchanged")); "
                + outcome.1,
            values: values, artifacts: artifacts, log: log)
    }

    /// The result of waiting for the Applications.
    struct ApplicationsWait: Sendable {
        var healthy: Bool
        var problems: [String]
        var details: [String]
    }

    /// Waits until every Application in `names` exists and is Synced and Healthy (the root alone proves nothing:
    /// Argo CD does not fold its children's health into it).
    static func waitForApplications(
        _ client: any ClusterClient, names: [String], timeout: Duration, interval: Duration
    ) async throws -> ApplicationsWait {
        var last = ApplicationsWait(healthy: false, problems: [], details: [])
        let done = try await BoundedWait.until(timeout: timeout, interval: max(interval, .milliseconds(100))) {
            () -> Bool? in
            let apps = try await client.applications(namespace: ArgoCDInstall.namespace)
            var problems: [String] = []
            for name in names {
                guard let app = apps.first(where: { $0.name == name }) else {
                    problems.append("\(name) not created yet")
                    continue
                }
                if !app.healthy { problems.append("\(name) \(app.syncStatus)/\(app.healthStatus)") }
            }
            last = ApplicationsWait(
                healthy: problems.isEmpty, problems: problems,
                details: apps.map { "application \($0.name): \($0.syncStatus)/\($0.healthStatus)" })
            return problems.isEmpty ? true : nil
        }
        last.healthy = done == true
        return last
    }

    /// The address of the docker host as the K3s containers see it (the provision step's `hostGateway`).
    static func hostGateway(_ context: StepContext) throws -> String {
        guard let address = context.value("hostGateway", from: "provision")?.stringValue, !address.isEmpty else {
            throw ShoalError(
                .notFound,
                "the provision step did not find the docker host's address for \(dockerHostName); pass "
                    + "--gitops-advertise ADDRESS to the monitoring agent, or use --gitops-remote")
        }
        return address
    }

    /// Maps `host.k3d.internal` in CoreDNS's `NodeHosts` (K3s keeps entries it did not write there), so that the
    /// Argo CD repo-server, a pod, resolves it as the containers do.
    /// - Returns: a line for the step's log.
    static func addDockerHostToCoreDNS(_ client: any ClusterClient, address: String) async throws -> String {
        let data = try await client.configMapData(namespace: "kube-system", name: "coredns")
        let current = data["NodeHosts"] ?? ""
        let lines = current.split(separator: "\n").map(String.init)
        let entry = "\(address) \(dockerHostName)"
        if lines.contains(where: { $0.split(separator: " ").map(String.init) == [address, dockerHostName] }) {
            return "CoreDNS NodeHosts already maps \(dockerHostName)"
        }
        let updated =
            (lines.filter { !$0.split(separator: " ").contains(Substring(dockerHostName)) } + [entry])
            .joined(separator: "\n") + "\n"
        let patch = try JSONValue.object(["data": .object(["NodeHosts": .string(updated)])]).jsonText()
        try await client.patch(kind: "configmap", name: "coredns", namespace: "kube-system", type: .merge, patch: patch)
        return "CoreDNS NodeHosts: \(entry)"
    }

    /// A URL without user information, so a token in it never reaches a log.
    static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@") else {
            return url
        }
        return String(url[..<scheme.upperBound]) + "***@" + String(url[url.index(after: at)...])
    }
}

extension JSONValue {
    /// Compact JSON text.
    func jsonText() throws -> String {
        String(decoding: try JSONEncoder().encode(self), as: UTF8.self)
    }
}

/// The local address the kernel would use to reach a host: connecting a UDP socket sends nothing, but chooses the
/// route and so the source address.
enum RouteAddress {
    static func source(toward host: String) -> String? {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, "6443", &hints, &result) == 0, let info = result else { return nil }
        defer { freeaddrinfo(result) }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else { return nil }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        guard inet_ntop(AF_INET, &local.sin_addr, &buffer, socklen_t(buffer.count)) != nil else { return nil }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.hasPrefix("127.") ? nil : text
    }
}
