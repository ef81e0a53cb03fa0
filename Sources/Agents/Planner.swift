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
        if let operation = context.assignment.params["operation"] {
            let plan = try Planner.operationPlan(params: context.assignment.params, request: request)
            return StepOutput(
                summary: "\(operation.stringValue ?? "?") of "
                    + "\(context.assignment.params["target"]?.stringValue ?? "?"): \(plan.steps.count) step(s)",
                values: ["plan": try JSONValue(encoding: plan)])
        }
        let plan = Planner.plan(for: request)
        let topology = Planner.topology(for: request)
        let values: [String: JSONValue] = [
            "plan": try JSONValue(encoding: plan),
            "servers": .number(Double(topology.servers)),
            "agents": .number(Double(topology.agents)),
            "highAvailability": .bool(topology.highAvailability),
            "datastore": .string(topology.highAvailability ? "embedded etcd" : "sqlite"),
            "nodeSize": .string(topology.nodeSize),
        ]
        let summary =
            "\(plan.steps.count) steps; \(topology.servers) server(s) + \(topology.agents) agent(s), "
            + (topology.highAvailability ? "embedded etcd" : "single server") + ", nodes \(topology.nodeSize)"
        return StepOutput(summary: summary, values: values)
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
    public static func plan(for request: WorkflowRequest) -> Plan {
        var steps: [PlannedStep] = []
        var provisionNeeds = ["plan"]
        if request.realDeployment {
            var roles: [Role] = [.infra]
            if request.argocd { roles.append(.argocd) }
            if request.monitoring { roles.append(.monitoring) }
            roles.append(.validation)
            for role in roles {
                // Not critical: every preflight runs and reports, and provision, which needs them all, never starts.
                steps.append(PlannedStep(name: "preflight/\(role.rawValue)", role: role, needs: ["plan"]))
                provisionNeeds.append("preflight/\(role.rawValue)")
            }
        }
        steps.append(PlannedStep(name: "provision", role: .infra, needs: provisionNeeds, critical: true))
        var last = "provision"
        if request.argocd {
            steps.append(PlannedStep(name: "gitops-engine", role: .argocd, needs: [last]))
            last = "gitops-engine"
        }
        if request.monitoring {
            steps.append(PlannedStep(name: "monitoring", role: .monitoring, needs: [last]))
            last = "monitoring"
        }
        let checks = HealthChecks.applicable(expectation(for: request))
        for check in checks {
            steps.append(
                PlannedStep(name: "validate/\(check.rawValue)", role: .validation, needs: [last], params: ["check": .string(check.rawValue)]))
        }
        steps.append(PlannedStep(name: "health-report", role: .validation, needs: checks.map { "validate/\($0.rawValue)" }))
        steps.append(PlannedStep(name: "docs", role: .docs, needs: ["health-report"]))
        return Plan(steps: steps)
    }

    /// The steps of a workflow that acts on an earlier one (the plan step's params: `operation`, `target`, and for
    /// a destroy `infraAgent`, the infra agent that ran the target's provision step): `validate` runs the create
    /// workflow's checks and report again; `destroy` runs the `destroy` step on that agent, where the Terraform
    /// state is. Every step's params name the target.
    /// - Throws: `ShoalError(.invalidInput)` for an unknown operation or missing params.
    public static func operationPlan(params: [String: JSONValue], request: WorkflowRequest) throws -> Plan {
        guard let target = params["target"]?.stringValue, Names.isDNSLabel(target) else {
            throw ShoalError(.invalidInput, "an operation plan needs the target workflow's id")
        }
        switch params["operation"]?.stringValue {
        case "validate":
            let checks = HealthChecks.applicable(expectation(for: request))
            var steps = checks.map { check in
                PlannedStep(
                    name: "validate/\(check.rawValue)", role: .validation, needs: ["plan"],
                    params: ["check": .string(check.rawValue), "target": .string(target)])
            }
            steps.append(
                PlannedStep(
                    name: "health-report", role: .validation, needs: checks.map { "validate/\($0.rawValue)" },
                    params: ["target": .string(target)]))
            return Plan(steps: steps)
        case "destroy":
            guard let agent = params["infraAgent"]?.stringValue, Names.isAgentID(agent) else {
                throw ShoalError(.invalidInput, "a destroy plan needs the infra agent that provisioned \(target)")
            }
            return Plan(steps: [
                PlannedStep(
                    name: Provisioning.destroyStep, role: .infra, needs: ["plan"], critical: true,
                    params: ["target": .string(target), "agent": .string(agent)])
            ])
        default:
            throw ShoalError(
                .invalidInput, "unknown operation '\(Names.printable(params["operation"]?.stringValue ?? "?"))'")
        }
    }
}

extension JSONValue {
    /// Converts any Encodable into a JSON value.
    init<T: Encodable>(encoding value: T) throws {
        let data = try JSONEncoder().encode(value)
        self = try JSONDecoder().decode(JSONValue.self, from: data)
    }

    /// Decodes a JSON value as a Decodable type.
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: JSONEncoder().encode(self))
    }
}

import Foundation
