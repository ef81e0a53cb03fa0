import Foundation
import ShoalSupport

extension KubectlClient {
    /// The clusters registered in the Argo CD of this cluster (its cluster Secrets), sorted by name. The Secrets'
    /// `config` (credentials) is read into memory with the rest and dropped.
    /// - Parameters:
    ///   - namespace: Argo CD's namespace.
    ///   - selector: a label selector, e.g. `shoal.dev/fleet=lab`.
    public func registeredClusters(namespace: String = "argocd", selector: String) async throws -> [RegisteredCluster] {
        let output = try await kubectl([
            "get", "secrets", "--namespace", namespace, "-l", "argocd.argoproj.io/secret-type=cluster,\(selector)",
            "-o", "json",
        ])
        guard let list = try ManifestParser.compose(output, source: "kubectl output").first else { return [] }
        return (list["items"]?.array ?? []).compactMap { RegisteredCluster(secret: $0) }.sorted { $0.name < $1.name }
    }
}
