import Agents
import ArgumentParser
import Cluster
import Foundation
import GitOps
import Protocol
import ShoalSupport

/// `shoal create --join-fleet FLEET`: the new cluster is registered in the Argo CD of the cluster FLEET (a workflow
/// of the same output directory), whose repository gets the fleet's ApplicationSets.
///
/// Nothing secret reaches git: the cluster Secret (server and credentials) is applied through the fleet cluster's
/// client only (kubectl with its kubeconfig, or its simulated state, a 0600 file). The repository gets the
/// ApplicationSets, which name clusters by label.
enum FleetJoin {
    /// The checks `create` makes before it starts, so a bad `--join-fleet` changes nothing.
    /// - Returns: the fleet's recorded workflow.
    /// - Throws: `ShoalError` with a one-line reason.
    static func checkFleet(_ fleet: String, output: String, realDeployment: Bool) throws -> RecordedWorkflow {
        let recorded: RecordedWorkflow
        do {
            recorded = try RecordedWorkflow(fleet, output: output)
        } catch let error as ShoalError {
            throw ShoalError(error.code, "--join-fleet \(fleet): \(error.message)")
        }
        let snapshot = recorded.snapshot
        guard snapshot.state == .succeeded else {
            throw ShoalError(
                .invalidInput,
                "--join-fleet \(fleet): the workflow is \(snapshot.state.rawValue); only a cluster whose workflow "
                    + "succeeded can hold a fleet")
        }
        guard snapshot.request.argocd, snapshot.step(.monitoring)?.state == .succeeded else {
            throw ShoalError(
                .invalidInput,
                "--join-fleet \(fleet): that cluster has no Argo CD with a GitOps repository to deploy from")
        }
        guard snapshot.request.monitoringSource != "helm" else {
            throw ShoalError(
                .invalidInput,
                "--join-fleet \(fleet): a fleet whose monitoring stack is Helm charts (--monitoring-source helm) "
                    + "is not available yet: create the fleet with manifests or kustomize")
        }
        guard snapshot.request.realDeployment == realDeployment else {
            throw ShoalError(
                .invalidInput,
                "--join-fleet \(fleet): a \(realDeployment ? "real" : "demo") cluster cannot join a "
                    + "\(realDeployment ? "demo" : "real") one")
        }
        let repository = "\(recorded.output)/gitops/\(recorded.id)"
        guard FileManager.default.fileExists(atPath: repository + "/.git") else {
            throw ShoalError(.notFound, "--join-fleet \(fleet): no GitOps repository at \(repository)")
        }
        return recorded
    }

