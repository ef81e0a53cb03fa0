import AgentRuntime
import Cluster
import Foundation
import Protocol
import ShoalSupport
import Terraform

/// The provision step of a real deployment: terraform init, validate, plan and apply in the workflow's Terraform
/// directory, the kubeconfig apply wrote as a sensitive artifact, and a bounded wait until the planned nodes are
/// registered and Ready.
struct RealProvision {
    let options: AgentOptions
    let context: StepContext
    let spec: TerraformSpec
    let directory: String

    func run(
        token: String, artifacts earlier: [Artifact], output planned: ProvisionOutput, log earlierLog: [String] = []
    ) async throws -> StepOutput {
        var artifacts = earlier
        var output = planned
        var log = earlierLog
        let runner = TerraformRunner(
            executable: options.terraformExecutable, applyTimeout: options.terraformApplyTimeout)
        try check(try await runner.initialize(directory: directory), "init", &log)
        try check(try await runner.validate(directory: directory), "validate", &log)
        let (planned, plan) = try await runner.plan(directory: directory, token: token)
        try check(planned, "plan", &log)
        if let plan {
            output.terraformPlan = TerraformPlanCounts(add: plan.add, change: plan.change, destroy: plan.destroy)
        }
        // The token is kept before apply: a partly applied cluster needs it to be destroyed.
        artifacts.append(Artifact(name: ArtifactName.k3sToken, path: nil, sensitive: true, text: token))
        try context.checkLease()
        try check(try await runner.apply(directory: directory, token: token), "apply", &log)

        guard let data = FileManager.default.contents(atPath: spec.kubeconfigPath), !data.isEmpty else {
            throw ShoalError(
                .notFound,
                "terraform apply succeeded but left no kubeconfig at \(spec.kubeconfigPath); see the apply log in "
                    + "the agent's log and `terraform -chdir=\(directory) output`")
        }
        let kubeconfig = String(decoding: data, as: UTF8.self)
        artifacts.append(
            Artifact(
                name: ArtifactName.kubeconfig, path: "kubeconfigs/\(context.workflow)/kubeconfig", sensitive: true,
                text: kubeconfig))

        let expected = TerraformRenderer.nodeNames(spec).count
        let client = KubectlClient(
            kubeconfig: spec.kubeconfigPath, executable: options.kubectlExecutable, timeout: options.kubectlTimeout)
        let timeout = context.waitTimeout(options)
        let nodes = try await Self.waitForNodes(client, expected: expected, timeout: timeout)
        log.append("\(nodes.count) node(s) Ready: \(nodes.map(\.name).joined(separator: ", "))")

        let server = Self.serverField(kubeconfig) ?? "https://127.0.0.1:6443"
        output.apiEndpoint = server
        output.nodeAddress = Provisioning.nodeAddress(spec)
        output.readyNodes = nodes.map(\.name)
        output.terraform = "terraform init+validate+plan+apply ok"
        if spec.target == .docker, let first = TerraformRenderer.nodeNames(spec).first {
            if let gateway = await Self.dockerHostGateway(container: first) {
                output.hostGateway = gateway
            } else {
                log.append("could not read host.k3d.internal from the \(first) container's /etc/hosts")
            }
        }
        let summary =
            "\(nodes.count) node(s) Ready on \(spec.target.rawValue), K3s \(spec.k3sVersion) (API \(server))"
        return try StepOutput(summary: summary, typed: output, artifacts: artifacts, log: log)
    }

    private func check(_ result: ProcessResult, _ command: String, _ log: inout [String]) throws {
        log.append("terraform \(command): exit \(result.status)\(result.timedOut ? " (timed out)" : "")")
        // terraform's own output, for `shoal logs` (the coordinator bounds a step's log).
        log += (result.standardOutput + result.standardError).split(separator: "\n").suffix(500).map { "  \($0)" }
        guard result.succeeded else {
            // What the failing script printed is in terraform's standard output, next to the error in its standard
            // error. (Provisioners that reference the token print nothing: Terraform suppresses them.)
            let printed = result.standardOutput.split(separator: "\n")
                .filter { $0.contains("-exec): ") }
                .suffix(5)
                .joined(separator: "\n")
            throw ShoalError(
                result.timedOut ? .timeout : .commandFailed,
                "terraform \(command) " + (result.timedOut ? "did not finish in time" : "failed") + " in \(directory)",
                cause: result.standardErrorTail() + (printed.isEmpty ? "" : "\n" + printed))
        }
    }

