import AgentRuntime
import Cluster
import Foundation
import Protocol
import ShoalSupport

/// The cluster one step talks to: kubectl with the workflow's kubeconfig in real mode, the simulated cluster handed
/// on by earlier steps in demo mode. Handlers see only `client`, so both modes run the same calls.
final class ClusterSession: Sendable {
    let client: any ClusterClient
    /// The model behind `client` in demo mode (its git server takes pushes), nil in real mode.
    let simulated: SimulatedClusterClient?
    /// The private directory holding the kubeconfig copy (real mode).
    private let scratch: String?

    private init(client: any ClusterClient, simulated: SimulatedClusterClient?, scratch: String?) {
        self.client = client
        self.simulated = simulated
        self.scratch = scratch
    }

    /// Opens the session, runs `body`, and removes the kubeconfig copy whatever happens.
    /// - Parameters:
    ///   - context: the step (its request says the mode; its artifacts hold the kubeconfig or the model).
    ///   - options: the agent's kubectl timeout.
    ///   - gitSource: how the simulated Argo CD reads repositories; by default it reads the monitoring step's
    ///     repository where it is served (`RewritingGitSource`).
    /// - Throws: `ShoalError(.invalidInput)` when the kubeconfig or the model is missing, or what `body` throws.
    static func with<T: Sendable>(
        _ context: StepContext, options: AgentOptions, gitSource: (any GitSource)? = nil,
        _ body: (ClusterSession) async throws -> T
    ) async throws -> T {
        let session = try open(context, options: options, gitSource: gitSource)
        defer { session.close() }
        return try await body(session)
    }

    private static func open(_ context: StepContext, options: AgentOptions, gitSource: (any GitSource)?) throws
        -> ClusterSession
    {
        if context.request.realDeployment {
            guard let kubeconfig = context.artifact(ArtifactName.kubeconfig) else {
                throw ShoalError(.invalidInput, "no kubeconfig from the provision step")
            }
            let scratch = try PrivateScratch.make(prefix: "shoal-kubeconfig")
            let path = scratch + "/kubeconfig"
            do {
                try SecureFile.write(kubeconfig.data, to: path, mode: 0o600)
            } catch {
                PrivateScratch.remove(scratch)
                throw error
            }
            let client = KubectlClient(
                kubeconfig: path, executable: options.kubectlExecutable, timeout: options.kubectlTimeout)
            return ClusterSession(client: client, simulated: nil, scratch: scratch)
        }
        let cluster = try SimulatedCluster.load(from: context)
        let client = cluster.client(gitSource: try gitSource ?? defaultGitSource(context))
        return ClusterSession(client: client, simulated: client, scratch: nil)
    }

    /// Reads the monitoring step's repository where that step serves it, under the Applications' real `repoURL`.
    /// - Throws: `StepContractError` when the monitoring step's output has another shape.
    static func defaultGitSource(_ context: StepContext) throws -> any GitSource {
        guard let monitoring = try context.input(MonitoringOutput.self), let served = monitoring.servedURL,
            monitoring.repoURL != served
        else { return GitCLISource() }
        let repoURL = monitoring.repoURL
        // The loopback URL works on the monitoring agent's host only; elsewhere the repoURL itself is read.
        return RewritingGitSource(rewrites: [repoURL: served], fallBackToOriginal: true)
    }

    /// Demo mode: the model as this step left it, for the steps after it. Nil in real mode.
    func stateArtifact(workflow: String) async -> Artifact? {
        guard let simulated else { return nil }
        return await simulated.cluster.artifact(workflow: workflow)
    }

    private func close() {
        if let scratch { PrivateScratch.remove(scratch) }
    }
}

/// A directory only this user can enter, for secrets that must be files for a moment (a kubeconfig for kubectl).
enum PrivateScratch {
    /// - Throws: `ShoalError(.io)` when the directory cannot be made.
    static func make(prefix: String) throws -> String {
        var base = NSTemporaryDirectory()
        while base.hasSuffix("/") && base.count > 1 { base.removeLast() }
        var template = Array((base + "/\(prefix)-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in mkdtemp(buffer.baseAddress!) }
        guard made != nil else {
            throw ShoalError(
                .io, "cannot create a private temporary directory", cause: String(cString: strerror(errno)))
        }
        // mkdtemp creates it 0700.
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func remove(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Polls until a condition holds or a deadline passes: every wait of a real deployment is bounded.
enum BoundedWait {
    /// Calls `probe` until it returns a value or `timeout` has passed.
    /// - Parameters:
    ///   - timeout: the bound; a zero timeout asks once.
    ///   - interval: the pause between attempts (shortened near the deadline).
    ///   - probe: nil to try again; errors it throws end the wait.
    /// - Returns: the value, or nil when the deadline passed.
    static func until<T: Sendable>(
        timeout: Duration, interval: Duration = .seconds(2), _ probe: () async throws -> T?
    ) async throws -> T? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let value = try await probe() { return value }
            let now = ContinuousClock.now
            if now >= deadline { return nil }
            try await Task.sleep(for: min(interval, deadline - now))
        }
    }
}

extension StepContext {
    /// The bound of each wait: the request's `--wait-timeout`, else the agent's.
    func waitTimeout(_ options: AgentOptions) -> Duration {
        request.waitTimeoutSeconds > 0 ? .seconds(request.waitTimeoutSeconds) : options.waitTimeout
    }
}
