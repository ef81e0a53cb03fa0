import Foundation
import ShoalSupport

/// Asks Argo CD to refresh Applications at once rather than at its next poll (3 minutes by default): the
/// `argocd.argoproj.io/refresh` annotation, which the application controller acts on and then removes.
public enum ApplicationRefresh {
    /// The annotation Argo CD watches.
    public static let annotation = "argocd.argoproj.io/refresh"

    /// The merge patch that requests a normal refresh.
    public static let patch = #"{"metadata":{"annotations":{"argocd.argoproj.io/refresh":"normal"}}}"#

    /// Annotates each Application that exists (of `names`, or all); one that cannot be patched is noted, not fatal:
    /// the poll still picks the change up.
    /// - Returns: one log line per Application.
    public static func request(_ client: any ClusterClient, names: [String]? = nil, namespace: String = "argocd")
        async -> [String]
    {
        let existing: [String]
        do {
            existing = try await client.applications(namespace: namespace).map(\.name)
        } catch {
            return ["refresh not requested: cannot list Applications (\(error)); Argo CD polls within 3 minutes"]
        }
        var lines: [String] = []
        for name in existing where names?.contains(name) ?? true {
            do {
                try await client.patch(kind: "application", name: name, namespace: namespace, type: .merge, patch: patch)
                lines.append("refresh requested: application \(name)")
            } catch {
                lines.append("refresh of application \(name) not requested (\(error)); Argo CD polls within 3 minutes")
            }
        }
        return lines
    }
}

extension SimulatedCluster {
    /// Applications carrying the refresh annotation: the simulated controller compares them again at once (even at
    /// an already synced commit) and removes the annotation, as Argo CD does.
    /// - Returns: their keys (`namespace/name`).
    mutating func consumeRefreshRequests() -> Set<String> {
        var refreshed: Set<String> = []
        for (key, object) in objects where object.kind == "Application" {
            guard case .object(var root) = object.body, case .object(var metadata)? = root["metadata"],
                case .object(var annotations)? = metadata["annotations"], annotations[ApplicationRefresh.annotation] != nil
            else { continue }
            annotations[ApplicationRefresh.annotation] = nil
            metadata["annotations"] = annotations.isEmpty ? nil : .object(annotations)
            root["metadata"] = .object(metadata)
            objects[key]?.body = .object(root)
            let appKey = Self.applicationKey(object)
            applicationStates[appKey]?.syncedRevision = nil
            refreshed.insert(appKey)
        }
        return refreshed
    }
}

/// Whether the simulated Argo CD renders Kustomize with kubectl on this host.
public enum SimulatedKustomizeNote {
    public static var kubectlAvailable: Bool { SimulatedKustomize.kubectlAvailable }
}
