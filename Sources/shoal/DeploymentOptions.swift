import Agents
import ArgumentParser
import Cluster
import Foundation
import GitOps
import Protocol
import ShoalSupport

/// The options of `shoal create` about what is deployed and how the cluster reaches the GitOps repository.
struct DeploymentOptions: ParsableArguments {
    @Flag(
        inversion: .prefixedNo,
        help: "Install Argo CD and hand the monitoring stack to it (--no-argocd: kubectl apply --server-side).")
    var argocd = true
    @Option(help: "Install Argo CD from this local copy of its install.yaml (air-gapped labs).")
    var argocdManifest: String?
    @Option(help: "Push the GitOps repository to this git remote you own; the Applications point there.")
    var gitopsRemote: String?
    @Option(help: "Where the monitoring agent serves the GitOps repository with --gitops-advertise, host:port (real mode default 0.0.0.0:0).")
    var gitopsListen: String?
    @Option(help: "Serve the GitOps repository from the monitoring agent at this host name or address (default: the in-cluster git server).")
    var gitopsAdvertise: String?
    @Option(help: "Base URL to push to the in-cluster git server through (default: the first node, NodePort 30418).")
    var gitopsPushURL: String?
    @Option(help: "Bound of each wait of a real deployment (nodes Ready, rollouts, Applications Synced), e.g. 5m.")
    var waitTimeout = ShoalDuration(.seconds(300))
    @Flag(help: "Add the cluster to your kubeconfig ($KUBECONFIG's first file, else ~/.kube/config) as shoal-WORKFLOW.")
    var mergeKubeconfig = false
    @Option(
        help: ArgumentHelp(
            "Address other hosts reach the cluster at: the kubeconfig's server, a TLS SAN, and (docker) where the "
                + "API and NodePorts are published (default: 127.0.0.1 for local and docker, the first host for ssh).",
            valueName: "address"))
    var advertiseAddress: String?
    @Option(
        help: ArgumentHelp(
            "--target ssh: address the nodes join the first server at (default: its InternalIP, read after "
                + "install).", valueName: "address"))
    var apiAddress: String?
    @Option(
        name: .customLong("node-ip"),
        help: ArgumentHelp(
            "--target ssh: K3s node IP of a host with several interfaces, HOST=IP with HOST as in --hosts "
                + "(repeatable).", valueName: "host=ip"))
    var nodeIP: [String] = []
    @Option(
        help: ArgumentHelp(
            "--target ssh: interface flannel uses on a host, HOST=IFACE (repeatable).", valueName: "host=iface"))
    var flannelIface: [String] = []
    @Option(
        name: .customLong("app"),
        help: "A user application NAME=SOURCE (repeatable): SOURCE examples/DIR, GIT-URL//PATH or helm:REPO-URL//CHART@VERSION.")
    var apps: [String] = []
    @Flag(help: "Also deploy the example applications: a web server, PostgreSQL and Valkey (examples/ in git).")
    var examples = false
    @Option(
        help: """
            How the monitoring stack is laid out in git: manifests (a directory), kustomize (a base and \
            overlays/ENVIRONMENT) or helm (Applications of pinned charts, values in monitoring/helm/).
            """)
    var monitoringSource = "manifests"
    @Option(
        help: ArgumentHelp(
            "The shoal coordinator's metrics endpoint (its --metrics-listen) as the cluster reaches it: Prometheus "
                + "scrapes it as the job shoal-coordinator, for the shoal dashboard in Grafana.",
            valueName: "host:port"))
    var coordinatorMetrics: String?

