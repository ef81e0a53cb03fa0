import Agents
import ArgumentParser
import Cluster
import Foundation
import GitOps
import Protocol
import Logging
import ServiceLifecycle
import ShoalSupport

struct GitOpsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gitops",
        abstract: "Serve GitOps repositories from this host, or push a workflow's repository to its git server.",
        discussion: HelpExamples.gitops,
        subcommands: [GitOpsServeCommand.self, GitOpsPushCommand.self])
}

/// The port `shoal gitops serve` listens on unless told otherwise: next to the coordinator's 7400 and 7401.
let gitopsServeDefaultPort = 7402

struct GitOpsServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the GitOps repositories of an output (or agent work) directory over git smart HTTP.",
        discussion: HelpExamples.discussion(
            """
            A long-running service: serves OUTPUT/gitops/WORKFLOW at http://HOST:\(gitopsServeDefaultPort)/WORKFLOW \
            until SIGTERM or SIGINT, then lets requests in progress finish. Read-only unless --push-token-file is \
            given: then `git push` with that token as the HTTP password (any user name) updates a repository, and \
            a first push to PATH.git creates it. Run it where the repositories are (the monitoring agent's work \
            directory) and start that agent with --gitops-advertise THIS-HOST so the Applications point here.
            """, HelpExamples.gitopsServe))

    @OptionGroup var directory: OutputDirectoryOption
    @Option(help: "Address to listen on, host:port.") var listen = "0.0.0.0:\(gitopsServeDefaultPort)"
    @Option(help: "A 0600 file holding the token pushes must carry (at least 16 characters).")
    var pushTokenFile: String?
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        do {
            let (host, _) = try MonitoringListen.parse(listen)
            guard NetworkAddress.isIPv4(host) || NetworkAddress.isIPv6(host.trimmingCharacters(in: ["[", "]"])) else {
                throw ValidationError("--listen must be IP:port, e.g. 0.0.0.0:\(gitopsServeDefaultPort)")
            }
        } catch let error as ShoalError {
            throw ValidationError(error.message.replacingOccurrences(of: "--gitops-listen", with: "--listen"))
        }
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "shoal.gitops")
        do {
            let (rawHost, port) = try MonitoringListen.parse(listen)
            let host = rawHost.trimmingCharacters(in: ["[", "]"])
            let root = absolutePath(directory.path) + "/gitops"
            try SecureFile.createDirectory(root)
            let token = try pushTokenFile.map(Self.readToken)
            let server = try GitHTTPServer(root: root, host: host, port: port, pushToken: token, logger: logger)
            let service = GitHTTPService(server: server) { bound in
                let shown = host.contains(":") ? "[\(host)]" : host
                let line = "serving \(root) at http://\(shown):\(bound)/" + (token == nil ? " (read-only)" : "") + "\n"
                try? FileDescriptorIO.writeAll(1, Data(line.utf8))
            }
            try await runService(service, logger: logger, exitWithParent: false)
        } catch let error as ShoalError {
            fail(error.description)
        }
    }

    /// The token file must be private: a token others can read is no token.
    static func readToken(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ShoalError(.notFound, "cannot read the push token file \(path)")
        }
        if let mode = SecureFile.mode(of: path), mode & 0o077 != 0 {
            throw ShoalError(.invalidInput, "the push token file \(path) is readable by others: chmod 600 it")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.count >= 16, token.unicodeScalars.allSatisfy({ $0.value > 32 && $0.value < 127 }) else {
            throw ShoalError(.invalidInput, "the push token in \(path) must be 16 or more printable characters")
        }
        return token
    }
}

