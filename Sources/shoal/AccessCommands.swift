import ArgumentParser
import Cluster
import Coordinator
import Foundation
import GitOps
import Protocol
import ShoalSupport

/// A run's credential files on this host: `OUTPUT/kubeconfigs/WORKFLOW/`, each 0600.
struct RunCredentials {
    let workflow: String
    /// The absolute output directory.
    let output: String

    init(workflow: String, output: String) {
        self.workflow = workflow
        self.output = absolutePath(output)
    }

    var directory: String { "\(output)/kubeconfigs/\(workflow)" }
    var kubeconfig: String { "\(directory)/kubeconfig" }

    /// Copies the workflow's credential files (the sensitive artifacts under `kubeconfigs/WORKFLOW/`) from the
    /// coordinator into this host's output tree, 0600, as `shoal get --sensitive` does.
    /// - Returns: the absolute paths written.
    /// - Throws: `ShoalError` when the coordinator cannot be reached or refuses.
    func fetch(from coordinator: String, source: SourceOptions) async throws -> [String] {
        let workflow = workflow
        let reply = try await source.withClient(coordinator) { try $0.artifacts(workflow, sensitive: true) }
        var written: [String] = []
        for artifact in reply.artifacts {
            guard let path = artifact.path, Artifact.isOutputPath(path, workflow: workflow),
                path.hasPrefix("kubeconfigs/\(workflow)/"), artifact.sensitive
            else { continue }
            try SecureFile.write(artifact.data, to: "\(output)/\(path)", mode: 0o600)
            written.append("\(output)/\(path)")
        }
        return written
    }

    /// The kubeconfig's path, fetched from `coordinator` first when one is given.
    /// - Throws: `ShoalError(.notFound)` when the run has no kubeconfig.
    func kubeconfigPath(coordinator: String?, source: SourceOptions) async throws -> String {
        if let coordinator { _ = try await fetch(from: coordinator, source: source) }
        guard FileManager.default.isReadableFile(atPath: kubeconfig) else {
            let hint =
                coordinator == nil
                ? "did its provision step succeed? (`shoal status \(workflow)`); a run on a coordinator: add "
                    + "--coordinator URL"
                : "the coordinator has none: did its provision step succeed?"
            throw ShoalError(.notFound, "no kubeconfig for \(workflow) at \(kubeconfig): \(hint)")
        }
        return kubeconfig
    }
}

/// The contexts shoal added to users' kubeconfigs for one workflow, recorded in the output tree so that
/// `shoal destroy` takes out exactly those.
enum KubeconfigMerges {
    struct Entry: Codable, Equatable {
        /// The kubeconfig that was changed.
        var file: String
        /// The name of the cluster, user and context added.
        var context: String
    }

    static func defaultContext(_ workflow: String) -> String { "shoal-\(workflow)" }

    /// Where the merges of a workflow are noted.
    static func record(workflow: String, output: String) -> String {
        "\(absolutePath(output))/.shoal/kubeconfig-merges/\(workflow)"
    }

    /// The merges noted for `workflow`; a record of one path only (written by older versions) names the default
    /// context.
    static func entries(workflow: String, output: String) -> [Entry] {
        guard let data = FileManager.default.contents(atPath: record(workflow: workflow, output: output)) else {
            return []
        }
        if let entries = try? JSONDecoder().decode([Entry].self, from: data) { return entries }
        let path = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return path.isEmpty ? [] : [Entry(file: path, context: defaultContext(workflow))]
    }

    /// A kubeconfig context name: what kubectl accepts on a command line without quoting, 1 to 100 characters.
    static func validateContextName(_ name: String) throws {
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyz0123456789-_.@:")
        guard (1...100).contains(name.count), name.unicodeScalars.allSatisfy({ allowed.contains($0) }),
            let first = name.unicodeScalars.first, CharacterSet.alphanumerics.contains(first)
        else {
            throw ValidationError(
                "--context must be 1 to 100 lowercase letters, digits, '-', '_', '.', '@' or ':', starting with a "
                    + "letter or digit, got '\(Names.printable(String(name.prefix(100))))'")
        }
    }

