import Foundation
import ShoalSupport

extension ApplicationStatus {
    /// Argo CD's address of the cluster it runs in.
    public static let inClusterServer = "https://kubernetes.default.svc"

    /// A destination server other than the cluster Argo CD runs in; nil for that cluster.
    public static func remoteServer(_ server: String?) -> String? {
        guard let server, !server.isEmpty, server != inClusterServer else { return nil }
        return server
    }
}

/// A cluster registered in an Argo CD: what a cluster Secret (`argocd.argoproj.io/secret-type: cluster`) says.
public struct RegisteredCluster: Sendable, Equatable, Codable {
    public var name: String
    public var server: String
    public var labels: [String: String]
    public var annotations: [String: String]
    /// The Secret's name in the Argo CD namespace.
    public var secret: String

    public init(name: String, server: String, labels: [String: String], annotations: [String: String], secret: String) {
        self.name = name
        self.server = server
        self.labels = labels
        self.annotations = annotations
        self.secret = secret
    }

    /// What a cluster Secret (as stored or as kubectl prints it) says; nil for any other Secret.
    init?(secret: ManifestValue) {
        let labels = secret["metadata", "labels"]?.stringMap ?? [:]
        guard labels["argocd.argoproj.io/secret-type"] == "cluster" else { return nil }
        var data: [String: String] = [:]
        for (key, value) in secret["data"]?.stringMap ?? [:] {
            data[key] = Data(base64Encoded: value).map { String(decoding: $0, as: UTF8.self) }
        }
        for (key, value) in secret["stringData"]?.stringMap ?? [:] { data[key] = value }
        let secretName = secret["metadata", "name"]?.string ?? ""
        guard let server = data["server"] else { return nil }
        self.init(
            name: data["name"] ?? secretName, server: server, labels: labels,
            annotations: secret["metadata", "annotations"]?.stringMap ?? [:], secret: secretName)
    }

    /// The cluster generator's parameters, flat (`metadata.labels.KEY`), as Argo CD documents them.
    var parameters: [String: String] {
        var result = [
            "name": name, "nameNormalized": Self.normalized(name), "server": server, "project": "",
        ]
        for (key, value) in labels { result["metadata.labels.\(key)"] = value }
        for (key, value) in annotations { result["metadata.annotations.\(key)"] = value }
        return result
    }

    /// `name` with only lowercase alphanumerics, `-` and `.` (others become `-`).
    static func normalized(_ name: String) -> String {
        String(
            name.lowercased().map { character -> Character in
                character.isLetter && character.isASCII || character.isNumber && character.isASCII || character == "-"
                    || character == "." ? character : "-"
            })
    }
}

extension SimulatedCluster {
    /// The clusters registered in this model's Argo CD (its cluster Secrets in `argocd`), sorted by name.
    public func registeredClusters(namespace: String = "argocd") -> [RegisteredCluster] {
        objects(kind: "Secret", namespace: namespace).compactMap { RegisteredCluster(secret: $0.body) }
            .sorted { $0.name < $1.name }
    }

    /// Records what this model's Argo CD reaches at `server`: the member's own model (its nodes, kube-system, what
    /// it runs), without its git server and its own Argo CD's Applications, which are not the fleet's to sync. The
    /// cluster Secret itself is applied like any object; this is the far side of it.
    /// - Parameters:
    ///   - member: the member cluster's model.
    ///   - server: its API server URL, as its cluster Secret names it.
    public mutating func registerFleetMember(_ member: SimulatedCluster, server: String) {
        var copy = member
        copy.gitServer = nil
        copy.fleetMembers = nil
        var members = fleetMembers ?? [:]
        if let previous = members[server] {
            // A member joining again keeps what the fleet deployed there.
            for (key, object) in previous.objects where object.owner != nil && copy.objects[key] == nil {
                copy.objects[key] = object
            }
        }
        members[server] = copy
        fleetMembers = members
    }