    func validate() throws {
        try waitTimeout.validate(in: .seconds(1) ... .seconds(86_400), option: "--wait-timeout")
        if let listen = gitopsListen {
            do {
                _ = try MonitoringListen.parse(listen)
            } catch let error as ShoalError {
                throw ValidationError(error.message)
            }
        }
        do {
            try gitopsAdvertise.map(GitOpsAddresses.validateAdvertise)
            try gitopsPushURL.map(GitOpsAddresses.validatePushURL)
        } catch let error as ShoalError {
            throw ValidationError(error.message)
        }
        if argocdManifest != nil && !argocd {
            throw ValidationError("--argocd-manifest needs Argo CD; drop --no-argocd or the manifest")
        }
        guard WorkflowRequest.monitoringSources.contains(monitoringSource) else {
            throw ValidationError("--monitoring-source must be manifests, kustomize or helm")
        }
        if monitoringSource != "manifests" && !argocd {
            throw ValidationError("--monitoring-source \(monitoringSource) needs Argo CD; drop --no-argocd")
        }
        do {
            let parsed = try apps.map(UserApplication.parse)
            let names = parsed.map(\.name) + (examples ? ExampleApplications.applications.map(\.name) : [])
            if let twice = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
                throw ShoalError(.invalidInput, "two applications are named '\(twice)'")
            }
            let shipped = examples ? ExampleApplications.files().map(\.path) : []
            for app in parsed
            where app.source.repoURL == nil && !shipped.contains(where: { $0.hasPrefix(app.source.path + "/") }) {
                throw ShoalError(
                    .invalidInput,
                    "--app \(app.name): the GitOps repository is new, so a directory of it can only be one of "
                        + "examples/ with --examples; give a URL//PATH, or add it later with `shoal app add`")
            }
            if (!apps.isEmpty || examples) && !argocd {
                throw ShoalError(.invalidInput, "--app and --examples need Argo CD; drop --no-argocd")
            }
        } catch let error as ShoalError {
            throw ValidationError(error.message)
        }
        _ = try Self.hostValues(nodeIP, flag: "--node-ip")
        _ = try Self.hostValues(flannelIface, flag: "--flannel-iface")
    }

    /// `HOST=VALUE` entries as a dictionary; each HOST at most once. The values are checked with the rest of
    /// the request (`WorkflowRequest.problems()`).
    static func hostValues(_ entries: [String], flag: String) throws -> [String: String] {
        var values: [String: String] = [:]
        for entry in entries {
            let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("\(flag) takes HOST=VALUE, got '\(Names.printable(entry))'")
            }
            guard values.updateValue(String(parts[1]), forKey: String(parts[0])) == nil else {
                throw ValidationError("\(flag) names \(Names.printable(String(parts[0]))) twice")
            }
        }
        return values
    }

    /// Checks that need the other options of `create`.
    func validate(embedded: Bool) throws {
        if let manifest = argocdManifest, embedded, !FileManager.default.isReadableFile(atPath: absolutePath(manifest))
        {
            throw ValidationError("--argocd-manifest: cannot read '\(manifest.prefix(200))'")
        }
        if mergeKubeconfig && !embedded {
            throw ValidationError(
                "--merge-kubeconfig needs the kubeconfig on this machine: use it without --coordinator")
        }
    }

    func apply(to request: inout WorkflowRequest) {
        request.argocd = argocd
        request.argocdManifest = argocdManifest.map(absolutePath)
        request.gitopsRemote = gitopsRemote.map { remote in
            // A local path is made absolute: the monitoring agent runs in another directory.
            remote.contains("://") || remote.contains("@") || remote.hasPrefix("/") ? remote : absolutePath(remote)
        }
        request.waitTimeoutSeconds = Int(waitTimeout.duration.components.seconds)
        request.advertiseAddress = advertiseAddress
        request.apiAddress = apiAddress
        request.nodeIPs = (try? Self.hostValues(nodeIP, flag: "--node-ip")) ?? [:]
        request.flannelInterfaces = (try? Self.hostValues(flannelIface, flag: "--flannel-iface")) ?? [:]
        request.applications = apps
        request.examples = examples
        request.monitoringSource = monitoringSource
        request.coordinatorMetrics = coordinatorMetrics
    }

    /// The extra arguments of the embedded monitoring agent.
    func monitoringAgentArguments(realDeployment: Bool) -> [String] {
        var arguments: [String] = []
        // A real cluster cannot reach 127.0.0.1 of this machine: a repository served from here (--gitops-advertise)
        // listens on every interface (read-only, no secrets).
        if let listen = gitopsListen ?? (realDeployment && gitopsAdvertise != nil ? "0.0.0.0:0" : nil) {
            arguments += ["--gitops-listen", listen]
        }
        if let advertise = gitopsAdvertise { arguments += ["--gitops-advertise", advertise] }
        if let pushURL = gitopsPushURL { arguments += ["--gitops-push-url", pushURL] }
        return arguments
    }

}

/// `--gitops-listen` checks, shared with `shoal agent`.
enum MonitoringListen {
    static func parse(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port), colon > text.startIndex
        else { throw ShoalError(.invalidInput, "--gitops-listen must be host:port, got '\(text.prefix(80))'") }
        return (String(text[..<colon]), port)
    }
}