    /// Joins `member` (a workflow that just succeeded) to the fleet.
    /// - Returns: lines for the terminal.
    static func join(member memberID: String, fleet fleetID: String, output: String) async throws -> [String] {
        let member = try RecordedWorkflow(memberID, output: output)
        let real = member.snapshot.request.realDeployment
        let fleet = try checkFleet(fleetID, output: output, realDeployment: real)
        let access = try KubeconfigAccess.parse(try await kubeconfigText(member))
        if real, let host = URL(string: access.server)?.host, NetworkAddress.isLoopback(host) {
            throw ShoalError(
                .invalidInput,
                "\(memberID)'s API server \(access.server) names its own host only, which the fleet's Argo CD cannot "
                    + "reach: create it with --advertise-address (or --target ssh)")
        }
        var lines: [String] = []
        let credentials = FleetApplicationSets.Credentials(
            bearerToken: access.bearerToken, certData: access.certData, keyData: access.keyData,
            caData: access.caData, insecure: access.insecureSkipTLSVerify)
        let memberSecret = try FleetApplicationSets.clusterSecret(
            fleet: fleetID, cluster: memberID, server: access.server, credentials: credentials)
        let ownSecret = try FleetApplicationSets.clusterSecret(
            fleet: fleetID, cluster: fleetID, server: FleetApplicationSets.inClusterServer, credentials: nil)

        // The member gets what the fleet's monitoring stack and examples read from Secrets made in the cluster.
        let fleetRequest = fleet.snapshot.request
        let grafanaPassword = Secrets.password()
        let spec = MonitoringStackSpec(instance: fleetID, headlamp: fleetRequest.headlamp)
        try await withClient(member) { client in
            _ = try await client.createNamespace(spec.namespace)
            try await client.apply(
                manifests: MonitoringStack.grafanaAdminSecret(spec, password: grafanaPassword), serverSide: true)
            if fleetRequest.examples {
                let password = Secrets.password()
                _ = try await client.createNamespace("postgres")
                try await client.apply(
                    manifests: ExampleApplications.postgresSecret(password: password), serverSide: true)
                try SecureFile.write(
                    password + "\n", to: "\(member.kubeconfigDirectory)/postgres-password", mode: 0o600)
            }
        }
        try SecureFile.write(
            grafanaPassword + "\n", to: "\(member.kubeconfigDirectory)/grafana-admin-password", mode: 0o600)

        // The fleet's Argo CD: both cluster Secrets, through its client only.
        if real {
            try await withClient(fleet) { client in
                try await client.apply(manifests: ownSecret + memberSecret, serverSide: true)
            }
        } else {
            var state = try ValidateCommand.simulatedCluster(fleet)
            let memberState = try ValidateCommand.simulatedCluster(member)
            if let taken = state.registeredClusters().first(where: {
                $0.server == access.server && $0.name != memberID
            }) {
                throw ShoalError(
                    .invalidInput,
                    "\(memberID)'s API server \(access.server) is registered already as \(taken.name): create it "
                        + "with its own --advertise-address")
            }
            _ = try state.apply(yaml: ownSecret + memberSecret, source: "shoal-fleet-join")
            state.registerFleetMember(memberState, server: access.server)
            try SecureFile.write(
                state.encoded(), to: "\(fleet.kubeconfigDirectory)/simulated-cluster.json", mode: 0o600)
        }
        lines.append(
            "registered \(memberID) (\(access.server)) in the Argo CD of \(fleetID): Secret "
                + "argocd/\(FleetApplicationSets.secretName(cluster: memberID)), not in git")

        let repository = GitRepository(path: "\(fleet.output)/gitops/\(fleet.id)")
        try writeApplicationSets(repository: repository, fleet: fleet)
        let commit = try await repository.commitAll(message: "Fleet \(fleetID): cluster \(memberID) joins")
        lines.append(
            commit.created
                ? "committed \(commit.sha.prefix(12)): \(FleetApplicationSets.monitoringPath), "
                    + FleetApplicationSets.applicationsPath
                : "the fleet's ApplicationSets are up to date")
        lines.append(try await GitOpsPushCommand.push(fleet, pushURL: nil))
        let refresh = await AppChanges.refreshAfterPush(fleet)
        if !refresh.isEmpty { lines.append(refresh) }
        if !real {
            let state = try ValidateCommand.simulatedCluster(fleet)
            let client = state.client(gitSource: ValidateCommand.gitSource(fleet))
            for app in try await client.applications(namespace: "argocd")
            where app.destinationServer == access.server
                || app.name.hasPrefix("monitoring-")
            {
                lines.append("application \(app.name): \(app.syncStatus)/\(app.healthStatus)")
            }
        }
        return lines
    }

