import ArgumentParser
import Cluster
import Coordinator
import Foundation
import Protocol
import ShoalSupport

/// `validate` and `destroy` through a coordinator: a workflow that acts on the target, run by the agents.
enum RemoteOperation {
    /// Submits the operation and follows its workflow to the end.
    /// - Parameters:
    ///   - progress: called with each newer snapshot of the operation's workflow.
    /// - Returns: the operation workflow's final snapshot.
    /// - Throws: `ShoalError` with the coordinator's reason when it refuses, or when it cannot be reached.
    static func run(
        _ operation: WorkflowOperation, coordinator: String, security: ClientSecurityOptions,
        submitted: @escaping @Sendable (String) -> Void = { _ in },
        progress: @escaping @Sendable (WorkflowSnapshot) -> Void = { _ in }
    ) async throws -> WorkflowSnapshot {
        security.warnIfInsecure()
        let curve = try security.curveKeys()
        return try await runBlocking {
            let client = try CoordinatorClient(endpoint: coordinator, curve: curve)
            let accepted = try client.submit(operation)
            submitted(accepted.workflow)
            return try client.follow(accepted.workflow, eventsPort: accepted.eventsPort, update: progress)
        }
    }

    /// The target as the coordinator knows it.
    static func target(_ id: String, coordinator: String, security: ClientSecurityOptions) async throws
        -> WorkflowSnapshot
    {
        security.warnIfInsecure()
        let curve = try security.curveKeys()
        return try await runBlocking { try CoordinatorClient(endpoint: coordinator, curve: curve).status(id) }
    }

    /// The health report of a finished validate workflow, scored from its checks' results as the create
    /// workflow's `health-report` step scores them.
    static func report(of workflow: WorkflowSnapshot) throws -> HealthReport {
        HealthReport.make(try workflow.checkOutputs().map(\.result))
    }
}

/// The validate and destroy commands' `--coordinator`: where to run the operation, and the keys.
func checkCoordinatorEndpoint(_ coordinator: String?, security: ClientSecurityOptions) throws {
    if let coordinator {
        guard coordinator.hasPrefix("tcp://") || coordinator.hasPrefix("ipc://") else {
            throw ValidationError("--coordinator must be an endpoint such as tcp://host:7401")
        }
        _ = try security.curveKeys()
    } else if security.key != nil || security.coordinatorKey != nil || security.insecure {
        throw ValidationError("--key, --coordinator-key and --insecure go with --coordinator")
    }
}