    /// Merges the workflow's kubeconfig into the user's (`$KUBECONFIG`'s first file, else `~/.kube/config`) after
    /// a backup of that file, and notes the merge for `shoal destroy`.
    /// - Returns: the file changed and its backup (nil when there was no file).
    /// - Throws: `ShoalError` when the kubeconfig is missing, a foreign entry has that name (without `force`), or a
    ///   file cannot be written.
    static func merge(workflow: String, output: String, context: String, force: Bool) throws
        -> (file: String, backup: String?)
    {
        let source = RunCredentials(workflow: workflow, output: output).kubeconfig
        guard let data = FileManager.default.contents(atPath: source) else {
            throw ShoalError(.notFound, "no kubeconfig at \(source) to merge")
        }
        let target = absolutePath(KubeconfigFile.defaultPath())
        // Checked before the backup, so that a refused merge leaves nothing behind.
        if !force { try KubeconfigFile.checkMergeable(context, into: target) }
        let backup = try KubeconfigFile.backup(target)
        try KubeconfigFile.merge(
            kubeconfig: String(decoding: data, as: UTF8.self), as: context, into: target, owner: workflow,
            force: force)
        var entries = entries(workflow: workflow, output: output)
        let entry = Entry(file: target, context: context)
        if !entries.contains(entry) { entries.append(entry) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try SecureFile.write(try encoder.encode(entries), to: record(workflow: workflow, output: output), mode: 0o600)
        return (target, backup)
    }

    /// Takes out of each kubeconfig exactly the entries shoal added there for `workflow`, and prints each.
    /// - Throws: `ShoalError` when a kubeconfig cannot be read or written.
    static func removeAll(workflow: String, output: String) throws {
        var entries = entries(workflow: workflow, output: output)
        if entries.isEmpty {
            // Runs before the record existed, or a record deleted by hand: shoal's own entries only, by owner.
            entries = [Entry(file: KubeconfigFile.defaultPath(), context: defaultContext(workflow))]
        }
        for entry in entries {
            if try KubeconfigFile.remove(name: entry.context, owner: workflow, from: entry.file) {
                print("kubeconfig: context \(entry.context) removed from \(entry.file)")
            }
        }
        try? FileManager.default.removeItem(atPath: record(workflow: workflow, output: output))
    }
}

struct KubeconfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubeconfig",
        abstract: "Print where a workflow's kubeconfig is, print it to a pipe, or merge it into yours.",
        discussion: HelpExamples.discussion(
            """
            Without options: the absolute path of the run's kubeconfig (OUTPUT/kubeconfigs/WORKFLOW/kubeconfig, \
            mode 0600), for `export KUBECONFIG=$(shoal kubeconfig WORKFLOW)`. With --print: the kubeconfig itself \
            on standard output, which must then be a pipe or a file (it is a secret: it is never written to a \
            terminal, nor logged).

            With --merge: adds the cluster, user and context, all named shoal-WORKFLOW (or --context NAME), to the \
            first file of $KUBECONFIG, else ~/.kube/config. The file is first copied beside itself as \
            NAME.shoal-backup-TIMESTAMP (0600); its current context stays; every other entry is written back as \
            it was; the file is replaced atomically, 0600. An entry of that name that shoal did not write is \
            refused unless --force. `shoal destroy` takes out exactly the entries it added.

            With --coordinator the kubeconfig is fetched from the coordinator first (as `shoal get --sensitive` \
            does) into -d DIR.
            """, HelpExamples.kubeconfig))

    @Argument(help: "The workflow id.", completion: .workflowIDs) var workflow: String
    @Flag(help: "Merge into $KUBECONFIG's first file, else ~/.kube/config.") var merge = false
    @Option(
        name: .customLong("context"),
        help: ArgumentHelp("With --merge: the name of the cluster, user and context (default shoal-WORKFLOW).",
            valueName: "name"))
    var kubeContext: String?
    @Flag(help: "With --merge: replace an entry of that name that shoal did not write.") var force = false
    @Flag(name: [.short, .long], help: "Write the kubeconfig to standard output (a pipe or a file, never a terminal).")
    var print = false
    @OptionGroup var source: SourceOptions

    func validate() throws {
        try checkWorkflowID(workflow)
        if let kubeContext {
            guard merge else { throw ValidationError("--context goes with --merge") }
            try KubeconfigMerges.validateContextName(kubeContext)
        }
        if force && !merge { throw ValidationError("--force goes with --merge") }
        if print && merge { throw ValidationError("--print and --merge exclude each other") }
    }

    func run() async throws {
        do {
            let credentials = RunCredentials(workflow: workflow, output: source.output)
            let path = try await credentials.kubeconfigPath(coordinator: source.coordinator, source: source)
            if print {
                guard isatty(STDOUT_FILENO) == 0 else {
                    fail(
                        "the kubeconfig is a secret and standard output is a terminal: redirect it "
                            + "(`shoal kubeconfig \(workflow) --print > FILE`), or use its path \(path)")
                }
                let data = FileManager.default.contents(atPath: path) ?? Data()
                FileHandle.standardOutput.write(data)
                return
            }
            guard merge else {
                Swift.print(path)
                return
            }
            let context = kubeContext ?? KubeconfigMerges.defaultContext(workflow)
            let (file, backup) = try KubeconfigMerges.merge(
                workflow: workflow, output: source.output, context: context, force: force)
            Swift.print("kubeconfig: context \(context) merged into \(file)")
            if let backup { Swift.print("backup: \(backup)") }
            Swift.print("use it: kubectl config use-context \(context)   (or kubectl --context \(context) ...)")
        } catch let error as ShoalError {
            fail(error.description)
        }
    }
}

