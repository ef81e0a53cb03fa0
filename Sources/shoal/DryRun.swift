import Agents
import Foundation
import GitOps
import Protocol
import ShoalSupport
import Terraform

/// `shoal create --dry-run`: the plan, the Terraform configuration with `terraform plan`, and the monitoring stack's
/// manifests, written into `OUTPUT/dry-run/WORKFLOW/`, with nothing applied. It runs in this process: no
/// coordinator, no agent, no cluster; no `terraform apply`, no `kubectl`, no git repository.
struct DryRun {
    let request: WorkflowRequest
    /// The absolute output directory.
    let output: String

    /// A workflow id of the form the coordinator gives (`k3s-dev-3f9a1c`), not taken by an earlier dry run here.
    func workflowID() -> String {
        let environment = ["development": "dev", "staging": "stg", "production": "prod"][request.environment.rawValue]
        while true {
            let suffix = String(UInt32.random(in: 0...0xFF_FFFF), radix: 16)
            let id = "\(request.platform)-\(environment ?? "wf")-" + String(repeating: "0", count: 6 - suffix.count)
                + suffix
            if !FileManager.default.fileExists(atPath: "\(output)/dry-run/\(id)") { return id }
        }
    }

    /// Writes the files and prints what `create` would do and where they are.
    /// - Throws: `ShoalError` when a file cannot be written, or terraform fails to plan.
    func run() async throws {
        let workflow = workflowID()
        let directory = "\(output)/dry-run/\(workflow)"
        let mode = request.realDeployment ? "real deployment" : "demo"
        print("dry run of workflow \(workflow) (\(mode)): nothing is applied, no cluster is touched")

        let plan = try Planner.plan(for: request)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try SecureFile.write(
            try encoder.encode(DryRunPlan(workflow: workflow, request: request, steps: plan.steps)),
            to: "\(directory)/plan.json")
        let topology = Planner.topology(for: request)
        print("")
        print(
            "Plan: \(request.nodes) node(s) on \(request.target.rawValue) (\(topology.servers) server(s), "
                + "\(topology.agents) agent(s), \(topology.nodeSize)), \(plan.steps.count + 1) steps")
        print("  \(pad("STEP", 22)) \(pad("AGENT", 11)) NEEDS")
        print("  \(pad("plan", 22)) \(pad("planner", 11)) -")
        for step in plan.steps {
            let needs =
                step.needs.count > 3
                ? "\(step.needs.count) steps (\(step.needs[0]), ...)" : step.needs.joined(separator: ", ")
            print("  \(pad(step.name, 22)) \(pad(step.role.rawValue, 11)) \(needs)")
        }

        let terraformDirectory = "\(directory)/terraform"
        let spec = try Provisioning.terraformSpec(
            for: request, workflow: workflow, kubeconfigPath: "\(output)/kubeconfigs/\(workflow)/kubeconfig",
            advertiseAddress: request.advertiseAddress)
        for file in try TerraformRenderer.render(spec) {
            try SecureFile.write(file.contents, to: "\(terraformDirectory)/\(file.name)")
        }
        print("")
        print(try await terraformPlan(in: terraformDirectory))
        if request.realDeployment && spec.target == .ssh {
            print("  the hosts' SSH keys are not checked in a dry run (the real run pins them before anything else)")
        }

        var repository: String?
        if request.monitoring && request.argocd {
            let preview = try GitOpsPreview.repository(for: request, workflow: workflow)
            for file in preview.files {
                try SecureFile.write(file.contents, to: "\(directory)/gitops/\(file.path)")
            }
            let applications = preview.files.filter { $0.path.hasPrefix("apps/") || $0.path == "root-app.yaml" }
            print(
                "gitops: \(preview.files.count) files, \(applications.count) Argo CD Applications (App of Apps), "
                    + "which Argo CD would sync from \(preview.repoURL)")
            repository = "\(directory)/gitops/"
        } else if request.monitoring {
            var stack = MonitoringStackSpec(instance: workflow, headlamp: request.headlamp)
            stack.coordinatorMetrics = request.coordinatorMetrics
            let manifests = MonitoringStack.render(stack)
            for file in manifests {
                let name = (file.path as NSString).lastPathComponent
                try SecureFile.write(file.contents, to: "\(directory)/manifests/monitoring/\(name)")
            }
            print("manifests: \(manifests.count) files of the monitoring stack, applied with kubectl (Argo CD is off)")
        }

        print("")
        print("Files")
        print("  \(pad("plan", 12)) \(directory)/plan.json")
        print("  \(pad("terraform", 12)) \(terraformDirectory)/")
        if FileManager.default.fileExists(atPath: "\(directory)/terraform-plan.txt") {
            print("  \(pad("tf plan", 12)) \(directory)/terraform-plan.txt")
        }
        if let repository {
            print("  \(pad("gitops", 12)) \(repository)")
        } else if request.monitoring {
            print("  \(pad("manifests", 12)) \(directory)/manifests/monitoring/")
        }
        print("")
        print("Run it: the same command without --dry-run")
    }

    /// `terraform init`, `validate` and `plan` (never `apply`), with a join token made for the plan only; the
    /// plan's text goes to `terraform-plan.txt` beside the directory.
    /// - Returns: a line saying what Terraform would do, or that terraform is not installed.
    private func terraformPlan(in directory: String) async throws -> String {
        guard TerraformRunner.isInstalled() else {
            return "terraform: not installed, so no plan (the files are written; install: "
                + Preflight.installHint("terraform") + ")"
        }
        let runner = TerraformRunner()
        for (name, call) in [("init", 0), ("validate", 1)] {
            let result =
                call == 0
                ? try await runner.initialize(directory: directory) : try await runner.validate(directory: directory)
            guard result.succeeded else {
                throw ShoalError(
                    .commandFailed, "terraform \(name) failed in \(directory)", cause: result.standardErrorTail())
            }
        }
        let (result, summary) = try await runner.plan(directory: directory, token: TerraformRunner.generateToken())
        try SecureFile.write(
            result.standardOutput, to: (directory as NSString).deletingLastPathComponent + "/terraform-plan.txt")
        guard result.succeeded, let summary else {
            throw ShoalError(.commandFailed, "terraform plan failed in \(directory)", cause: result.standardErrorTail())
        }
        return "terraform plan: \(summary.add) to add, \(summary.change) to change, \(summary.destroy) to destroy"
    }
}

/// `plan.json` of a dry run.
struct DryRunPlan: Encodable {
    var workflow: String
    var request: WorkflowRequest
    var steps: [PlannedStep]
}