struct GitOpsPushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Push a workflow's GitOps repository (OUTPUT/gitops/WORKFLOW, its HEAD) to the cluster's git server.",
        discussion: HelpExamples.discussion(
            """
            Commit your change in OUTPUT/gitops/WORKFLOW first, then push: Argo CD syncs the new commit. Where it \
            goes is where the run put the repository: the in-cluster git server (through NodePort 30418 on the \
            first node, or --push-url for a `kubectl port-forward`), the --gitops-remote of the run, or, for a demo \
            run, the simulated cluster's git server in OUTPUT/kubeconfigs/WORKFLOW/simulated-cluster.json. Works \
            from any host that has the output directory.
            """, HelpExamples.gitopsPush))

    @Argument(help: "The workflow id.") var workflow: String
    @OptionGroup var directory: OutputDirectoryOption
    @Option(help: "Base URL of the in-cluster git server, e.g. http://127.0.0.1:8080 for a port-forward.")
    var pushURL: String?
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if let pushURL {
            do {
                try GitOpsAddresses.validatePushURL(pushURL)
            } catch let error as ShoalError {
                throw ValidationError(error.message.replacingOccurrences(of: "--gitops-push-url", with: "--push-url"))
            }
        }
    }

    func run() async throws {
        _ = logging.bootstrap(label: "shoal.gitops")
        do {
            let recorded = try RecordedWorkflow(workflow, output: directory.path)
            print(try await Self.push(recorded, pushURL: pushURL))
            let refresh = await AppChanges.refreshAfterPush(recorded)
            if !refresh.isEmpty { print(refresh) }
        } catch let error as ShoalError {
            fail(error.description)
        }
    }

    /// - Returns: one line saying what was pushed where.
    static func push(_ recorded: RecordedWorkflow, pushURL: String?) async throws -> String {
        let snapshot = recorded.snapshot
        guard snapshot.state != .destroyed else {
            throw ShoalError(.notFound, "workflow \(snapshot.id) was destroyed; there is no cluster to push to")
        }
        let repository = GitRepository(path: "\(recorded.output)/gitops/\(snapshot.id)")
        guard let head = try await repository.head() else {
            throw ShoalError(.notFound, "no GitOps repository with a commit at \(repository.path)")
        }
        let monitoring = try snapshot.output(MonitoringOutput.self)
        let source = monitoring?.gitopsSource ?? .host
        let short = String(head.prefix(12))
        if let remote = snapshot.request.gitopsRemote {
            try await repository.push(to: remote)
            return "pushed \(short) to \(GitCLISourceRedaction.redacted(remote))"
        }
        guard source == .inCluster else {
            return "nothing to push: the monitoring agent serves \(repository.path) itself; a commit there is enough"
        }
        let workflowID = snapshot.id
        if !snapshot.request.realDeployment {
            var cluster = try ValidateCommand.simulatedCluster(recorded)
            let bundle = try await repository.bundle()
            let server =
                cluster.gitServer
                ?? SimulatedGitServer(
                    host: InClusterGitServer.host, namespace: InClusterGitServer.namespace,
                    service: InClusterGitServer.service, deployment: InClusterGitServer.deployment)
            cluster.receiveGitPush(
                server: server, path: InClusterGitServer.repositoryPath(workflow: workflowID), head: bundle.head,
                bundle: bundle.data)
            try SecureFile.write(
                cluster.encoded(), to: "\(recorded.kubeconfigDirectory)/simulated-cluster.json", mode: 0o600)
            return "pushed \(short) to \(InClusterGitServer.repoURL(workflow: workflowID)) (the simulated cluster's "
                + "git server); `shoal validate \(workflowID)` shows what Argo CD makes of it"
        }
        let url: String
        if let pushURL {
            url = InClusterGitServer.pushURL(workflow: workflowID, base: pushURL)
        } else if let recordedURL = monitoring?.pushURL {
            url = recordedURL
        } else {
            throw ShoalError(.notFound, "the run recorded no push address: give --push-url")
        }
        let password = try pushPassword(recorded)
        try await repository.push(to: url, user: InClusterGitServer.user, password: password)
        return "pushed \(short) to \(url); Argo CD syncs it from \(InClusterGitServer.repoURL(workflow: workflowID))"
    }

    /// The in-cluster server's push password: the 0600 file of the run, else the journal's copy.
    static func pushPassword(_ recorded: RecordedWorkflow) throws -> String {
        let path = "\(recorded.kubeconfigDirectory)/gitops-push-password"
        if let data = FileManager.default.contents(atPath: path) {
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let artifact = try recorded.artifact("gitops-push-password") else {
            throw ShoalError(.notFound, "workflow \(recorded.id) has no push password (\(path))")
        }
        return artifact.text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// A URL without user information, so a token in it never reaches the terminal.
enum GitCLISourceRedaction {
    static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@") else {
            return url
        }
        return String(url[..<scheme.upperBound]) + "***@" + String(url[url.index(after: at)...])
    }
}
