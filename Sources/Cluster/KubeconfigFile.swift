import Foundation
import ShoalSupport
import Yams

private typealias YNode = Yams.Node

/// Adds a workflow's cluster to the user's kubeconfig and takes it out again, touching no other entry.
///
/// The file is edited as a YAML structure (never as text): the `clusters`, `users` and `contexts` entries named
/// `NAME` are replaced or removed, everything else is written back as it was read. Writes are atomic and 0600.
public enum KubeconfigFile {
    /// The file kubectl reads by default: the first path of `$KUBECONFIG` when set, else `~/.kube/config`.
    /// - Parameter environment: the process environment.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let list = environment["KUBECONFIG"],
            let first = list.split(separator: ":", omittingEmptySubsequences: true).first
        {
            return String(first)
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return home + "/.kube/config"
    }

    /// Adds the current context of `kubeconfig` to the file at `path` as a cluster, a user and a context, all three
    /// named `name`; entries of that name are replaced. The file's `current-context` is set only when it has none.
    /// - Parameters:
    ///   - kubeconfig: the text of a kubeconfig (the one the provision step wrote).
    ///   - name: the entries' name, e.g. `shoal-WORKFLOW`.
    ///   - path: the kubeconfig to edit; created 0600 when missing.
    /// - Throws: `ShoalError(.invalidInput)` when either file is not a kubeconfig, `.io` when it cannot be written.
    public static func merge(kubeconfig: String, as name: String, into path: String) throws {
        let source = try document(kubeconfig, what: "the workflow's kubeconfig")
        let contextName = source["current-context"]?.string
        let contexts = source["contexts"]?.sequence.map(Array.init) ?? []
        guard
            let context = contexts.first(where: { contextName == nil || $0["name"]?.string == contextName })?[
                "context"],
            let clusterName = context["cluster"]?.string, let userName = context["user"]?.string,
            let cluster = source["clusters"]?.sequence?.first(where: { $0["name"]?.string == clusterName })?["cluster"],
            let user = source["users"]?.sequence?.first(where: { $0["name"]?.string == userName })?["user"]
        else {
            throw ShoalError(
                .invalidInput, "the workflow's kubeconfig has no complete current context (cluster, user, context)")
        }
        let target = try existing(path)
        let entries: [String: YNode] = [
            "clusters": YNode([(YNode("name"), YNode(name)), (YNode("cluster"), cluster)]),
            "users": YNode([(YNode("name"), YNode(name)), (YNode("user"), user)]),
            "contexts": YNode([
                (YNode("name"), YNode(name)),
                (YNode("context"), YNode([(YNode("cluster"), YNode(name)), (YNode("user"), YNode(name))])),
            ]),
        ]
        var pairs: [(YNode, YNode)] = target.mapping.map { $0.map { ($0.key, $0.value) } } ?? []
        for key in ["clusters", "contexts", "users"] {
            let entry = entries[key]!
            if let index = pairs.firstIndex(where: { $0.0.string == key }) {
                var items = pairs[index].1.sequence.map(Array.init) ?? []
                items.removeAll { $0["name"]?.string == name }
                items.append(entry)
                pairs[index].1 = YNode(items)
            } else {
                pairs.append((YNode(key), YNode([entry])))
            }
        }
        let current = pairs.first { $0.0.string == "current-context" }?.1.string ?? ""
        if current.isEmpty {
            pairs.removeAll { $0.0.string == "current-context" }
            pairs.append((YNode("current-context"), YNode(name)))
        }
        for (key, value) in [("kind", "Config"), ("apiVersion", "v1")]
        where !pairs.contains(where: { $0.0.string == key }) {
            pairs.insert((YNode(key), YNode(value)), at: 0)
        }
        try write(YNode(pairs), to: path)
    }

    /// Removes the cluster, user and context named `name` from the file at `path`, and `current-context` when it
    /// names that context.
    /// - Returns: whether the file held any of them (false also when there is no file).
    /// - Throws: `ShoalError(.invalidInput)` when the file is not a kubeconfig, `.io` when it cannot be written.
    @discardableResult
    public static func remove(name: String, from path: String) throws -> Bool {
        guard FileManager.default.fileExists(atPath: path) else { return false }
        let target = try existing(path)
        guard var pairs: [(YNode, YNode)] = target.mapping.map({ $0.map { ($0.key, $0.value) } }) else { return false }
        var changed = false
        for index in pairs.indices where ["clusters", "contexts", "users"].contains(pairs[index].0.string ?? "") {
            guard var items = pairs[index].1.sequence.map(Array.init) else { continue }
            let before = items.count
            items.removeAll { $0["name"]?.string == name }
            if items.count != before {
                changed = true
                pairs[index].1 = YNode(items)
            }
        }
        if let index = pairs.firstIndex(where: { $0.0.string == "current-context" }), pairs[index].1.string == name {
            pairs[index].1 = YNode("", Tag(.str), .doubleQuoted)
            changed = true
        }
        if changed { try write(YNode(pairs), to: path) }
        return changed
    }

    /// Whether the file at `path` has a context named `name`.
    public static func hasContext(_ name: String, in path: String) -> Bool {
        guard let target = try? existing(path) else { return false }
        return target["contexts"]?.sequence?.contains { $0["name"]?.string == name } ?? false
    }

    // MARK: Reading and writing

    private static func document(_ text: String, what: String) throws -> YNode {
        let node: YNode?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw ShoalError(.invalidInput, "\(what) is not valid YAML", cause: "\(error)")
        }
        guard let node, node.mapping != nil else {
            throw ShoalError(.invalidInput, "\(what) is not a kubeconfig (not a YAML mapping)")
        }
        return node
    }

    /// The file's document, or an empty mapping when the file does not exist or is empty.
    private static func existing(_ path: String) throws -> YNode {
        guard let data = FileManager.default.contents(atPath: path) else { return YNode([(YNode, YNode)]()) }
        let text = String(decoding: data, as: UTF8.self)
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return YNode([(YNode, YNode)]()) }
        return try document(text, what: "the kubeconfig \(path)")
    }

    private static func write(_ node: YNode, to path: String) throws {
        let text: String
        do {
            text = try Yams.serialize(node: node)
        } catch {
            throw ShoalError(.io, "cannot write the kubeconfig \(path)", cause: "\(error)")
        }
        // Follow a symbolic link (a dotfiles checkout, say) instead of replacing it with a file.
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        try SecureFile.createDirectory((resolved as NSString).deletingLastPathComponent, mode: 0o700)
        try SecureFile.write(text, to: resolved, mode: 0o600)
    }
}