    /// The model of the cluster an Application deploys to: nil for this cluster.
    func remoteModel(forApplication key: String) -> (server: String, model: SimulatedCluster?)? {
        let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2,
            let app = objects[Self.key(kind: "Application", namespace: parts[0], name: parts[1])],
            let server = ApplicationStatus.remoteServer(app.body["spec", "destination", "server"]?.string)
        else { return nil }
        return (server, fleetMembers?[server])
    }

    /// Objects the Applications `removed` deployed to other clusters are deleted with them (resources finalizer).
    mutating func pruneFleetMembers(removedApplications removed: Set<String>) {
        guard !removed.isEmpty, var members = fleetMembers else { return }
        for server in Array(members.keys) {
            guard var member = members[server] else { continue }
            member.objects = member.objects.filter { !removed.contains($0.value.owner ?? "") }
            members[server] = member
        }
        fleetMembers = members
    }

    // MARK: ApplicationSets

    /// The owner recorded on the Applications an ApplicationSet generated.
    static func applicationSetOwner(_ key: String) -> String { "ApplicationSet:\(key)" }

    /// Expands every ApplicationSet as Argo CD's ApplicationSet controller does: its generators give parameter sets
    /// (`clusters` from the cluster Secrets by label selector, `list` from its elements, `matrix` as the cartesian
    /// product of two), each renders the template (Go templates with `goTemplate: true`, `{{.name}}`; fasttemplate
    /// otherwise, `{{name}}`) into one Application. Applications it no longer generates are deleted; an
    /// ApplicationSet that cannot be rendered keeps what it generated before and records why, naming its file.
    mutating func expandApplicationSets() {
        var errors: [String: String] = [:]
        var generated: [String: Set<String>] = [:]
        for appSet in objects(kind: "ApplicationSet") {
            let setKey = Self.applicationKey(appSet)
            let namespace = appSet.namespace ?? "argocd"
            do {
                let spec = appSet.body["spec"] ?? .null
                let template = try TemplateRenderer(spec: spec)
                var names: Set<String> = []
                var applications: [StoredObject] = []
                for parameters in try generate(spec["generators"]?.array ?? [], namespace: namespace, depth: 0) {
                    let rendered = try template.render(spec["template"] ?? .null, parameters)
                    guard let name = rendered["metadata", "name"]?.string, Names.isDNSLabel(name) || isSubdomain(name)
                    else {
                        throw ShoalError(
                            .invalidInput,
                            "the template renders the Application name '\(rendered["metadata", "name"]?.string ?? "")',"
                                + " which is not a valid name")
                    }
                    guard names.insert(name).inserted else {
                        throw ShoalError(.invalidInput, "two generated Applications are named \(name)")
                    }
                    var metadata = rendered["metadata"]?.object ?? [:]
                    metadata["namespace"] = .string(namespace)
                    let body: ManifestValue = .object([
                        "apiVersion": .string("argoproj.io/v1alpha1"), "kind": .string("Application"),
                        "metadata": .object(metadata), "spec": rendered["spec"] ?? .object([:]),
                    ])
                    applications.append(
                        StoredObject(
                            apiVersion: "argoproj.io/v1alpha1", kind: "Application", namespace: namespace, name: name,
                            source: appSet.source, owner: Self.applicationSetOwner(setKey), body: body))
                }
                for application in applications {
                    let key = Self.key(kind: "Application", namespace: namespace, name: application.name)
                    if let existing = objects[key], existing.owner != application.owner {
                        throw ShoalError(
                            .invalidInput,
                            "the Application \(application.name) exists already and is not owned by this ApplicationSet"
                        )
                    }
                }
                for application in applications {
                    let key = Self.key(kind: "Application", namespace: namespace, name: application.name)
                    if objects[key]?.body != application.body { objects[key] = application }
                }
                generated[setKey] = names
            } catch {
                errors[setKey] = "\(appSet.source): ApplicationSet \(appSet.name): \(error)"
                generated[setKey] = nil
            }
        }
        for (key, object) in objects where object.kind == "Application" {
            guard let owner = object.owner, owner.hasPrefix("ApplicationSet:") else { continue }
            let setKey = String(owner.dropFirst("ApplicationSet:".count))
            if errors[setKey] != nil { continue }
            if !(generated[setKey]?.contains(object.name) ?? false) { objects[key] = nil }
        }
        applicationSetErrors = errors.isEmpty ? nil : errors
    }

