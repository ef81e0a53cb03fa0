import AgentRuntime
import Cluster
import Foundation
import GitOps
import Logging
import Protocol
import ShoalSupport

/// Renders the monitoring stack, commits it to the workflow's GitOps repository, hands that repository to a git
/// server the cluster reaches, applies the root Application (App of Apps) and waits, bounded, until every
/// Application is Synced and Healthy — or applies the manifests directly (`kubectl apply --server-side`) when Argo
/// CD is off.
///
/// Where the repository goes (`GitOpsSource`): by default to the git server shoal installs inside the cluster
/// (pushed over smart HTTP through its NodePort; in demo mode into the simulated cluster's model of it); with
/// `--gitops-remote` to the operator's remote; with `--gitops-advertise` on the agent, served by this agent itself
/// (while it runs) at that address.
final class MonitoringHandler: StepHandler {
    let options: AgentOptions
    private let server: LazyGitServer
    private let listenHost: String
    private let listenPort: Int
    /// `--gitops-advertise`, checked: how the cluster reaches this host when it serves the repository.
    private let advertised: String?

    init(options: AgentOptions, logger: Logger) throws {
        self.options = options
        let root = "\(options.workDirectory)/gitops"
        try SecureFile.createDirectory(root)
        let (host, port) = try MonitoringHandler.parseListen(options.gitopsListen)
        listenHost = host
        listenPort = port
        advertised = try options.gitopsAdvertise.map { try NetworkAddress.validatedAdvertise($0) }
        if let base = options.gitopsPushURL { try Self.checkPushBase(base) }
        server = LazyGitServer(root: root, host: host, port: port, logger: logger)
    }

