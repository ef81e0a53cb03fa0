import AgentRuntime
import Cluster
import Foundation
import GitOps
import Protocol
import ShoalSupport

/// Installs the pinned Argo CD (server-side apply, NodePort 30080, plain HTTP behind the NodePort), waits for its
/// rollout, and hands on its admin password. The same calls go to kubectl (real mode) or the simulated cluster.
struct ArgoCDHandler: StepHandler {
    let options: AgentOptions

    func run(_ context: StepContext) async throws -> StepOutput {
        let workflow = context.workflow
        let request = context.request
        let install = ArgoCDInstall(
            version: request.argocdVersion.isEmpty ? ArgoCDInstall.defaultVersion : request.argocdVersion,
            manifestPath: request.argocdManifest)
        let timeout = context.waitTimeout(options)
        return try await ClusterSession.with(context, options: options) { session in
            let client = session.client
            var log: [String] = []
            for step in install.kubectlSteps() {
                let line = "kubectl " + step.joined(separator: " ")
                let note = try await InstallStep.run(step, on: client, timeout: timeout)
                log.append(line + (note.map { " (\($0))" } ?? ""))
            }
            let deadline = ContinuousClock.now + timeout
            for step in install.waitSteps(timeout: "\(timeout.components.seconds)s") {
                let remaining = max(.seconds(1), deadline - ContinuousClock.now)
                _ = try await InstallStep.run(step, on: client, timeout: remaining)
                log.append("kubectl " + step.joined(separator: " "))
            }
            let password = try await Self.adminPassword(client, timeout: max(.seconds(1), deadline - .now))
            var artifacts = [
                Artifact(
                    name: ArtifactName.argocdAdminPassword, path: "kubeconfigs/\(workflow)/argocd-admin-password",
                    sensitive: true, text: password + "\n")
            ]
            if let state = await session.stateArtifact(workflow: workflow) { artifacts.append(state) }
            let source = install.manifestPath.map { "from \($0)" } ?? "release manifest"
            return try StepOutput(
                summary: "Argo CD \(install.version) (\(source)) rolled out, NodePort \(ArgoCDInstall.nodePort)",
                typed: ArgoCDOutput(
                    version: install.version, nodePort: ArgoCDInstall.nodePort, namespace: ArgoCDInstall.namespace),
                artifacts: artifacts, log: log)
        }
    }

    /// The initial admin password, which the Argo CD server writes into `argocd-initial-admin-secret` when it first
    /// starts: it may appear a little after the rollout.
    static func adminPassword(_ client: any ClusterClient, timeout: Duration) async throws -> String {
        let found = try await BoundedWait.until(timeout: timeout) { () -> String? in
            do {
                let data = try await client.secretData(
                    namespace: ArgoCDInstall.namespace, name: "argocd-initial-admin-secret")
                guard let password = data["password"], !password.isEmpty else { return nil }
                return password
            } catch let error as ShoalError where error.code == .notFound {
                return nil
            }
        }
        guard let found else {
            throw ShoalError(
                .timeout,
                "Argo CD did not create argocd-initial-admin-secret within \(timeout.shortDescription): "
                    + "check `kubectl -n argocd logs deploy/argocd-server`")
        }
        return found
    }
}

