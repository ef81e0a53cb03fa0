import Foundation
import ShoalSupport
import Testing

@testable import Cluster

/// Counts reads, and answers a revision that the test moves.
final class CountingGitSource: GitSource, @unchecked Sendable {  // every field is guarded by `lock`
    private let lock = NSLock()
    private var head = "1111111111111111111111111111111111111111"
    private var reads = 0
    let files: [String: String]

    init(files: [String: String]) { self.files = files }

    var fileReads: Int { lock.withLock { reads } }
    func commit(_ sha: String) { lock.withLock { head = sha } }

    func revision(repoURL: String, revision: String) async throws -> String? { lock.withLock { head } }

    func files(repoURL: String, revision: String, path: String) async throws -> [(path: String, contents: String)] {
        lock.withLock { reads += 1 }
        return files.filter { $0.key.hasPrefix(path + "/") }.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 }
    }
}

@Suite struct GitServerModelTests {
    @Test func theSimulatedArgoCDSyncsOncePerNewCommitNotOnEveryRead() async throws {
        let source = CountingGitSource(files: Stack.files)
        let client = try Stack.cluster(repoURL: "mem://repo").client(gitSource: source)
        for _ in 0..<5 {
            _ = try await client.applications(namespace: "argocd")
            _ = try await client.pods(namespace: nil)
        }
        #expect(source.fileReads == 1)
        let synced = try await client.applications(namespace: "argocd").first { $0.name == "monitoring" }
        #expect(synced?.healthy == true)
        #expect(synced?.revision == "1111111111111111111111111111111111111111")
        source.commit("2222222222222222222222222222222222222222")
        _ = try await client.services(namespace: nil)
        _ = try await client.services(namespace: nil)
        #expect(source.fileReads == 2)
        // The state handed on remembers the synced commit: the next step reads nothing either.
        let next = await client.cluster.client(gitSource: source)
        _ = try await next.applications(namespace: "argocd")
        #expect(source.fileReads == 2)
    }

    /// A bundle of a repository holding the test stack, made with the git command line.
    func stackBundle() async throws -> (head: String, data: Data) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("shoal-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let runner = ProcessRunner()
        _ = try await runner.run("git", ["init", "-q", "-b", "main", directory])
        for (path, text) in Stack.files { try SecureFile.write(text, to: directory + "/" + path) }
        let identity = ["-c", "user.name=t", "-c", "user.email=t@shoal.invalid", "-c", "commit.gpgsign=false"]
        _ = try await runner.run("git", ["-C", directory, "add", "-A"])
        let committed = try await runner.run("git", identity + ["-C", directory, "commit", "-q", "-m", "stack"])
        try #require(committed.succeeded, "\(committed.standardError)")
        let head = try await runner.run("git", ["-C", directory, "rev-parse", "HEAD"])
        let bundled = try await runner.run("git", ["-C", directory, "bundle", "create", "-q", "stack.bundle", "HEAD", "main"])
        try #require(bundled.succeeded, "\(bundled.standardError)")
        let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/stack.bundle"))
        return (head.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines), data)
    }

    static let server = SimulatedGitServer(
        host: "git.gitops.svc.cluster.local", namespace: "gitops", service: "git", deployment: "git")
    static let serverManifests = """
        apiVersion: v1
        kind: Namespace
        metadata: {name: gitops}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: git, namespace: gitops}
        spec:
          selector: {matchLabels: {app: git}}
          template:
            metadata: {labels: {app: git}}
            spec:
              containers:
              - {name: git, image: docker.gitea.com/gitea:1.25.4-rootless}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: git, namespace: gitops}
        spec:
          selector: {app: git}
          ports: [{port: 80}]
        """

    @Test func theModelledInClusterServerServesWhatWasPushedAndSaysWhyWhenItCannot() async throws {
        guard ProcessRunner.locate("git") != nil else {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("git is required when CI is set") }
            return
        }
        let url = "http://git.gitops.svc.cluster.local/shoal/demo.git"
        // Nothing else may be read: every other URL fails.
        let elsewhere = InMemoryGitSource(repositories: [:])
        var cluster = try Stack.cluster(repoURL: url)
        try cluster.apply(yaml: Self.serverManifests, source: "git-server")

        var state = cluster
        await state.reconcile(gitSource: elsewhere)
        let missing = try #require(state.applicationStates["argocd/monitoring"])
        #expect(missing.syncFailed)

        let bundle = try await stackBundle()
        cluster.receiveGitPush(server: Self.server, path: "shoal/demo.git", head: bundle.head, bundle: bundle.data)
        // The state travels as JSON (between steps and hosts): the repository travels inside it.
        let travelled = try SimulatedCluster.decode(cluster.encoded())
        let client = travelled.client(gitSource: elsewhere)
        let apps = try await client.applications(namespace: "argocd")
        #expect(apps.first { $0.name == "monitoring" }?.healthy == true, "\(apps)")
        #expect(apps.first { $0.name == "monitoring" }?.revision == bundle.head)

        // The server's pods gone: Argo CD keeps what it synced, and says the source does not answer.
        var down = travelled
        down.objects["Deployment/gitops/git"] = nil
        await down.reconcile(gitSource: elsewhere)
        let unreachable = try #require(down.applicationStates["argocd/monitoring"])
        #expect(unreachable.syncFailed)
        #expect(unreachable.message?.contains("has no ready pod") == true, "\(unreachable.message ?? "")")

        // The repository gone from the server.
        var empty = travelled
        empty.gitServer?.repositories = [:]
        await empty.reconcile(gitSource: elsewhere)
        #expect(empty.applicationStates["argocd/monitoring"]?.message?.contains("repository not found") == true)
        let check = await HealthChecks.run(.applications, client: empty.client(gitSource: elsewhere), expectation: Stack.expectation)
        #expect(!check.passed)
        #expect(check.details.joined().contains("does not exist on the in-cluster git server gitops/git"))
    }

    @Test func aLoopbackRewriteFallsBackToTheRepoURLOnAnotherHost() async throws {
        // On another host the monitoring agent's loopback URL is refused; the advertised repoURL answers.
        let source = RewritingGitSource(
            rewrites: ["http://git.lab:7402/wf": "http://127.0.0.1:1/wf"],
            base: InMemoryGitSource(repositories: ["http://git.lab:7402/wf": Stack.files]), fallBackToOriginal: true)
        let files = try await source.files(repoURL: "http://git.lab:7402/wf", revision: "HEAD", path: "monitoring")
        #expect(!files.isEmpty)
        let strict = RewritingGitSource(
            rewrites: ["http://git.lab:7402/wf": "http://127.0.0.1:1/wf"],
            base: InMemoryGitSource(repositories: ["http://git.lab:7402/wf": Stack.files]))
        await #expect(throws: ShoalError.self) {
            try await strict.files(repoURL: "http://git.lab:7402/wf", revision: "HEAD", path: "monitoring")
        }
    }
}