    static func parseListen(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { throw ShoalError(.invalidInput, "--gitops-listen must be host:port, got '\(text.prefix(80))'") }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    static func checkPushBase(_ base: String) throws {
        guard base.hasPrefix("http://") || base.hasPrefix("https://"), !base.contains("@"),
            base.unicodeScalars.allSatisfy({ $0.value > 32 && $0.value < 127 })
        else {
            throw ShoalError(
                .invalidInput,
                "--gitops-push-url must be an http:// or https:// URL without credentials, got '\(base.prefix(80))'")
        }
    }

    static func isWildcard(_ host: String) -> Bool { host == "0.0.0.0" || host == "::" || host.isEmpty }

    /// Where the repository goes and what the Applications point at.
    enum GitOpsSource: Equatable {
        /// The git server inside the cluster (the default).
        case inCluster
        /// The operator's own remote (`--gitops-remote`).
        case remote(String)
        /// This agent serves it at `--gitops-advertise`.
        case host(advertised: String)
    }

    func source(for request: WorkflowRequest) -> GitOpsSource {
        if let remote = request.gitopsRemote { return .remote(remote) }
        if let advertised { return .host(advertised: advertised) }
        return .inCluster
    }

    /// The name pods of a K3s-in-docker cluster use for the docker host (mapped in each container and, by this step,
    /// in CoreDNS).
    static let dockerHostName = "host.k3d.internal"

    func run(_ context: StepContext) async throws -> StepOutput {
        let request = context.request
        let workflow = context.workflow
        let source = source(for: request)
        let repository = GitRepository(path: "\(options.workDirectory)/gitops/\(workflow)")
        // Demo mode: the model's Argo CD syncs the commit below from its in-cluster git server once it is pushed.
        // Its repo-server's kustomize builds are keyed by the files they read: the build of `argocd/`, which reads
        // only its own files, starts now, beside everything this step does before the sync.
        let syncsFromModel = !request.realDeployment && source == .inCluster && request.argocd
        let freshRepository = !repository.exists
        if syncsFromModel && freshRepository && request.argocdManifest == nil,
            let files = try? ArgoCDSelfManagement.files(
                version: request.argocdVersion.isEmpty ? ArgoCDInstall.defaultVersion : request.argocdVersion)
        {
            SimulatedRepoServer.prebuild(
                files: files.map { ($0.path, $0.contents) }, paths: [ArgoCDSelfManagement.directory])
        }
        var spec = MonitoringStackSpec(instance: workflow, headlamp: request.headlamp)
        spec.coordinatorMetrics = request.coordinatorMetrics
        let manifests = MonitoringStack.render(spec)
        var servedURL: String?
        var externallyServed = false
        var log: [String] = []
        let repoURL: String
        switch source {
        case .inCluster:
            repoURL = InClusterGitServer.repoURL(workflow: workflow)
        case .remote(let remote):
            repoURL = remote
        case .host(let advertised):
            if request.realDeployment && NetworkAddress.isLoopback(advertised) {
                throw ShoalError(
                    .invalidInput,
                    "--gitops-advertise \(advertised) names this host only, which the cluster cannot reach: give an "
                        + "address of this host that the cluster reaches, or leave it out to use the in-cluster git "
                        + "server")
            }
            let port: Int
            do {
                port = try await server.start()
            } catch let error as ShoalError where error.code == .io && listenPort != 0 {
                // The fixed port is taken: `shoal gitops serve` on this work directory may be the long-running
                // server. The commit below is then checked to be served there (`git ls-remote`).
                externallyServed = true
                port = listenPort
                log.append("port \(listenPort) in use: expecting `shoal gitops serve` to serve \(options.workDirectory)")
            }
            repoURL = "http://\(advertised):\(port)/\(workflow)"
            let local = Self.isWildcard(listenHost) ? "127.0.0.1" : listenHost
            servedURL = "http://\(local.contains(":") ? "[\(local)]" : local):\(port)/\(workflow)"
        }
        let layout = try Self.layout(request: request, repoURL: repoURL, manifests: manifests, spec: spec, log: &log)
        let (root, children) = (layout.root, layout.children)

        // The other builds (an overlay that reaches its base, say) read the whole tree: in a new repository that is
        // the layout, so they start now, beside the commit and the push (a tree that turns out otherwise is built
        // on its own when synced).
        let syncedPaths = syncsFromModel ? Self.sourcePaths(layout, repoURL: repoURL) : []
        if syncsFromModel && freshRepository {
            SimulatedRepoServer.prebuild(files: layout.files.map { ($0.path, $0.contents) }, paths: syncedPaths)
        }
        try await repository.initialize()
        try repository.write(layout.files)
        try context.checkLease()
        let commit = try await repository.commitAll(message: "Monitoring stack for \(workflow)")
        log.append("commit \(commit.sha)" + (commit.created ? "" : " (unchanged)"))
        // The commit's own tree: its builds join those started above when the trees are the same.
        var tree: [(path: String, contents: String)]?
        if syncsFromModel {
            tree = try? await repository.files(at: commit.sha)
            if let tree { SimulatedRepoServer.prebuild(files: tree, paths: syncedPaths) }
        }
        if externallyServed, let servedURL {
            do {
                let served = try await GitCLISource().revision(repoURL: servedURL, revision: "HEAD")
                guard served == commit.sha else {
                    throw ShoalError(.invalidInput, "\(servedURL) serves \(served ?? "nothing"), not \(commit.sha)")
                }
            } catch let error as ShoalError {
                throw ShoalError(
                    .io,
                    "cannot serve the GitOps repository on port \(listenPort): the port is in use and does not serve "
                        + "\(options.workDirectory)/gitops (run `shoal gitops serve -d \(options.workDirectory) "
                        + "--listen \(options.gitopsListen)` or choose a free --gitops-listen port)",
                    cause: error.description)
            }
        }
        if case .remote(let remote) = source {
            try await repository.push(to: remote)
            log.append("pushed to \(Self.redacted(remote))")
        }

        let gitSource: any GitSource =
            servedURL.map { RewritingGitSource(rewrites: [repoURL: $0], fallBackToOriginal: false) } ?? GitCLISource()
        let password = Secrets.password()
        let examplesPassword = Secrets.password()
        let timeout = request.realDeployment ? context.waitTimeout(options) : .zero
        let outcome = try await ClusterSession.with(context, options: options, gitSource: gitSource) { session in
            let client = session.client
            var pushPassword: String?
            var pushURL: String?
            if source == .inCluster && request.argocd {
                let pushed = try await Self.pushToInClusterServer(
                    repository, head: commit.sha, tree: tree, session: session, context: context, options: options,
                    timeout: context.waitTimeout(options))
                pushPassword = pushed.password
                pushURL = pushed.url
                log.append(contentsOf: pushed.log)
            }
            // The admin Secret goes to the cluster only, never into the repository; its namespace must exist
            // first (Argo CD would create it only at sync).
            _ = try await client.createNamespace(spec.namespace)
            try await client.apply(
                manifests: MonitoringStack.grafanaAdminSecret(spec, password: password), serverSide: true)
            if request.examples {
                try await Self.applyExampleSecrets(client, password: examplesPassword, log: &log)
            }
            var applications: [String] = []
            var summary: String
            if request.argocd {
                if case .host(let advertised) = source, advertised == Self.dockerHostName {
                    let note = try await Self.addDockerHostToCoreDNS(client, address: Self.hostGateway(context))
                    log.append(note)
                }
                try await client.apply(manifests: root.contents, serverSide: true)
                applications = layout.applicationNames
                log.append(contentsOf: await ApplicationRefresh.request(client, names: applications))
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
            return (
                applications, summary, await session.stateArtifact(workflow: workflow), pushPassword, pushURL
            )
        }

        var artifacts = [
            Artifact(
                name: ArtifactName.grafanaAdminPassword, path: "kubeconfigs/\(workflow)/grafana-admin-password",
                sensitive: true, text: password + "\n")
        ]
        if let state = outcome.2 { artifacts.append(state) }
        if request.examples {
            artifacts.append(
                Artifact(
                    name: ArtifactName.postgresPassword, path: "kubeconfigs/\(workflow)/postgres-password",
                    sensitive: true, text: examplesPassword + "\n"))
        }
        if let pushPassword = outcome.3 {
            artifacts.append(
                Artifact(
                    name: ArtifactName.gitopsPushPassword, path: "kubeconfigs/\(workflow)/gitops-push-password",
                    sensitive: true, text: pushPassword + "\n"))
        }
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
        let kind: GitOpsSourceKind
        switch source {
        case .inCluster: kind = .inCluster
        case .remote: kind = .remote
        case .host: kind = .host
        }
        var output = MonitoringOutput(
            repoURL: repoURL, commit: commit.sha, applications: outcome.0, manifests: manifests.map(\.path),
            gitopsSource: kind, pushURL: outcome.4)
        // Later steps may run on other hosts: they read the advertised repoURL itself. Only a name that resolves
        // inside the cluster alone (host.k3d.internal) gets a loopback URL to try first, on this host.
        if let servedURL, !request.realDeployment, case .host(let advertised) = source,
            advertised == Self.dockerHostName
        {
            output.servedURL = servedURL
        }
        return try StepOutput(
            summary: "\(manifests.count) manifests committed (\(sha)\(commit.created ? "" : ", unchanged")); "
                + outcome.1,
            typed: output, artifacts: artifacts, log: log)
    }

    /// The directories of `repoURL` that the layout's Applications sync from.
    static func sourcePaths(_ layout: RepositoryLayout, repoURL: String) -> [String] {
        var paths: [String] = []
        for file in layout.children + [layout.root] {
            for document in (try? ManifestParser.compose(file.contents, source: file.path)) ?? [] {
                let spec = document["spec"]
                for source in [spec?["source"]].compactMap({ $0 }) + (spec?["sources"]?.array ?? [])
                where source["repoURL"]?.string == repoURL {
                    if let path = source["path"]?.string { paths.append(path) }
                }
            }
        }
        return paths
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
        guard let address = try context.input(ProvisionOutput.self)?.hostGateway, !address.isEmpty else {
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

extension MonitoringHandler {
    /// What a push to the in-cluster git server did.
    struct InClusterPush: Sendable {
        var password: String
        /// Where it was pushed from outside the cluster (real mode), nil for the model.
        var url: String?
        var log: [String]
    }

    /// Installs the in-cluster git server (idempotent), waits for it, and pushes the repository to it: over smart
    /// HTTP through the NodePort (or `--gitops-push-url`) in real mode, into the model of the server in demo mode.
    /// The password of an existing server is kept (the server's user was created with it).
    static func pushToInClusterServer(
        _ repository: GitRepository, head: String? = nil, tree: [(path: String, contents: String)]? = nil,
        session: ClusterSession, context: StepContext, options: AgentOptions, timeout: Duration
    ) async throws -> InClusterPush {
        let client = session.client
        var log: [String] = []
        let namespace = InClusterGitServer.namespace
        log.append(
            "kubectl create namespace \(namespace)"
                + ((try await client.createNamespace(namespace)) ? "" : " (already there)"))
        var password: String
        do {
            let data = try await client.secretData(namespace: namespace, name: InClusterGitServer.secret)
            guard let existing = data["password"], !existing.isEmpty else {
                throw ShoalError(.notFound, "no password in \(namespace)/\(InClusterGitServer.secret)")
            }
            password = existing
            log.append("push password: kept from Secret \(namespace)/\(InClusterGitServer.secret)")
        } catch let error as ShoalError where error.code == .notFound {
            password = Secrets.password()
            try await client.apply(manifests: InClusterGitServer.secretManifest(password: password), serverSide: true)
            log.append("push password: new Secret \(namespace)/\(InClusterGitServer.secret)")
        }
        try await client.apply(manifests: InClusterGitServer.manifests(), serverSide: true)
        log.append("git server \(InClusterGitServer.image) applied in namespace \(namespace)")
        try await client.rolloutStatus(
            kind: "deployment", name: InClusterGitServer.deployment, namespace: namespace, timeout: timeout)
        let workflow = context.workflow
        if let simulated = session.simulated {
            let bundle = try await repository.bundle(head: head)
            // The model's Argo CD reads this commit next: its files come from this repository, not a clone of the
            // bundle (readers elsewhere clone it).
            if bundle.head == head, let tree {
                SimulatedGitServer.knownTree(commit: bundle.head, files: tree)
            } else if let files = try? await repository.files(at: bundle.head) {
                SimulatedGitServer.knownTree(commit: bundle.head, files: files)
            }
            try await simulated.receiveGitPush(
                server: SimulatedGitServer(
                    host: InClusterGitServer.host, namespace: namespace, service: InClusterGitServer.service,
                    deployment: InClusterGitServer.deployment),
                path: InClusterGitServer.repositoryPath(workflow: workflow), head: bundle.head, bundle: bundle.data)
            log.append("pushed \(bundle.head.prefix(12)) to \(InClusterGitServer.repoURL(workflow: workflow))")
            return InClusterPush(password: password, url: nil, log: log)
        }
        let url: String
        if let base = options.gitopsPushURL {
            url = InClusterGitServer.pushURL(workflow: workflow, base: base)
        } else {
            guard let node = try context.input(ProvisionOutput.self)?.nodeAddress, !node.isEmpty else {
                throw ShoalError(
                    .notFound,
                    "the provision step named no node address to push to the in-cluster git server: start the "
                        + "monitoring agent with --gitops-push-url URL (a `kubectl -n \(namespace) port-forward "
                        + "svc/\(InClusterGitServer.service) 8080:80`, say)")
            }
            url = InClusterGitServer.pushURL(workflow: workflow, nodeAddress: node)
        }
        // The server answers a little after its rollout (its first start creates the user): retry, bounded.
        var lastError: (any Error)?
        let pushed = try await BoundedWait.until(timeout: timeout, interval: .seconds(3)) { () -> Bool? in
            do {
                try await repository.push(to: url, user: InClusterGitServer.user, password: password)
                return true
            } catch {
                lastError = error
                return nil
            }
        }
        guard pushed == true else {
            throw ShoalError(
                .unreachable,
                "cannot push the GitOps repository to the in-cluster git server at \(url) within "
                    + "\(timeout.shortDescription): is NodePort \(InClusterGitServer.nodePort) reachable from this "
                    + "host? Otherwise give --gitops-push-url",
                cause: lastError.map { "\($0)" })
        }
        log.append("pushed to \(url)")
        return InClusterPush(password: password, url: url, log: log)
    }
}

/// The agent's own git HTTP server (`--gitops-advertise`), started by the first step that needs it and serving
/// while the agent runs.
actor LazyGitServer {
    private let root: String
    private let host: String
    private let port: Int
    private let logger: Logger
    private var server: GitHTTPServer?

    init(root: String, host: String, port: Int, logger: Logger) {
        self.root = root
        self.host = host
        self.port = port
        self.logger = logger
    }

    /// - Returns: the bound port.
    /// - Throws: `ShoalError(.executableNotFound)` without git, `.io` when the address cannot be bound.
    func start() async throws -> Int {
        if let server, let port = server.port { return port }
        let created = try GitHTTPServer(root: root, host: host, port: port, logger: logger)
        let bound = try await created.start()
        server = created
        logger.info("serving GitOps repositories", metadata: ["port": "\(bound)", "root": "\(root)"])
        return bound
    }
}
