import AgentRuntime
import Cluster
import Protocol
import ShoalSupport

/// Turns a request into a plan: which steps, in which order, and the cluster's shape.
struct PlannerHandler: StepHandler {
    func run(_ context: StepContext) async throws -> StepOutput {
        let request = context.request
        let problems = request.problems()
        guard problems.isEmpty else { throw ShoalError(.invalidInput, problems.joined(separator: "; ")) }
        if !context.assignment.params.isEmpty {
            let params = try context.params(OperationPlanParams.self)
            let plan = try Planner.operationPlan(params: params, request: request)
            return try StepOutput(
                summary: "\(params.operation.rawValue) of \(params.target): \(plan.steps.count) step(s)",
                typed: PlanOutput(plan: plan))
        }
        let plan = try Planner.plan(for: request)
        let topology = Planner.topology(for: request)
        let output = PlanOutput(
            plan: plan, servers: topology.servers, agents: topology.agents,
            highAvailability: topology.highAvailability,
            datastore: topology.highAvailability ? "embedded etcd" : "sqlite", nodeSize: topology.nodeSize)
        let summary =
            "\(plan.steps.count) steps; \(topology.servers) server(s) + \(topology.agents) agent(s), "
            + (topology.highAvailability ? "embedded etcd" : "single server") + ", nodes \(topology.nodeSize)"
        return try StepOutput(summary: summary, typed: output)
    }
}

/// The planning rules, separate from the bus for testing.
public enum Planner {
    public struct Topology: Sendable, Equatable {
        public var servers: Int
        public var agents: Int
        public var highAvailability: Bool
        public var nodeSize: String
    }

    /// Production runs 3 servers with embedded etcd (a quorum survives one
    /// loss); other environments one server, the rest agents.
    public static func topology(for request: WorkflowRequest) -> Topology {
        let ha = (request.environment == .production || request.highAvailability) && request.nodes >= 3
        let servers = ha ? 3 : 1
        let size: String
        switch request.environment {
        case .development: size = "2 vCPU / 4 GiB"
        case .staging: size = "4 vCPU / 8 GiB"
        case .production: size = "4 vCPU / 16 GiB"
        }
        return Topology(servers: servers, agents: request.nodes - servers, highAvailability: ha, nodeSize: size)
    }

    /// The expectation the health checks hold the cluster to.
    public static func expectation(for request: WorkflowRequest) -> HealthExpectation {
        HealthExpectation(nodes: request.nodes, argocd: request.argocd, monitoring: request.monitoring, headlamp: request.headlamp)
    }

    /// The steps after `plan`: provision, the GitOps engine, monitoring, one
    /// validation task per check, the health report, the runbook.
    /// A real deployment starts with one preflight step per role that runs on the cluster (infra, argocd,
    /// monitoring, validation), all before provision: a missing tool fails the workflow before anything changes.
    /// - Throws: `StepContractError` if a step's params do not encode (the contract's types always do).
    public static func plan(for request: WorkflowRequest) throws -> Plan {
        var steps: [PlannedStep] = []
        var provisionNeeds: [StepName] = [.plan]
        if request.realDeployment {
            var roles: [Role] = [.infra]
            if request.argocd { roles.append(.argocd) }
            if request.monitoring { roles.append(.monitoring) }
            roles.append(.validation)
            for role in roles {
                // Not critical: every preflight runs and reports, and provision, which needs them all, never starts.
                steps.append(PlannedStep(.preflight(role), role: role, needs: [.plan]))
                provisionNeeds.append(.preflight(role))
            }
        }
        steps.append(PlannedStep(.provision, role: .infra, needs: provisionNeeds, critical: true))
        var last = StepName.provision
        if request.argocd {
            steps.append(PlannedStep(.gitopsEngine, role: .argocd, needs: [last]))
            last = .gitopsEngine
        }
        if request.monitoring {
            steps.append(PlannedStep(.monitoring, role: .monitoring, needs: [last]))
            last = .monitoring
        }
        let checks = HealthChecks.applicable(expectation(for: request))
        for check in checks {
            steps.append(
                try PlannedStep(.validate(check), role: .validation, needs: [last], params: CheckParams(check: check)))
        }
        steps.append(PlannedStep(.healthReport, role: .validation, needs: checks.map { .validate($0) }))
        steps.append(PlannedStep(.docs, role: .docs, needs: [.healthReport]))
        return Plan(steps: steps)
    }

    /// The steps of a workflow that acts on an earlier one (the plan step's params: `operation`, `target`, and for
    /// a destroy `infraAgent`, the infra agent that ran the target's provision step): `validate` runs the create
    /// workflow's checks and report again; `destroy` runs the `destroy` step on that agent, where the Terraform
    /// state is. Every step's params name the target.
    /// - Throws: `ShoalError(.invalidInput)` for an unknown operation or missing params.
    public static func operationPlan(params: OperationPlanParams, request: WorkflowRequest) throws -> Plan {
        let target = params.target
        guard Names.isDNSLabel(target) else {
            throw ShoalError(.invalidInput, "an operation plan needs the target workflow's id")
        }
        switch params.operation {
        case .validate:
            let checks = HealthChecks.applicable(expectation(for: request))
            var steps = try checks.map { check in
                try PlannedStep(
                    .validate(check), role: .validation, needs: [.plan],
                    params: CheckParams(check: check, target: target))
            }
            steps.append(
                try PlannedStep(
                    .healthReport, role: .validation, needs: checks.map { .validate($0) },
                    params: HealthReportParams(target: target)))
            return Plan(steps: steps)
        case .destroy:
            guard let agent = params.infraAgent, Names.isAgentID(agent) else {
                throw ShoalError(.invalidInput, "a destroy plan needs the infra agent that provisioned \(target)")
            }
            return Plan(steps: [
                try PlannedStep(
                    .destroy, role: .infra, needs: [.plan], critical: true,
                    params: DestroyParams(target: target, agent: agent))
            ])
        }
    }
}

import Foundation
