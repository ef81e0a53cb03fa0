import ShoalSupport

/// Where a user application's manifests come from: a directory of the GitOps repository itself, or a directory of
/// another git repository.
public struct AppSource: Sendable, Equatable {
    /// The other repository, or nil for the GitOps repository.
    public var repoURL: String?
    /// The directory inside the repository.
    public var path: String
    /// The branch, tag or commit (`HEAD` unless `?ref=` says otherwise); a chart's exact version.
    public var targetRevision: String
    /// A Helm chart of the repository `repoURL` (a chart repository), at the exact version `targetRevision`.
    public var chart: String?

    public init(repoURL: String?, path: String, targetRevision: String = "HEAD") {
        self.repoURL = repoURL
        self.path = path
        self.targetRevision = targetRevision
    }

    /// The grammar, for error messages.
    public static let grammar =
        "a directory of the GitOps repository (examples/web), an http(s) git URL, '//' and a directory "
        + "(https://git.example.com/team/apps.git//guestbook, optionally ?ref=v1.2), or helm:, a chart repository "
        + "URL, '//', the chart and @ its exact version (helm:https://stefanprodan.github.io/podinfo//podinfo@6.7.1)"

    /// `helm:REPOSITORY//CHART@VERSION`.
    static func parseChart(_ text: String, invalid: (String) -> ShoalError) throws -> AppSource {
        let rest = String(text.dropFirst("helm:".count))
        guard rest.hasPrefix("https://") || rest.hasPrefix("http://"),
            let split = rest.range(of: "//", range: rest.range(of: "://")!.upperBound..<rest.endIndex)
        else { throw invalid("a chart needs an http(s) repository URL, '//' and CHART@VERSION") }
        let repository = String(rest[..<split.lowerBound])
        let release = String(rest[split.upperBound...])
        guard !repository.contains("@"), !repository.contains("?"), repository.dropFirst(8).count > 0 else {
            throw invalid("the chart repository URL must have a host and no credentials")
        }
        let parts = release.split(separator: "@", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, Names.isDNSLabel(parts[0]) else {
            throw invalid("give the chart as CHART@VERSION, CHART a lowercase name")
        }
        guard isExactVersion(parts[1]) else {
            throw invalid("the chart version must be exact (1.2.3 or v1.2.3), not a range")
        }
        var source = AppSource(repoURL: repository, path: "", targetRevision: parts[1])
        source.chart = parts[0]
        return source
    }

    /// `1.2.3`, `v1.2.3`, with an optional `-pre` or `+build` suffix.
    static func isExactVersion(_ text: String) -> Bool {
        let core = text.hasPrefix("v") ? text.dropFirst() : Substring(text)
        let main = core.split(whereSeparator: { $0 == "-" || $0 == "+" }).first.map(String.init) ?? ""
        let numbers = main.split(separator: ".", omittingEmptySubsequences: false)
        guard numbers.count == 3, numbers.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) else { return false }
        return text.utf8.count <= 64
            && core.unicodeScalars.allSatisfy {
                switch $0 {
                case "a"..."z", "A"..."Z", "0"..."9", ".", "-", "+": true
                default: false
                }
            }
    }

    /// Parses `PATH` or `URL//PATH[?ref=REVISION]`.
    /// - Throws: `ShoalError(.invalidInput)` with a one-line reason.
    public static func parse(_ text: String) throws -> AppSource {
        func invalid(_ why: String) -> ShoalError {
            ShoalError(.invalidInput, "invalid application source '\(printable(text))': \(why); use \(grammar)")
        }
        guard !text.isEmpty, text.utf8.count <= 2048 else { throw invalid("empty or longer than 2048 bytes") }
        guard text.unicodeScalars.allSatisfy({ $0.value > 32 && $0.value < 127 }) else {
            throw invalid("spaces and control characters are not allowed")
        }
        if text.hasPrefix("helm:") { return try parseChart(text, invalid: invalid) }
        guard let scheme = text.range(of: "://") else {
            try checkPath(text, invalid: invalid)
            let first = text.split(separator: "/").first.map(String.init) ?? text
            if [ArgoApplications.appsDirectory, ArgoCDSelfManagement.directory, ".git"].contains(first) {
                throw invalid("'\(first)/' holds shoal's own Applications and Argo CD")
            }
            return AppSource(repoURL: nil, path: text)
        }
        let schemeName = text[..<scheme.lowerBound]
        guard schemeName == "https" || schemeName == "http" else { throw invalid("only http:// and https:// URLs") }
        var rest = String(text[scheme.upperBound...])
        var revision = "HEAD"
        if let query = rest.range(of: "?ref=") {
            revision = String(rest[query.upperBound...])
            rest = String(rest[..<query.lowerBound])
            guard isRevision(revision) else { throw invalid("?ref= must name a branch, tag or commit") }
        } else if rest.contains("?") {
            throw invalid("the only query allowed is ?ref=REVISION")
        }
        guard let split = rest.range(of: "//") else { throw invalid("no '//' between the repository and the path") }
        let authorityAndRepo = String(rest[..<split.lowerBound])
        let path = String(rest[split.upperBound...])
        let host = authorityAndRepo.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        guard !host.isEmpty, !host.contains("@"), authorityAndRepo.contains("/") else {
            throw invalid("the URL needs a host and a repository, and no credentials")
        }
        try checkPath(path, invalid: invalid)
        return AppSource(
            repoURL: "\(schemeName)://\(authorityAndRepo)", path: path, targetRevision: revision)
    }