    /// Polls the nodes until `expected` are registered and all are Ready. Right after apply the API server may
    /// still refuse connections; that is waited out too, an RBAC refusal is not.
    /// - Throws: `ShoalError(.timeout)` naming the nodes that are missing or not Ready.
    static func waitForNodes(_ client: any ClusterClient, expected: Int, timeout: Duration) async throws -> [Node] {
        var last: [Node] = []
        var lastError: ShoalError?
        let ready = try await BoundedWait.until(timeout: timeout) { () -> [Node]? in
            do {
                last = try await client.nodes()
                lastError = nil
            } catch let error as ShoalError where error.code == .unreachable || error.code == .timeout {
                lastError = error
                return nil
            }
            return last.count >= expected && last.allSatisfy(\.ready) ? last : nil
        }
        if let ready { return ready }
        if let lastError {
            throw ShoalError(
                .timeout, "the API server did not answer within \(timeout.shortDescription)",
                cause: lastError.description)
        }
        let states = last.map {
            "\($0.name) \($0.ready ? "Ready" : "NotReady")" + ($0.problems.first.map { " (\($0))" } ?? "")
        }
        throw ShoalError(
            .timeout,
            "\(last.filter(\.ready).count) of \(expected) planned nodes Ready after \(timeout.shortDescription)"
                + (states.isEmpty ? "" : ": " + states.joined(separator: ", "))
                + "; on a node: `systemctl status k3s` or `journalctl -u k3s-agent`")
    }

    /// The kubeconfig's first cluster server.
    static func serverField(_ kubeconfig: String) -> String? {
        guard let document = try? ManifestParser.compose(kubeconfig, source: "kubeconfig").first else { return nil }
        return document["clusters"]?.array?.first?["cluster", "server"]?.string
    }

    /// The address `host.k3d.internal` has inside a node container (`--add-host ...:host-gateway`).
    static func dockerHostGateway(container: String, runner: ProcessRunner = ProcessRunner()) async -> String? {
        guard
            let result = try? await runner.run(
                "docker", ["exec", container, "cat", "/etc/hosts"], timeout: .seconds(20)),
            result.succeeded
        else { return nil }
        return hostsEntry(MonitoringHandler.dockerHostName, in: result.standardOutput)
    }

    /// The address of `name` in /etc/hosts text.
    static func hostsEntry(_ name: String, in hosts: String) -> String? {
        for line in hosts.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let address = fields.first, !address.hasPrefix("#"), fields.dropFirst().contains(name) else {
                continue
            }
            return address
        }
        return nil
    }
}

/// The `destroy` step of a real deployment, on the infra agent that holds the workflow's Terraform state:
/// terraform destroy in its work directory, with the join token of the apply when the step was given it.
struct InfraDestroy {
    let options: AgentOptions
    let context: StepContext

    func run() async throws -> StepOutput {
        let target = try context.destroyTarget().target
        let directory = Provisioning.terraformDirectory(workDirectory: options.workDirectory, workflow: target)
        let host = Preflight.hostName()
        guard context.request.realDeployment else {
            // Demo mode plans and never applies: there is no cluster here, only the plan to drop.
            try? FileManager.default.removeItem(atPath: "\(directory)/\(TerraformRunner.planFile)")
            return try StepOutput(
                summary: "demo mode: nothing was applied on \(host), nothing to destroy",
                typed: DestroyOutput(host: host, directory: directory, destroyedResources: 0))
        }
        let token = context.artifact(ArtifactName.k3sToken)?.text.trimmingCharacters(in: .whitespacesAndNewlines)
        let runner = TerraformRunner(
            executable: options.terraformExecutable, applyTimeout: options.terraformApplyTimeout)
        let outcome: TerraformDestroy.Outcome
        do {
            outcome = try await TerraformDestroy(runner: runner).run(
                directory: directory, token: token.flatMap { TerraformRunner.isValidToken($0) ? $0 : nil })
        } catch let error as ShoalError where error.code == .notFound {
            throw ShoalError(.notFound, "\(error.message) (infra agent \(context.agentID) on \(host))")
        }
        var output = DestroyOutput(host: host, directory: directory, destroyedResources: 0)
        let summary: String
        switch outcome {
        case .destroyed(let resources):
            output.destroyedResources = resources
            summary = "terraform destroy on \(host): \(resources) resource(s) removed"
        case .nothingToDestroy:
            summary = "nothing left to destroy on \(host)"
        }
        // The credentials of a cluster that is gone.
        try? FileManager.default.removeItem(
            atPath: "\(options.workDirectory)/kubeconfigs/\(target)/kubeconfig")
        return try StepOutput(summary: summary, typed: output, log: ["terraform destroy in \(directory)"])
    }
}