struct CredentialsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credentials",
        abstract: "Show where a workflow's logins are: Argo CD and Grafana admin passwords, a Headlamp token.",
        discussion: HelpExamples.discussion(
            """
            One line per service: its name, the user, and the absolute path of the file (mode 0600) that holds \
            its secret. The secret itself is printed only with --show, and only to standard output.

            The Argo CD and Grafana admin passwords are written by create (OUTPUT/kubeconfigs/WORKFLOW/). A \
            Headlamp token is minted when asked for: `kubectl create token headlamp-admin` (valid 24 hours) with \
            the run's kubeconfig, written to OUTPUT/kubeconfigs/WORKFLOW/headlamp-token; a demo run's simulated \
            cluster mints none. With --coordinator the files are fetched from the coordinator first (as \
            `shoal get --sensitive` does) into -d DIR.
            """, HelpExamples.credentials))

    enum Service: String, CaseIterable, ExpressibleByArgument {
        case argocd, grafana, headlamp
    }

    @Argument(help: "The workflow id.", completion: .workflowIDs) var workflow: String
    @Argument(help: "Only this service: argocd, grafana or headlamp.") var service: Service?
    @Flag(help: "Also print the secrets themselves (to standard output).") var show = false
    @OptionGroup var source: SourceOptions

    func validate() throws { try checkWorkflowID(workflow) }

    func run() async throws {
        do {
            let snapshot = try await source.workflow(workflow)
            let credentials = RunCredentials(workflow: workflow, output: source.output)
            if let coordinator = source.coordinator {
                _ = try await credentials.fetch(from: coordinator, source: source)
            }
            let request = snapshot.request
            var services = service.map { [$0] } ?? Service.allCases
            if service == nil {
                services.removeAll {
                    ($0 == .argocd && !request.argocd) || ($0 == .grafana && !request.monitoring)
                        || ($0 == .headlamp && !(request.monitoring && request.headlamp))
                }
            }
            var rows: [[String]] = []
            for service in services {
                rows.append(try await row(service, snapshot: snapshot, credentials: credentials))
            }
            let header = ["SERVICE", "USER", "SECRET FILE"] + (show ? ["SECRET"] : [])
            let widths = header.indices.map { column in
                ([header] + rows).map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0
            }
            for line in [header] + rows {
                let cells = line.enumerated().map { $0 == line.count - 1 ? $1 : pad($1, widths[$0]) }
                Swift.print(cells.joined(separator: "  "))
            }
        } catch let error as ShoalError {
            fail(error.description)
        }
    }

    /// SERVICE, USER, FILE and (with --show) the secret.
    private func row(_ service: Service, snapshot: WorkflowSnapshot, credentials: RunCredentials) async throws
        -> [String]
    {
        let request = snapshot.request
        let file: String
        let user: String
        switch service {
        case .argocd:
            guard request.argocd else {
                throw ShoalError(.notFound, "workflow \(workflow) has no Argo CD (--no-argocd)")
            }
            (user, file) = ("admin", "\(credentials.directory)/argocd-admin-password")
        case .grafana:
            guard request.monitoring else {
                throw ShoalError(.notFound, "workflow \(workflow) has no Grafana (--no-monitoring)")
            }
            (user, file) = ("admin", "\(credentials.directory)/grafana-admin-password")
        case .headlamp:
            guard request.monitoring && request.headlamp else {
                throw ShoalError(.notFound, "workflow \(workflow) has no Headlamp (--no-headlamp)")
            }
            user = MonitoringStack.headlampAdminServiceAccount
            file = "\(credentials.directory)/headlamp-token"
            guard request.realDeployment else {
                return ["headlamp", user, "none (demo mode: the simulated cluster mints no token)"]
                    + (show ? ["-"] : [])
            }
            do {
                try await mintHeadlampToken(into: file, credentials: credentials)
            } catch let error as ShoalError where self.service == nil {
                // The passwords are still worth showing when the cluster cannot mint a token right now.
                FileDescriptorIO.printError("warning: no Headlamp token: \(error.description)\n")
                return ["headlamp", user, "none (no token minted; see the warning)"] + (show ? ["-"] : [])
            }
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ShoalError(
                .notFound,
                "no \(service.rawValue) secret at \(file): did the workflow's steps succeed? "
                    + "(`shoal status \(workflow)`)")
        }
        var row = [service.rawValue, user, file]
        if show {
            row.append(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return row
    }

    /// `kubectl create token headlamp-admin` with the run's kubeconfig; the token goes to `file` only.
    private func mintHeadlampToken(into file: String, credentials: RunCredentials) async throws {
        let kubeconfig = try await credentials.kubeconfigPath(coordinator: nil, source: source)
        let spec = MonitoringStackSpec(instance: workflow)
        let result = try await ProcessRunner().run(
            "kubectl",
            [
                "--kubeconfig", kubeconfig, "create", "token", MonitoringStack.headlampAdminServiceAccount, "-n",
                spec.namespace, "--duration", "24h",
            ], timeout: .seconds(30))
        let token = result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.succeeded, !token.isEmpty else {
            throw ShoalError(
                .commandFailed, "kubectl create token \(MonitoringStack.headlampAdminServiceAccount) failed",
                cause: result.standardErrorTail())
        }
        try SecureFile.write(token + "\n", to: file, mode: 0o600)
    }
}