    private func isSubdomain(_ name: String) -> Bool {
        name.utf8.count <= 253
            && name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy {
                Names.isDNSLabel(String($0))
            }
    }

    /// The parameter sets of a list of generators (each generator's sets, one after the other).
    private func generate(_ generators: [ManifestValue], namespace: String, depth: Int) throws -> [[String: String]] {
        guard depth < 3 else { throw ShoalError(.invalidInput, "generators nested too deeply") }
        var sets: [[String: String]] = []
        for generator in generators {
            sets += try generate(generator, namespace: namespace, depth: depth)
        }
        return sets
    }

    private func generate(_ generator: ManifestValue, namespace: String, depth: Int) throws -> [[String: String]] {
        let kinds = (generator.object ?? [:]).keys.filter { $0 != "selector" && $0 != "template" }.sorted()
        guard kinds.count == 1, let kind = kinds.first, let body = generator[kind] else {
            throw ShoalError(.invalidInput, "a generator must name exactly one kind, got \(kinds)")
        }
        var sets: [[String: String]]
        switch kind {
        case "clusters":
            let values = body["values"]?.stringMap ?? [:]
            let selector = body["selector"] ?? .null
            var clusters = registeredClusters(namespace: namespace)
            if selector == .null || selector.object?.isEmpty == true {
                // Without a selector the local cluster is included even without a Secret of its own.
                if !clusters.contains(where: { $0.server == ApplicationStatus.inClusterServer }) {
                    clusters.append(
                        RegisteredCluster(
                            name: "in-cluster", server: ApplicationStatus.inClusterServer, labels: [:],
                            annotations: [:], secret: ""))
                }
            } else {
                clusters = try clusters.filter { try Self.matches(selector, labels: $0.labels) }
            }
            sets = clusters.map { cluster in
                var parameters = cluster.parameters
                for (key, value) in values { parameters["values.\(key)"] = value }
                return parameters
            }
        case "list":
            guard body["elementsYaml"] == nil else {
                throw ShoalError(.invalidInput, "list generator: elementsYaml is not modelled by the simulated Argo CD")
            }
            sets = (body["elements"]?.array ?? []).map { element in
                var parameters: [String: String] = [:]
                Self.flatten(element, prefix: "", into: &parameters)
                return parameters
            }
        case "matrix":
            let children = body["generators"]?.array ?? []
            guard children.count == 2 else {
                throw ShoalError(.invalidInput, "matrix generator: exactly 2 child generators, got \(children.count)")
            }
            let left = try generate(children[0], namespace: namespace, depth: depth + 1)
            let right = try generate(children[1], namespace: namespace, depth: depth + 1)
            sets = left.flatMap { first in right.map { first.merging($0) { _, second in second } } }
        default:
            throw ShoalError(
                .invalidInput, "the \(kind) generator is not modelled by the simulated Argo CD (clusters, list, matrix)"
            )
        }
        if let selector = generator["selector"] {
            sets = try sets.filter { try Self.matches(selector, labels: $0) }
        }
        return sets
    }

    static func flatten(_ value: ManifestValue, prefix: String, into result: inout [String: String]) {
        switch value {
        case .object(let members):
            for (key, member) in members {
                flatten(member, prefix: prefix.isEmpty ? key : "\(prefix).\(key)", into: &result)
            }
        case .array(let items):
            result[prefix] = items.map(\.canonicalText).joined(separator: ",")
        case .null:
            result[prefix] = ""
        default:
            result[prefix] = value.string ?? ""
        }
    }