    private static func checkPath(_ path: String, invalid: (String) -> ShoalError) throws {
        guard ManifestFile.isSafeRelativePath(path), !path.hasPrefix("-"),
            path.unicodeScalars.allSatisfy({
                switch $0 {
                case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-", "/": true
                default: false
                }
            })
        else { throw invalid("the path must be relative, without '..', of letters, digits, '.', '_', '-' and '/'") }
    }

    private static func isRevision(_ text: String) -> Bool {
        guard (1...128).contains(text.utf8.count), !text.hasPrefix("-"), !text.contains("..") else { return false }
        return text.unicodeScalars.allSatisfy {
            switch $0 {
            case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-", "/", "+": true
            default: false
            }
        }
    }

    static func printable(_ text: String) -> String {
        String(String(text.unicodeScalars.map { $0.value < 32 || $0.value == 127 ? "?" : Character($0) }).prefix(120))
    }
}

/// A user application: one Application in `apps/NAME.yaml`, deployed into the namespace `NAME`.
public struct UserApplication: Sendable, Equatable {
    public var name: String
    public var source: AppSource

    public init(name: String, source: AppSource) {
        self.name = name
        self.source = source
    }

    /// Names shoal's own Applications use.
    public static let reservedNames: Set<String> = Set(
        ["root", "monitoring", ArgoCDSelfManagement.applicationName] + MonitoringHelm.charts.map(\.applicationName))

    /// Parses `NAME=SOURCE` (`--app`).
    /// - Throws: `ShoalError(.invalidInput)` with a one-line reason.
    public static func parse(_ text: String) throws -> UserApplication {
        guard let equals = text.firstIndex(of: "=") else {
            throw ShoalError(
                .invalidInput, "invalid --app '\(AppSource.printable(text))': use NAME=SOURCE, SOURCE being "
                    + AppSource.grammar)
        }
        return try UserApplication(
            checkedName: String(text[..<equals]), source: AppSource.parse(String(text[text.index(after: equals)...])))
    }

    /// - Throws: `ShoalError(.invalidInput)` for a name that is not a DNS label or is one of shoal's own.
    public init(checkedName name: String, source: AppSource) throws {
        guard Names.isDNSLabel(name) else {
            throw ShoalError(
                .invalidInput,
                "invalid application name '\(AppSource.printable(name))': use 1-63 lowercase letters, digits and '-'")
        }
        guard !Self.reservedNames.contains(name) else {
            throw ShoalError(.invalidInput, "the application name '\(name)' is shoal's own; choose another")
        }
        self.init(name: name, source: source)
    }

    /// The file of its Application.
    public var applicationPath: String { "\(ArgoApplications.appsDirectory)/\(name).yaml" }

    /// The values file of a chart application, in the GitOps repository.
    public var valuesPath: String { "values/\(name).yaml" }

    /// The files a chart application needs beside its Application: its values file (none for other sources).
    public func valueFiles() -> [ManifestFile] { valuesFile().map { [$0] } ?? [] }

    /// A chart application's values file to edit; nil for other sources.
    public func valuesFile() -> ManifestFile? {
        guard let chart = source.chart else { return nil }
        return ManifestFile(
            path: valuesPath,
            contents: "# Values of the Helm chart \(chart) \(source.targetRevision) for the application \(name).\n{}\n")
    }

    /// `apps/NAME.yaml`. A chart application has two sources: the chart at its version, with the values file of the
    /// GitOps repository (`$values/values/NAME.yaml`), and that repository as the `values` reference.
    /// - Parameters:
    ///   - repoURL: the GitOps repository's address, for a source inside it.
    ///   - targetRevision: the revision the GitOps repository is followed at.
    public func application(gitopsRepoURL repoURL: String, targetRevision: String = "HEAD") -> ManifestFile {
        var spec = ApplicationSpec(
            name: name, repoURL: source.repoURL ?? repoURL, path: source.path, destinationNamespace: name)
        spec.targetRevision = source.repoURL == nil ? targetRevision : source.targetRevision
        guard let chart = source.chart else {
            return ManifestFile(path: applicationPath, contents: ArgoApplications.application(spec))
        }
        let sources: YAML = [
            [
                "repoURL": .string(source.repoURL ?? ""),
                "chart": .string(chart),
                "targetRevision": .string(source.targetRevision),
                "helm": ["releaseName": .string(name), "valueFiles": [.string("$values/\(valuesPath)")]],
            ],
            ["repoURL": .string(repoURL), "targetRevision": .string(targetRevision), "ref": "values"],
        ]
        return ManifestFile(
            path: applicationPath, contents: ArgoApplications.document(spec, sources: sources).document())
    }
}