    /// Writes the fleet's ApplicationSets into its working copy; the monitoring stack moves from
    /// `apps/monitoring.yaml` to the ApplicationSet, which deploys it to the fleet's own cluster too.
    static func writeApplicationSets(repository: GitRepository, fleet: RecordedWorkflow) throws {
        guard let repoURL = try fleet.snapshot.output(MonitoringOutput.self)?.repoURL else {
            throw ShoalError(.notFound, "workflow \(fleet.id) has no GitOps repository (no monitoring step)")
        }
        let monitoringFile = "\(repository.path)/apps/monitoring.yaml"
        let existingSet = "\(repository.path)/\(FleetApplicationSets.monitoringPath)"
        let path: String
        if let text = FileManager.default.contents(atPath: monitoringFile).map({ String(decoding: $0, as: UTF8.self) }),
            let app = try ManifestParser.parse(text, source: "apps/monitoring.yaml").first
        {
            path = app.body["spec", "source", "path"]?.string ?? "monitoring"
        } else if let text = FileManager.default.contents(atPath: existingSet).map({
            String(decoding: $0, as: UTF8.self)
        }),
            let set = try ManifestParser.parse(text, source: FleetApplicationSets.monitoringPath).first
        {
            path = set.body["spec", "template", "spec", "source", "path"]?.string ?? "monitoring"
        } else {
            path = "monitoring"
        }
        try repository.write([
            FleetApplicationSets.monitoring(fleet: fleet.id, repoURL: repoURL, path: path, namespace: "monitoring"),
            FleetApplicationSets.applications(fleet: fleet.id, elements: try elements(repository: repository.path)),
        ])
        if FileManager.default.fileExists(atPath: monitoringFile) {
            try FileManager.default.removeItem(atPath: monitoringFile)
        }
    }

    /// Rewrites `apps/fleet-applications.yaml` after `shoal app add|remove`, when the repository is a fleet's.
    static func refreshApplicationsSet(repository: GitRepository, workflow: String) throws {
        guard FileManager.default.fileExists(atPath: "\(repository.path)/\(FleetApplicationSets.applicationsPath)")
        else { return }
        try repository.write([
            FleetApplicationSets.applications(fleet: workflow, elements: try elements(repository: repository.path))
        ])
    }

    /// The user applications of `apps/` with one source (a directory of a git repository).
    static func elements(repository: String) throws -> [FleetApplicationSets.Element] {
        let directory = "\(repository)/apps"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var elements: [FleetApplicationSets.Element] = []
        for name in names.sorted() where name.hasSuffix(".yaml") && !name.hasPrefix("fleet-") {
            guard let data = FileManager.default.contents(atPath: "\(directory)/\(name)") else { continue }
            for manifest in try ManifestParser.parse(String(decoding: data, as: UTF8.self), source: "apps/\(name)")
            where manifest.kind == "Application" && !UserApplication.reservedNames.contains(manifest.name) {
                let source = manifest.body["spec", "source"]
                guard let source, source["chart"] == nil, let repoURL = source["repoURL"]?.string,
                    let path = source["path"]?.string
                else { continue }
                elements.append(
                    FleetApplicationSets.Element(
                        app: manifest.name, repoURL: repoURL, path: path,
                        targetRevision: source["targetRevision"]?.string ?? "HEAD"))
            }
        }
        return elements
    }