/// Runs an installation step written as kubectl arguments (`ArgoCDInstall.kubectlSteps()`, `waitSteps()`) through
/// the `ClusterClient`, so that the same step list drives kubectl and the simulated cluster.
enum InstallStep {
    /// - Parameters:
    ///   - arguments: kubectl's arguments, without `kubectl` and `--kubeconfig`.
    ///   - client: the cluster.
    ///   - timeout: the bound of a `rollout status` wait.
    /// - Returns: a note for the log (`already there` for an existing namespace), or nil.
    /// - Throws: `ShoalError(.invalidInput)` for a form this runner does not know, or what the cluster says.
    static func run(_ arguments: [String], on client: any ClusterClient, timeout: Duration) async throws -> String? {
        var words = arguments
        let namespace = option("-n", in: &words) ?? option("--namespace", in: &words)
        let patchType = option("--type", in: &words)
        let patch = option("-p", in: &words)
        let file = option("-f", in: &words)
        let serverSide = words.contains("--server-side")
        let timeoutFlag = words.first { $0.hasPrefix("--timeout=") }
        words.removeAll { $0.hasPrefix("-") }
        func fail() -> ShoalError {
            ShoalError(.invalidInput, "unsupported installation step: kubectl \(arguments.joined(separator: " "))")
        }
        switch (words.first, words.dropFirst().first) {
        case ("create", "namespace"):
            guard words.count == 3 else { throw fail() }
            return try await client.createNamespace(words[2]) ? nil : "already there"
        case ("apply", _):
            guard let file else { throw fail() }
            try await client.apply(location: file, namespace: namespace, serverSide: serverSide)
            return nil
        case ("patch", _):
            guard words.count == 3, let namespace, let patch, let type = PatchType(rawValue: patchType ?? "strategic")
            else { throw fail() }
            try await client.patch(kind: words[1], name: words[2], namespace: namespace, type: type, patch: patch)
            return nil
        case ("rollout", "restart"), ("rollout", "status"):
            guard words.count == 3, let namespace else { throw fail() }
            let target = words[2].split(separator: "/", maxSplits: 1).map(String.init)
            guard target.count == 2 else { throw fail() }
            if words[1] == "restart" {
                try await client.rolloutRestart(kind: target[0], name: target[1], namespace: namespace)
            } else {
                // The step's own --timeout is an upper bound; the caller's remaining time may be shorter.
                let stated = timeoutFlag.flatMap { parseDuration(String($0.dropFirst("--timeout=".count))) }
                try await client.rolloutStatus(
                    kind: target[0], name: target[1], namespace: namespace, timeout: min(stated ?? timeout, timeout))
            }
            return nil
        default:
            throw fail()
        }
    }

    /// Removes `flag VALUE` from `words` and returns the value.
    private static func option(_ flag: String, in words: inout [String]) -> String? {
        guard let index = words.firstIndex(of: flag), index + 1 < words.count else { return nil }
        let value = words[index + 1]
        words.removeSubrange(index...index + 1)
        return value
    }
}

extension SimulatedCluster {
    /// The state as an artifact for the steps after this one. Sensitive: the
    /// model holds the cluster's Secrets.
    func artifact(workflow: String) -> Artifact {
        Artifact(
            name: ArtifactName.clusterState, path: "kubeconfigs/\(workflow)/simulated-cluster.json", sensitive: true,
            data: encoded())
    }

    /// The simulated cluster handed on by earlier steps.
    static func load(from context: StepContext) throws -> SimulatedCluster {
        guard let artifact = context.artifact(ArtifactName.clusterState) else {
            throw ShoalError(.invalidInput, "no cluster state from the provision step")
        }
        return try DecodedStates.shared.state(of: artifact.data)
    }
}

/// The models this agent decoded lately, by their bytes: the validation steps of a workflow all receive the same
/// state, and decoding it is most of what a simulated check costs otherwise. A model is a value: each step gets its
/// own copy to change.
final class DecodedStates: @unchecked Sendable {  // `entries` is guarded by `lock`
    static let shared = DecodedStates()
    private let lock = NSLock()
    private var entries: [(data: Data, state: SimulatedCluster)] = []
    private let capacity = 2

    func state(of data: Data) throws -> SimulatedCluster {
        if let hit = lock.withLock({ entries.first { $0.data == data }?.state }) { return hit }
        let decoded = try SimulatedCluster.decode(data)
        lock.withLock {
            entries.removeAll { $0.data == data }
            entries.append((data, decoded))
            if entries.count > capacity { entries.removeFirst() }
        }
        return decoded
    }
}
