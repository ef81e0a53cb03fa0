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

    /// The name of the extension shoal puts on each cluster, user and context it writes (kubectl keeps extensions
    /// when it rewrites the file); its `workflow` field names the workflow the entry belongs to.
    public static let ownerExtension = "shoal"

    /// An entry of the file that has the name shoal would write and that shoal did not write.
    public static let foreignEntry = ShoalError.Code("foreign-entry")

    /// Adds the current context of `kubeconfig` to the file at `path` as a cluster, a user and a context, all three
    /// named `name` and marked as `owner`'s; entries of that name that shoal wrote are replaced. The file's
    /// `current-context` is set only when it has none. Every other entry is written back as it was read (kubectl's
    /// own layout comes back byte for byte; comments are not kept, as kubectl keeps none either).
    /// - Parameters:
    ///   - kubeconfig: the text of a kubeconfig (the one the provision step wrote).
    ///   - name: the entries' name, e.g. `shoal-WORKFLOW`.
    ///   - path: the kubeconfig to edit; created 0600 when missing.
    ///   - owner: the workflow the entries belong to.
    ///   - force: replace entries of that name that shoal did not write.
    /// - Throws: `ShoalError(foreignEntry)` when an entry of that name is not shoal's and `force` is false,
    ///   `.invalidInput` when either file is not a kubeconfig, `.io` when it cannot be written.
    public static func merge(
        kubeconfig: String, as name: String, into path: String, owner: String, force: Bool = false
    ) throws {
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
        if !force { try refuseForeign(name, in: target, path: path) }
        let contextBody = YNode([(YNode("cluster"), YNode(name)), (YNode("user"), YNode(name))])
        let entries: [String: YNode] = [
            "clusters": YNode([(YNode("cluster"), marked(cluster, owner: owner)), (YNode("name"), YNode(name))]),
            "users": YNode([(YNode("name"), YNode(name)), (YNode("user"), marked(user, owner: owner))]),
            "contexts": YNode([(YNode("context"), marked(contextBody, owner: owner)), (YNode("name"), YNode(name))]),
        ]
        var pairs: [(YNode, YNode)] = target.mapping.map { $0.map { ($0.key, $0.value) } } ?? []
        for key in ["clusters", "contexts", "users"] {
            let entry = entries[key]!
            if let index = pairs.firstIndex(where: { $0.0.string == key }) {
                var items = pairs[index].1.sequence.map(Array.init) ?? []
                items.removeAll { $0["name"]?.string == name }
                // `clusters: []` becomes a block list, as kubectl would write it.
                let style = items.isEmpty ? .any : pairs[index].1.sequence?.style ?? .any
                items.append(entry)
                pairs[index].1 = YNode(items, .implicit, style)
            } else {
                // Where kubectl puts it: keys in alphabetical order.
                let at = pairs.firstIndex { ($0.0.string ?? "") > key } ?? pairs.endIndex
                pairs.insert((YNode(key), YNode([entry])), at: at)
            }
        }
        let current = pairs.first { $0.0.string == "current-context" }?.1.string ?? ""
        if current.isEmpty {
            if let index = pairs.firstIndex(where: { $0.0.string == "current-context" }) {
                pairs[index].1 = YNode(name)
            } else {
                let at = pairs.firstIndex { ($0.0.string ?? "") > "current-context" } ?? pairs.endIndex
                pairs.insert((YNode("current-context"), YNode(name)), at: at)
            }
        }
        for (key, value) in [("apiVersion", "v1"), ("kind", "Config")]
        where !pairs.contains(where: { $0.0.string == key }) {
            let at = pairs.firstIndex { ($0.0.string ?? "") > key } ?? pairs.endIndex
            pairs.insert((YNode(key), YNode(value)), at: at)
        }
        try write(YNode(pairs, .implicit, target.mapping?.style ?? .any), to: path)
    }

    /// Removes the cluster, user and context named `name` that shoal wrote for `owner` from the file at `path`, and
    /// `current-context` when it names that context. Entries of that name that are not `owner`'s stay.
    /// - Returns: whether the file held any of them (false also when there is no file).
    /// - Throws: `ShoalError(.invalidInput)` when the file is not a kubeconfig, `.io` when it cannot be written.
    @discardableResult
    public static func remove(name: String, owner: String, from path: String) throws -> Bool {
        guard FileManager.default.fileExists(atPath: path) else { return false }
        let target = try existing(path)
        guard var pairs: [(YNode, YNode)] = target.mapping.map({ $0.map { ($0.key, $0.value) } }) else { return false }
        var changed = false
        for index in pairs.indices {
            guard let key = pairs[index].0.string, let field = entryField[key],
                var items = pairs[index].1.sequence.map(Array.init)
            else { continue }
            let before = items.count
            items.removeAll { $0["name"]?.string == name && Self.owner(of: $0[field]) == owner }
            if items.count != before {
                changed = true
                pairs[index].1 = YNode(items, .implicit, pairs[index].1.sequence?.style ?? .any)
            }
        }
        guard changed else { return false }
        if let index = pairs.firstIndex(where: { $0.0.string == "current-context" }), pairs[index].1.string == name {
            pairs[index].1 = YNode("", Tag(.str), .doubleQuoted)
        }
        try write(YNode(pairs, .implicit, target.mapping?.style ?? .any), to: path)
        return true
    }

    /// Whether the file at `path` has a context named `name`.
    public static func hasContext(_ name: String, in path: String) -> Bool {
        guard let target = try? existing(path) else { return false }
        return target["contexts"]?.sequence?.contains { $0["name"]?.string == name } ?? false
    }

    /// The workflow that owns the context named `name` in the file at `path`: nil when there is no such context or
    /// shoal did not write it.
    public static func contextOwner(_ name: String, in path: String) -> String? {
        guard let target = try? existing(path) else { return nil }
        let context = target["contexts"]?.sequence?.first { $0["name"]?.string == name }
        return owner(of: context?["context"])
    }

    /// Copies the file at `path` beside it as `NAME.shoal-backup-TIMESTAMP`, 0600.
    /// - Returns: the copy's path, or nil when there is no file to copy.
    /// - Throws: `ShoalError(.io)` when the copy cannot be written.
    public static func backup(_ path: String, now: Date = Date()) throws -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let base = "\(path).shoal-backup-\(formatter.string(from: now))"
        var copy = base
        var counter = 1
        while FileManager.default.fileExists(atPath: copy) {
            counter += 1
            copy = "\(base)-\(counter)"
        }
        try SecureFile.write(data, to: copy, mode: 0o600)
        return copy
    }

    // MARK: Ownership

    /// The field of an entry of each list that holds its body (and its extensions).
    private static let entryField = ["clusters": "cluster", "users": "user", "contexts": "context"]

    /// `body` with the owner extension added (replacing one already there).
    private static func marked(_ body: YNode, owner: String) -> YNode {
        var pairs: [(YNode, YNode)] = body.mapping.map { $0.map { ($0.key, $0.value) } } ?? []
        let mark = YNode([
            (YNode("extension"), YNode([(YNode("workflow"), YNode(owner))])),
            (YNode("name"), YNode(ownerExtension)),
        ])
        if let index = pairs.firstIndex(where: { $0.0.string == "extensions" }) {
            var items = pairs[index].1.sequence.map(Array.init) ?? []
            items.removeAll { $0["name"]?.string == ownerExtension }
            items.append(mark)
            pairs[index].1 = YNode(items)
        } else {
            let at = pairs.firstIndex { ($0.0.string ?? "") > "extensions" } ?? pairs.endIndex
            pairs.insert((YNode("extensions"), YNode([mark])), at: at)
        }
        return YNode(pairs)
    }

    /// The workflow named by the owner extension of an entry's body, nil when there is none.
    private static func owner(of body: YNode?) -> String? {
        body?["extensions"]?.sequence?.first { $0["name"]?.string == ownerExtension }?["extension"]?["workflow"]?.string
    }

    /// Checks, without writing anything, that `merge` would replace no entry shoal did not write.
    /// - Throws: `ShoalError(foreignEntry)` naming the entry, `.invalidInput` when the file is not a kubeconfig.
    public static func checkMergeable(_ name: String, into path: String) throws {
        try refuseForeign(name, in: existing(path), path: path)
    }

    private static func refuseForeign(_ name: String, in document: YNode, path: String) throws {
        guard let foreign = foreignEntry(named: name, in: document) else { return }
        throw ShoalError(
            foreignEntry,
            "\(path) already has a \(foreign) named '\(name)' that shoal did not write; choose another name with "
                + "--context NAME, or pass --force to replace it")
    }

    /// The kind ("cluster", "user", "context") of the first entry named `name` that shoal did not write.
    private static func foreignEntry(named name: String, in document: YNode) -> String? {
        for (key, field) in entryField.sorted(by: { $0.key < $1.key }) {
            let entries = document[key]?.sequence?.filter { $0["name"]?.string == name } ?? []
            if entries.contains(where: { owner(of: $0[field]) == nil }) { return field }
        }
        return nil
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
        return withStyles(node, lines: text.split(separator: "\n", omittingEmptySubsequences: false))
    }

    /// `node` with the flow or block style of each mapping and sequence as written: Yams 6.2 composes every
    /// collection with no style (it reads it from the end event), so `{...}` and `[...]` would come back as blocks.
    /// The style is read from the text at the collection's start mark.
    private static func withStyles(_ node: YNode, lines: [Substring]) -> YNode {
        func opens(_ mark: Mark?, with character: Unicode.Scalar) -> Bool {
            guard let mark, lines.indices.contains(mark.line - 1) else { return false }
            let scalars = lines[mark.line - 1].unicodeScalars
            guard mark.column >= 1, mark.column <= scalars.count else { return false }
            return scalars[scalars.index(scalars.startIndex, offsetBy: mark.column - 1)] == character
        }
        switch node {
        case .mapping(let mapping):
            let pairs = mapping.map { ($0.key, withStyles($0.value, lines: lines)) }
            let style: YNode.Mapping.Style = opens(mapping.mark, with: "{") ? .flow : .block
            return .mapping(YNode.Mapping(pairs, mapping.tag, style, mapping.mark, mapping.anchor))
        case .sequence(let sequence):
            let items = sequence.map { withStyles($0, lines: lines) }
            let style: YNode.Sequence.Style = opens(sequence.mark, with: "[") ? .flow : .block
            return .sequence(YNode.Sequence(items, sequence.tag, style, sequence.mark, sequence.anchor))
        default:
            return node
        }
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
            text = try Yams.serialize(node: node, width: -1)
        } catch {
            throw ShoalError(.io, "cannot write the kubeconfig \(path)", cause: "\(error)")
        }
        // Follow a symbolic link (a dotfiles checkout, say) instead of replacing it with a file.
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        try SecureFile.createDirectory((resolved as NSString).deletingLastPathComponent, mode: 0o700)
        try SecureFile.write(text, to: resolved, mode: 0o600)
    }
}
