import Agents
import ArgumentParser
import Cluster
import Foundation
import GitOps
import Protocol
import ShoalSupport

struct AppCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "app",
        abstract: "Add or remove a user application of a workflow: an Application in apps/ of its GitOps repository.",
        discussion: HelpExamples.app,
        subcommands: [AppAddCommand.self, AppRemoveCommand.self])
}

/// The options `app add` and `app remove` share.
struct AppTarget: ParsableArguments {
    @Argument(help: "The workflow id.") var workflow: String
    @Argument(help: "The application's name (a DNS label; also its namespace).") var name: String
    @OptionGroup var directory: OutputDirectoryOption
    @Option(help: "Base URL of the in-cluster git server, e.g. http://127.0.0.1:8080 for a port-forward.")
    var pushURL: String?

    var output: String { directory.path }

    func validate() throws {
        do {
            try Names.validateWorkflowID(workflow)
            _ = try UserApplication(checkedName: name, source: AppSource(repoURL: nil, path: "x"))
            try pushURL.map(GitOpsAddresses.validatePushURL)
        } catch let error as ShoalError {
            throw ValidationError(error.message.replacingOccurrences(of: "--gitops-push-url", with: "--push-url"))
        }
    }
}

struct AppAddCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Commit an Application for NAME (apps/NAME.yaml), push it, and ask Argo CD to sync it at once.",
        discussion: HelpExamples.discussion(
            """
            SOURCE is \(AppSource.grammar). A directory of the GitOps repository must exist in \
            OUTPUT/gitops/WORKFLOW and hold manifests or a kustomization.yaml (commit it first, or in the same \
            change: add then commits everything staged in the working copy). The application is deployed into the \
            namespace NAME (created by Argo CD).
            """, HelpExamples.appAdd))

    @OptionGroup var target: AppTarget
    @Argument(help: "A directory of the GitOps repository, GIT-URL//PATH[?ref=REV], or helm:REPO-URL//CHART@VERSION.")
    var source: String
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        do {
            _ = try AppSource.parse(source)
        } catch let error as ShoalError {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        _ = logging.bootstrap(label: "shoal.app")
        do {
            let recorded = try RecordedWorkflow(target.workflow, output: target.output)
            let app = try UserApplication(checkedName: target.name, source: AppSource.parse(source))
            let repository = GitRepository(path: "\(recorded.output)/gitops/\(recorded.id)")
            try AppChanges.checkSource(app.source, repository: repository.path)
            let file = "\(repository.path)/\(app.applicationPath)"
            guard !FileManager.default.fileExists(atPath: file) else {
                throw ShoalError(
                    .invalidInput,
                    "application \(app.name) exists already (\(app.applicationPath)): `shoal app remove "
                        + "\(recorded.id) \(app.name)` first")
            }
            guard let repoURL = try recorded.snapshot.output(MonitoringOutput.self)?.repoURL else {
                throw ShoalError(.notFound, "workflow \(recorded.id) has no GitOps repository (no monitoring step)")
            }
            // A chart's values file is made once; one the user prepared is kept.
            let values = app.valueFiles().filter { !FileManager.default.fileExists(atPath: "\(repository.path)/\($0.path)") }
            try repository.write([app.application(gitopsRepoURL: repoURL)] + values)
            try FleetJoin.refreshApplicationsSet(repository: repository, workflow: recorded.id)
            let commit = try await repository.commitAll(message: "Application \(app.name) from \(source)")
            print("committed \(commit.sha.prefix(12)): \(repository.path)/\(app.applicationPath)")
            try await AppChanges.publish(recorded, pushURL: target.pushURL, show: app.name)
        } catch let error as ShoalError {
            fail(error.description)
        }
    }
}

