import Foundation
import ShoalSupport
import Yams

/// What a kubeconfig's current context says about reaching its cluster: the API server and the credentials, as an
/// Argo CD cluster Secret needs them.
public struct KubeconfigAccess: Sendable, Equatable {
    public var server: String
    public var bearerToken: String?
    /// Base64 PEM, as the kubeconfig holds it (`client-certificate-data`).
    public var certData: String?
    public var keyData: String?
    public var caData: String?
    public var insecureSkipTLSVerify: Bool

    /// Reads the current context (else the first) of a kubeconfig.
    /// - Throws: `ShoalError(.invalidInput)` when the text is not a kubeconfig with a server and credentials
    ///   (a token, or client certificate and key data; file references are not read).
    public static func parse(_ text: String) throws -> KubeconfigAccess {
        let invalid = { (why: String) in ShoalError(.invalidInput, "not a usable kubeconfig: \(why)") }
        let root: Yams.Node
        do {
            guard let node = try Yams.compose(yaml: text) else { throw invalid("empty") }
            root = node
        } catch let error as ShoalError {
            throw error
        } catch {
            throw invalid("it does not parse")
        }
        let currentName = root["current-context"]?.string
        let contexts = root["contexts"]?.sequence.map(Array.init) ?? []
        guard
            let context = contexts.first(where: { currentName == nil || $0["name"]?.string == currentName })?[
                "context"],
            let clusterName = context["cluster"]?.string, let userName = context["user"]?.string,
            let cluster = root["clusters"]?.sequence?.first(where: { $0["name"]?.string == clusterName })?["cluster"],
            let user = root["users"]?.sequence?.first(where: { $0["name"]?.string == userName })?["user"]
        else { throw invalid("no current context with a cluster and a user") }
        guard let server = cluster["server"]?.string, !server.isEmpty else {
            throw invalid("the cluster has no server")
        }
        let access = KubeconfigAccess(
            server: server, bearerToken: user["token"]?.string, certData: user["client-certificate-data"]?.string,
            keyData: user["client-key-data"]?.string, caData: cluster["certificate-authority-data"]?.string,
            insecureSkipTLSVerify: cluster["insecure-skip-tls-verify"]?.bool ?? false)
        guard access.bearerToken != nil || (access.certData != nil && access.keyData != nil) else {
            throw invalid("the user has neither a token nor client certificate and key data")
        }
        return access
    }
}