    /// A Kubernetes label selector: `matchLabels` and `matchExpressions` (In, NotIn, Exists, DoesNotExist).
    static func matches(_ selector: ManifestValue, labels: [String: String]) throws -> Bool {
        for (key, value) in selector["matchLabels"]?.stringMap ?? [:] where labels[key] != value { return false }
        for expression in selector["matchExpressions"]?.array ?? [] {
            let key = expression["key"]?.string ?? ""
            let values = (expression["values"]?.array ?? []).compactMap(\.string)
            switch expression["operator"]?.string ?? "" {
            case "In": if !values.contains(labels[key] ?? "\u{0}") { return false }
            case "NotIn": if let value = labels[key], values.contains(value) { return false }
            case "Exists": if labels[key] == nil { return false }
            case "DoesNotExist": if labels[key] != nil { return false }
            case let other: throw ShoalError(.invalidInput, "selector operator '\(other)' is not valid")
            }
        }
        return true
    }
}

/// Renders an ApplicationSet's template with one parameter set, in Argo CD's two modes: Go templates
/// (`goTemplate: true`: `{{.name}}`, `{{.metadata.labels.KEY}}`, `{{index .metadata.labels "KEY"}}`; a missing key
/// renders `<no value>`, or fails with `missingkey=error`) and fasttemplate (`{{name}}`, `{{metadata.labels.KEY}}`;
/// an unknown parameter is left as written). Functions and pipelines are not modelled and fail the rendering.
struct TemplateRenderer {
    var goTemplate: Bool
    var missingKeyError: Bool

    init(spec: ManifestValue) throws {
        goTemplate = spec["goTemplate"]?.bool ?? false
        let options = (spec["goTemplateOptions"]?.array ?? []).compactMap(\.string)
        missingKeyError = options.contains("missingkey=error")
        if spec["templatePatch"] != nil {
            throw ShoalError(.invalidInput, "templatePatch is not modelled by the simulated Argo CD")
        }
    }

    func render(_ template: ManifestValue, _ parameters: [String: String]) throws -> ManifestValue {
        switch template {
        case .string(let text): return .string(try render(text, parameters))
        case .array(let items): return .array(try items.map { try render($0, parameters) })
        case .object(let members):
            var result: [String: ManifestValue] = [:]
            for (key, value) in members { result[try render(key, parameters)] = try render(value, parameters) }
            return .object(result)
        default: return template
        }
    }

    func render(_ text: String, _ parameters: [String: String]) throws -> String {
        guard text.contains("{{") else { return text }
        var output = ""
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            output += rest[..<open.lowerBound]
            guard let close = rest.range(of: "}}", range: open.upperBound..<rest.endIndex) else {
                if goTemplate { throw ShoalError(.invalidInput, "template: unclosed action in '\(text)'") }
                output += rest[open.lowerBound...]
                return output
            }
            let expression = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            if goTemplate {
                output += try goValue(String(expression), parameters)
            } else if let value = parameters[expression] {
                output += value
            } else {
                output += rest[open.lowerBound..<close.upperBound]
            }
            rest = rest[close.upperBound...]
        }
        return output + rest
    }

    private func goValue(_ expression: String, _ parameters: [String: String]) throws -> String {
        let key: String
        if expression.hasPrefix(".") && !expression.contains(" ") && !expression.contains("|") {
            key = String(expression.dropFirst())
        } else if expression.hasPrefix("index ") {
            let parts = expression.dropFirst("index ".count).split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[0].hasPrefix("."), parts[1].hasPrefix("\""), parts[1].hasSuffix("\""),
                parts[1].count >= 2
            else { throw ShoalError(.invalidInput, "template: cannot evaluate '{{\(expression)}}'") }
            key = String(parts[0].dropFirst()) + "." + String(parts[1].dropFirst().dropLast())
        } else {
            throw ShoalError(
                .invalidInput, "template: '{{\(expression)}}' is not modelled (only .KEY and index .MAP \"KEY\")")
        }
        if let value = parameters[key] { return value }
        if missingKeyError {
            throw ShoalError(
                .invalidInput,
                "template: executing \"\" at <.\(key)>: map has no entry for key "
                    + "\"\(key.split(separator: ".").last ?? "")\""
            )
        }
        return "<no value>"
    }
}
