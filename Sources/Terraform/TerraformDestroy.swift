import Foundation
import ShoalSupport

/// `terraform destroy` in a workflow's Terraform directory, run only where that workflow's state is.
///
/// A directory that holds the configuration but no `terraform.tfstate` was written by a copy of the
/// files (the output tree of a multi-host run, say), not by the apply: destroying there would report
/// "0 destroyed" while the cluster keeps running, so it is refused.
public struct TerraformDestroy: Sendable {
    /// What `run` found and did.
    public enum Outcome: Sendable, Equatable {
        /// terraform destroy ran and succeeded; `resources` is how many the state held before.
        case destroyed(resources: Int)
        /// The state holds no resource: destroyed before, or nothing was ever applied.
        case nothingToDestroy
    }

    public var runner: TerraformRunner

    public init(runner: TerraformRunner) {
        self.runner = runner
    }

    /// The number of resource instances `terraform.tfstate` in `directory` holds, or nil when there is no state.
    /// (A resource whose `for_each` or `count` selected nothing stays in the state with no instance.)
    public static func stateResources(in directory: String) -> Int? {
        guard let data = FileManager.default.contents(atPath: "\(directory)/terraform.tfstate") else { return nil }
        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        let resources = object?["resources"] as? [[String: Any]] ?? []
        return resources.reduce(0) { count, resource in
            count + ((resource["instances"] as? [Any])?.count ?? 1)
        }
    }

    /// Runs `terraform init` when needed, then `terraform destroy`, and removes the saved plan (it would
    /// re-create everything if applied).
    /// - Parameters:
    ///   - directory: the workflow's Terraform directory.
    ///   - token: the join token of the apply; a fresh one of the right shape when nil (no destroy-time
    ///     provisioner reads it, but the variable is required).
    /// - Throws: `ShoalError(.notFound)` when `directory` has no configuration or no state (naming where the
    ///   state would be); `ShoalError(.commandFailed)` or `.timeout` with terraform's message when it fails.
    public func run(directory: String, token: String?) async throws -> Outcome {
        guard FileManager.default.fileExists(atPath: "\(directory)/main.tf") else {
            throw ShoalError(.notFound, "no Terraform configuration in \(directory): nothing was provisioned here")
        }
        guard let resources = Self.stateResources(in: directory) else {
            throw ShoalError(
                .notFound,
                "no Terraform state in \(directory): the cluster was provisioned elsewhere (the infra agent that "
                    + "ran its provision step keeps the state in its work directory)")
        }
        guard resources > 0 else { return .nothingToDestroy }
        if !FileManager.default.fileExists(atPath: "\(directory)/.terraform") {
            let initialized = try await runner.initialize(directory: directory)
            guard initialized.succeeded else {
                throw ShoalError(
                    .commandFailed, "terraform init failed in \(directory)", cause: initialized.standardErrorTail())
            }
        }
        let result = try await runner.destroy(directory: directory, token: token ?? TerraformRunner.generateToken())
        guard result.succeeded else {
            throw ShoalError(
                result.timedOut ? .timeout : .commandFailed,
                "terraform destroy " + (result.timedOut ? "did not finish in time" : "failed") + " in \(directory)",
                cause: result.standardErrorTail())
        }
        try? FileManager.default.removeItem(atPath: "\(directory)/\(TerraformRunner.planFile)")
        return .destroyed(resources: resources)
    }
}
