import AgentRuntime
import Cluster
import Foundation
import GitOps
import Logging
import Protocol
import ShoalSupport

/// Renders the monitoring stack, commits it to the workflow's GitOps
/// repository, serves that repository over git smart HTTP, and registers the
/// Argo CD Applications (App of Apps) — or applies the manifests directly
/// when Argo CD is off.
final class MonitoringHandler: StepHandler {
    let options: AgentOptions
    private let server: GitHTTPServer?
    private let repositoryBase: String

    init(options: AgentOptions, logger: Logger) throws {
        self.options = options
        let root = "\(options.workDirectory)/gitops"
        try SecureFile.createDirectory(root)
        let (host, port) = try MonitoringHandler.parseListen(options.gitopsListen)
        let server = try GitHTTPServer(root: root, host: host, port: port)
        let bound = try server.start()
        self.server = server
        let advertised = options.gitopsAdvertise ?? host
        repositoryBase = "http://\(advertised):\(bound)"
        logger.info("serving GitOps repositories", metadata: ["url": "\(repositoryBase)", "root": "\(root)"])
    }

    deinit { server?.stop() }

    static func parseListen(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port)
        else { throw ShoalError(.invalidInput, "--gitops-listen must be host:port, got '\(text.prefix(80))'") }
        return (String(text[..<colon]), port)
    }

    func run(_ context: StepContext) async throws -> StepOutput {
        let request = context.request
        let workflow = context.workflow
        var cluster = try SimulatedCluster.load(from: context)
        let spec = MonitoringStackSpec(instance: workflow, headlamp: request.headlamp)
        let manifests = MonitoringStack.render(spec)
        let repoURL = "\(repositoryBase)/\(workflow)"
        let (root, children) = ArgoApplications.appOfApps(
            repoURL: repoURL, components: [(name: "monitoring", path: "monitoring", namespace: spec.namespace)])

        let repository = GitRepository(path: "\(options.workDirectory)/gitops/\(workflow)")
        try await repository.initialize()
        try repository.write(manifests + children + [root])
        let commit = try await repository.commitAll(message: "Monitoring stack for \(workflow)")

        let password = Secrets.password()
        // The admin Secret goes to the cluster only, never into the repository;
        // its namespace must exist first (Argo CD would create it only at sync).
        if let namespace = manifests.first(where: { $0.path.hasSuffix("00-namespace.yaml") }) {
            _ = try cluster.apply(yaml: namespace.contents, source: namespace.path)
        }
        _ = try cluster.apply(yaml: MonitoringStack.grafanaAdminSecret(spec, password: password), source: "grafana-admin (cluster only)")
        var applications: [String] = []
        if request.argocd {
            cluster.registerApplication(name: "root", repoURL: repoURL, path: "apps", namespace: "argocd", destinationNamespace: "argocd")
            cluster.registerApplication(
                name: "monitoring", repoURL: repoURL, path: "monitoring", namespace: "argocd", destinationNamespace: spec.namespace)
            applications = ["root", "monitoring"]
        } else {
            for file in manifests { _ = try cluster.apply(yaml: file.contents, source: file.path) }
        }

        var artifacts = [
            cluster.artifact(workflow: workflow),
            Artifact(name: "grafana-admin-password", path: "kubeconfigs/\(workflow)/grafana-admin-password", sensitive: true, text: password + "\n"),
        ]
        for file in manifests {
            let name = (file.path as NSString).lastPathComponent
            artifacts.append(Artifact(name: "manifests/\(name)", path: "manifests/\(workflow)/monitoring/\(name)", text: file.contents))
        }
        for file in children {
            let name = (file.path as NSString).lastPathComponent.replacingOccurrences(of: ".yaml", with: "")
            artifacts.append(Artifact(name: "argocd-apps/\(name)", path: "argocd-apps/\(workflow)/\(name)-app.yaml", text: file.contents))
        }
        artifacts.append(Artifact(name: "argocd-apps/root", path: "argocd-apps/\(workflow)/root-app.yaml", text: root.contents))
        let sha = String(commit.sha.prefix(12))
        return StepOutput(
            summary: "\(manifests.count) manifests committed (\(sha)\(commit.created ? "" : ", unchanged")), "
                + (request.argocd ? "Applications registered: \(applications.joined(separator: ", "))" : "applied directly (Argo CD off)"),
            values: [
                "repoURL": .string(repoURL), "commit": .string(commit.sha),
                "applications": .array(applications.map { .string($0) }),
                "manifests": .array(manifests.map { .string($0.path) }),
            ],
            artifacts: artifacts)
    }
}
