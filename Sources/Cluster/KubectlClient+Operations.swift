import Foundation
import ShoalSupport

// The installation steps of `ClusterClient` as kubectl commands. The argument arrays are exactly those of the
// commands documented on each method, so a step list written as kubectl arguments (Argo CD's install, say) and these
// calls stay interchangeable.
extension KubectlClient {
    public func createNamespace(_ name: String) async throws -> Bool {
        do {
            _ = try await kubectl(["create", "namespace", name])
            return true
        } catch let error as ShoalError where Self.isAlreadyExists(error) {
            return false
        }
    }

    public func apply(location: String, namespace: String?, serverSide: Bool) async throws {
        var arguments = ["apply"]
        if serverSide { arguments += ["--server-side", "--force-conflicts"] }
        if let namespace { arguments += ["-n", namespace] }
        // A location that starts with '-' would read as an option.
        guard !location.hasPrefix("-") else {
            throw ShoalError(.invalidInput, "invalid manifest location '\(location.prefix(200))'")
        }
        arguments += ["-f", location]
        // Applying Argo CD's CRDs and a few dozen objects takes longer than a read.
        _ = try await kubectl(arguments, timeout: max(timeout, .seconds(120)))
    }

    public func patch(kind: String, name: String, namespace: String, type: PatchType, patch: String) async throws {
        _ = try await kubectl(["patch", kind, name, "-n", namespace, "--type", type.rawValue, "-p", patch])
    }

    public func rolloutRestart(kind: String, name: String, namespace: String) async throws {
        _ = try await kubectl(["rollout", "restart", "\(kind)/\(name)", "-n", namespace])
    }

    public func rolloutStatus(kind: String, name: String, namespace: String, timeout wait: Duration) async throws {
        // Whole seconds, rounded up: a wait of 1.9 s must not become 1 s.
        let (whole, fraction) = wait.components
        let seconds = max(1, Int(whole) + (fraction > 0 ? 1 : 0))
        do {
            // The request timeout must outlast the watch, or kubectl gives up before the rollout does.
            _ = try await kubectl(
                ["rollout", "status", "\(kind)/\(name)", "-n", namespace, "--timeout=\(seconds)s"],
                timeout: .seconds(seconds + 10))
        } catch let error as ShoalError where error.code == .commandFailed || error.code == .unreachable {
            let cause = error.cause ?? ""
            // kubectl reports its own --timeout as "timed out waiting for the condition".
            if cause.contains("timed out waiting") || cause.contains("context deadline exceeded") {
                throw ShoalError(
                    .timeout, "\(kind)/\(name) in namespace \(namespace) was not rolled out within \(seconds)s",
                    cause: cause)
            }
            throw error
        }
    }

    public func configMapData(namespace: String, name: String) async throws -> [String: String] {
        let output = try await kubectl(["get", "configmap", name, "--namespace", namespace, "-o", "json"])
        guard let object = try? ManifestParser.compose(output, source: "kubectl output").first else {
            throw ShoalError(.protocolViolation, "kubectl get configmap printed something that is not JSON")
        }
        return object["data"]?.stringMap ?? [:]
    }

    static func isAlreadyExists(_ error: ShoalError) -> Bool {
        let text = error.message + " " + (error.cause ?? "")
        return text.contains("(AlreadyExists)") || text.contains("already exists")
    }
}