struct AppRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove NAME's Application from apps/, push, and let Argo CD prune it and its resources.",
        discussion: HelpExamples.discussion(
            "The application's own manifests (a directory of the repository) stay; only apps/NAME.yaml goes.",
            HelpExamples.appRemove))

    @OptionGroup var target: AppTarget
    @Argument(help: "Optional: the source it was added with (ignored; accepted for symmetry with add).")
    var source: String?
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        _ = logging.bootstrap(label: "shoal.app")
        do {
            let recorded = try RecordedWorkflow(target.workflow, output: target.output)
            let app = UserApplication(name: target.name, source: AppSource(repoURL: nil, path: "."))
            let repository = GitRepository(path: "\(recorded.output)/gitops/\(recorded.id)")
            let file = "\(repository.path)/\(app.applicationPath)"
            guard FileManager.default.fileExists(atPath: file) else {
                throw ShoalError(.notFound, "workflow \(recorded.id) has no application \(app.name) (\(file))")
            }
            try FileManager.default.removeItem(atPath: file)
            try FleetJoin.refreshApplicationsSet(repository: repository, workflow: recorded.id)
            let commit = try await repository.commitAll(message: "Remove application \(app.name)")
            print("committed \(commit.sha.prefix(12)): removed \(repository.path)/\(app.applicationPath)")
            try await AppChanges.publish(recorded, pushURL: target.pushURL, show: nil)
        } catch let error as ShoalError {
            fail(error.description)
        }
    }
}

/// What `shoal app` and `shoal gitops push` do after a commit.
enum AppChanges {
    /// A source inside the GitOps repository must be a directory of its working copy holding manifests.
    static func checkSource(_ source: AppSource, repository: String) throws {
        guard source.repoURL == nil else { return }
        let directory = "\(repository)/\(source.path)"
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ShoalError(
                .notFound, "\(source.path) is not a directory of the GitOps repository \(repository): add it first")
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        guard entries.contains(where: { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") })
        else {
            throw ShoalError(.invalidInput, "\(source.path) holds no .yaml, .yml or .json manifest")
        }
    }

    /// Pushes as `shoal gitops push` does (which asks Argo CD to refresh), and shows the Application `show`.
    static func publish(_ recorded: RecordedWorkflow, pushURL: String?, show name: String?) async throws {
        print(try await GitOpsPushCommand.push(recorded, pushURL: pushURL))
        let refresh = await refreshAfterPush(recorded)
        if !refresh.isEmpty { print(refresh) }
        guard let name, !recorded.snapshot.request.realDeployment else { return }
        let cluster = try ValidateCommand.simulatedCluster(recorded)
        let client = cluster.client(gitSource: ValidateCommand.gitSource(recorded))
        guard let app = try await client.applications(namespace: "argocd").first(where: { $0.name == name }) else {
            print("application \(name): not created yet (the root Application syncs apps/)")
            return
        }
        let reason = app.conditions.map(\.message).first ?? app.message
        print("application \(name): \(app.syncStatus)/\(app.healthStatus)" + (app.healthy ? "" : " - \(reason ?? "")"))
    }

    /// Asks Argo CD to refresh every Application after a push: in demo mode in the simulated cluster's state (whose
    /// controller then syncs at once), in real mode through kubectl with the run's kubeconfig.
    /// - Returns: a line for the terminal.
    static func refreshAfterPush(_ recorded: RecordedWorkflow) async -> String {
        guard recorded.snapshot.request.argocd else { return "" }
        if recorded.snapshot.request.realDeployment {
            let kubeconfig = "\(recorded.kubeconfigDirectory)/kubeconfig"
            guard FileManager.default.fileExists(atPath: kubeconfig) else {
                return "no kubeconfig at \(kubeconfig): Argo CD picks the commit up at its next poll"
            }
            let lines = await ApplicationRefresh.request(KubectlClient(kubeconfig: kubeconfig))
            return summary(lines)
        }
        do {
            let cluster = try ValidateCommand.simulatedCluster(recorded)
            let client = cluster.client(gitSource: ValidateCommand.gitSource(recorded))
            let lines = await ApplicationRefresh.request(client)
            try SecureFile.write(
                await client.cluster.encoded(), to: "\(recorded.kubeconfigDirectory)/simulated-cluster.json",
                mode: 0o600)
            return summary(lines)
        } catch {
            return "refresh not requested (\(error)): Argo CD picks the commit up at its next poll"
        }
    }

    private static func summary(_ lines: [String]) -> String {
        let requested = lines.filter { $0.hasPrefix("refresh requested") }.count
        return requested == lines.count
            ? "refresh requested for \(requested) Applications (annotation \(ApplicationRefresh.annotation))"
            : lines.joined(separator: "\n")
    }
}