    private static func kubeconfigText(_ recorded: RecordedWorkflow) async throws -> String {
        try await ValidateCommand.withKubeconfig(recorded) { path in
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ShoalError(.notFound, "cannot read \(path)")
            }
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// The workflow's cluster: kubectl with its kubeconfig, or its simulated state (written back afterwards).
    private static func withClient(
        _ recorded: RecordedWorkflow, _ body: (any ClusterClient) async throws -> Void
    ) async throws {
        if recorded.snapshot.request.realDeployment {
            try await ValidateCommand.withKubeconfig(recorded) { path in try await body(KubectlClient(kubeconfig: path))
            }
            return
        }
        let client = try ValidateCommand.simulatedCluster(recorded).client(
            gitSource: ValidateCommand.gitSource(recorded))
        try await body(client)
        try SecureFile.write(
            await client.cluster.encoded(), to: "\(recorded.kubeconfigDirectory)/simulated-cluster.json", mode: 0o600)
    }
}

extension CreateCommand {
    /// `--join-fleet`: a workflow id, with what a member can be.
    func checkJoinFleet() throws {
        guard let joinFleet else { return }
        do {
            try Names.validateWorkflowID(joinFleet)
        } catch let error as ShoalError {
            throw ValidationError("--join-fleet: \(error.message)")
        }
        if coordinator != nil {
            throw ValidationError(
                "--join-fleet with --coordinator is not available yet: run create without --coordinator in the "
                    + "fleet's output directory")
        }
        if !deployment.apps.isEmpty || deployment.examples {
            throw ValidationError(
                "--app and --examples go to the fleet's repository with --join-fleet: `shoal app add \(joinFleet) ...`")
        }
        if realDeployment && deployment.advertiseAddress == nil && (target ?? "") != "ssh" && hosts == nil {
            throw ValidationError(
                "--join-fleet needs an API server the fleet's Argo CD reaches: give --advertise-address "
                    + "(or --target ssh)"
            )
        }
    }
}

extension FleetJoin {
    /// The report with the fleet's clusters when `workflow`'s cluster holds a fleet (demo mode: the members' models
    /// are in its state).
    static func withFleet(_ report: HealthReport, workflow: WorkflowSnapshot, client: SimulatedClusterClient) async
        -> HealthReport
    {
        let state = await client.cluster
        let members = FleetHealth.members(of: state, fleet: workflow.id)
        guard !members.isEmpty else { return report }
        let fleet = await FleetHealth.report(
            fleet: workflow.id, own: report, fleetClient: client, members: members,
            headlamp: workflow.request.headlamp, problems: FleetHealth.problems(of: await client.cluster))
        return report.including(fleet)
    }

    static func printFleet(_ fleet: FleetReport) {
        Swift.print("Fleet \(fleet.fleet): \(fleet.clusters.count) clusters")
        for cluster in fleet.clusters {
            Swift.print(
                "  \(pad(cluster.name, 24)) \(pad(cluster.role, 6)) score \(cluster.score)/100 (\(cluster.status))")
            for check in cluster.checks where !check.passed && cluster.role == "member" {
                Swift.print("      FAIL \(check.name): \(check.message)")
                for detail in check.details.prefix(6) { Swift.print("        \(detail)") }
                if let remedy = check.remedy { Swift.print("        remedy: \(remedy)") }
            }
        }
        for problem in fleet.problems { Swift.print("  ApplicationSet: \(problem)") }
        Swift.print("Fleet: score \(fleet.score)/100 (\(fleet.status)), the lowest of its clusters")
    }
}

extension FleetJoin {
    /// Real mode: the members are the fleet's cluster Secrets; each is checked with its own kubeconfig from the
    /// output directory (only its Applications in the fleet's Argo CD without one).
    static func withFleet(_ report: HealthReport, recorded: RecordedWorkflow, client: KubectlClient, timeout: Duration)
        async -> HealthReport
    {
        let registered: [RegisteredCluster]
        do {
            registered = try await client.registeredClusters(
                selector: "\(FleetApplicationSets.fleetLabel)=\(recorded.id),\(FleetApplicationSets.roleLabel)=member")
        } catch {
            return report
        }
        guard !registered.isEmpty else { return report }
        let members = registered.map { cluster -> FleetHealth.Member in
            let kubeconfig = "\(recorded.output)/kubeconfigs/\(cluster.name)/kubeconfig"
            let readable = Names.isDNSLabel(cluster.name) && FileManager.default.isReadableFile(atPath: kubeconfig)
            let nodes = (try? RecordedWorkflow(cluster.name, output: recorded.output))?.snapshot.request.nodes ?? 1
            return FleetHealth.Member(
                name: cluster.name, server: cluster.server,
                client: readable ? KubectlClient(kubeconfig: kubeconfig, timeout: timeout) : nil, nodes: nodes)
        }
        let fleet = await FleetHealth.report(
            fleet: recorded.id, own: report, fleetClient: client, members: members,
            headlamp: recorded.snapshot.request.headlamp, problems: [])
        return report.including(fleet)
    }
}
