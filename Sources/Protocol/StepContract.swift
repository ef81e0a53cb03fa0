import FoundationEssentials

// The step contract: what each kind of step is called, what it is given (its params) and what it hands to the
// steps after it (its output), declared once. On the wire, params and outputs stay JSON objects
// (`StepAssignment.params`, `StepOutput.values`, `StepSnapshot.values`): the types below encode to exactly those
// objects, so protocol v2 and the journals written before them are unchanged. Everything that reads params or
// outputs goes through the typed accessors at the end of this file; a value of the wrong shape is a
// `StepContractError` naming the step and the field, never a trap.

// MARK: Step names

/// The name of a step, typed: what the plan calls it and what the wire carries (`wireName`).
public enum StepName: Hashable, Sendable, CustomStringConvertible {
    /// `plan`: the planner (or the bench planner) turns the request into the other steps.
    case plan
    /// `preflight/<role>`: a real deployment's check of one role's programs, before anything changes.
    case preflight(Role)
    /// `provision`: Terraform and the cluster's addresses and kubeconfig.
    case provision
    /// `gitops-engine`: Argo CD's install.
    case gitopsEngine
    /// `monitoring`: the monitoring stack committed to the GitOps repository and handed to Argo CD.
    case monitoring
    /// `validate/<check>`: one health check.
    case validate(HealthCheckKind)
    /// `health-report`: the score of every check.
    case healthReport
    /// `docs`: the runbook.
    case docs
    /// `destroy`: terraform destroy where the target workflow's state is.
    case destroy
    /// `s<N>`: a no-op step of the bench planner.
    case bench(Int)
    /// Any other name a plan may give (the coordinator runs any DAG); no agent of shoal's roles runs one.
    case other(String)

    /// Parses a wire name; a name that is none of shoal's step kinds is `.other`.
    public init(_ wireName: String) {
        switch wireName {
        case "plan": self = .plan
        case "provision": self = .provision
        case "gitops-engine": self = .gitopsEngine
        case "monitoring": self = .monitoring
        case "health-report": self = .healthReport
        case "docs": self = .docs
        case "destroy": self = .destroy
        default:
            let parts = wireName.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2, parts[0] == "preflight", let role = Role(rawValue: String(parts[1])) {
                self = .preflight(role)
            } else if parts.count == 2, parts[0] == "validate", let check = HealthCheckKind(rawValue: String(parts[1]))
            {
                self = .validate(check)
            } else if wireName.utf8.count > 1, wireName.utf8.count <= 7, wireName.first == "s",
                let index = Int(wireName.dropFirst()), index >= 0, "s\(index)" == wireName
            {
                self = .bench(index)
            } else {
                self = .other(wireName)
            }
        }
    }

    /// The name on the wire, in the journal and in the output.
    public var wireName: String {
        switch self {
        case .plan: "plan"
        case .preflight(let role): "preflight/\(role.rawValue)"
        case .provision: "provision"
        case .gitopsEngine: "gitops-engine"
        case .monitoring: "monitoring"
        case .validate(let check): "validate/\(check.rawValue)"
        case .healthReport: "health-report"
        case .docs: "docs"
        case .destroy: "destroy"
        case .bench(let index): "s\(index)"
        case .other(let name): name
        }
    }

    public var description: String { wireName }

    /// The check of a `validate/<check>` step, nil for any other step.
    public var check: HealthCheckKind? { if case .validate(let check) = self { check } else { nil } }
}

// MARK: Artifacts

/// The names of the artifacts steps hand on (`StepContext.artifact(_:)` finds the latest of a name).
public enum ArtifactName {
    /// The cluster's kubeconfig (provision; sensitive).
    public static let kubeconfig = "kubeconfig"
    /// The K3s join token (provision; sensitive; journal only).
    public static let k3sToken = "k3s-token"
    /// Demo mode: the simulated cluster's state, updated by every step that changes it (sensitive).
    public static let clusterState = "cluster-state"
    /// Argo CD's initial admin password (gitops-engine; sensitive).
    public static let argocdAdminPassword = "argocd-admin-password"
    /// Grafana's admin password (monitoring; sensitive).
    public static let grafanaAdminPassword = "grafana-admin-password"
    /// The example PostgreSQL's password (monitoring with `--examples`; sensitive).
    public static let postgresPassword = "postgres-password"
    /// The in-cluster git server's push password (monitoring; sensitive).
    public static let gitopsPushPassword = "gitops-push-password"
    /// The health report as a JSON document (health-report).
    public static let healthReport = "health-report"
    /// The runbook (docs).
    public static let runbook = "runbook"
}

// MARK: Params

/// Params of the `plan` step of a workflow that acts on an earlier one (`shoal validate`, `shoal destroy` through
/// a coordinator).
public struct OperationPlanParams: Codable, Sendable, Equatable {
    public var operation: WorkflowOperation.Kind
    /// The workflow acted on.
    public var target: String
    /// destroy: the infra agent that ran the target's provision step, where its Terraform state is.
    public var infraAgent: String?

    public init(operation: WorkflowOperation.Kind, target: String, infraAgent: String? = nil) {
        self.operation = operation
        self.target = target
        self.infraAgent = infraAgent
    }
}

/// Params of the bench planner's `plan` step (`make bench`).
public struct BenchPlanParams: Codable, Sendable, Equatable {
    public enum Shape: String, Codable, Sendable, CaseIterable {
        /// Each step needs the one before.
        case chain
        /// No step needs another.
        case independent
    }

    public var shape: Shape
    /// How many no-op steps (1-100,000).
    public var steps: Int

    public init(shape: Shape, steps: Int) {
        self.shape = shape
        self.steps = steps
    }
}

/// Params of a `validate/<check>` step.
public struct CheckParams: Codable, Sendable, Equatable {
    public var check: HealthCheckKind
    /// The workflow whose cluster is checked, in a validate workflow.
    public var target: String?

    public init(check: HealthCheckKind, target: String? = nil) {
        self.check = check
        self.target = target
    }
}

/// Params of the `health-report` step (none in a create workflow).
public struct HealthReportParams: Codable, Sendable, Equatable {
    /// The workflow whose cluster was checked, in a validate workflow.
    public var target: String?

    public init(target: String? = nil) { self.target = target }
}

/// Params of the `destroy` step.
public struct DestroyParams: Codable, Sendable, Equatable {
    /// The workflow whose cluster goes.
    public var target: String
    /// The infra agent that holds its Terraform state: the step is pinned to it.
    public var agent: String

    public init(target: String, agent: String) {
        self.target = target
        self.agent = agent
    }
}

/// What the coordinator reads in any step's params: `agent` pins the step to that agent (a destroy step to the
/// infra agent holding the state). Other fields belong to the step kind.
public struct StepPin: Codable, Sendable, Equatable {
    public var agent: String?
    public init(agent: String? = nil) { self.agent = agent }
}

// MARK: Outputs

/// A step's output type, with the one step kind that returns it when there is one.
public protocol StepOutputContract: Codable, Sendable, Equatable {
    /// The step whose output this is; nil for kinds with many steps (`preflight/<role>`, `validate/<check>`).
    static var step: StepName? { get }
}

/// `plan`: the steps that follow and, from the planner of a create workflow, the cluster's shape. The
/// coordinator adds `plan` to the workflow and keeps the other fields as the plan step's values.
public struct PlanOutput: StepOutputContract {
    public static let step: StepName? = .plan
    public var plan: Plan
    public var servers: Int?
    public var agents: Int?
    public var highAvailability: Bool?
    /// `embedded etcd` or `sqlite`.
    public var datastore: String?
    /// e.g. `2 vCPU / 4 GiB`.
    public var nodeSize: String?

    public init(
        plan: Plan, servers: Int? = nil, agents: Int? = nil, highAvailability: Bool? = nil, datastore: String? = nil,
        nodeSize: String? = nil
    ) {
        self.plan = plan
        self.servers = servers
        self.agents = agents
        self.highAvailability = highAvailability
        self.datastore = datastore
        self.nodeSize = nodeSize
    }
}

/// `preflight/<role>`: what was checked, where.
public struct PreflightOutput: StepOutputContract {
    public static let step: StepName? = nil
    public var host: String
    /// The programs and conditions found.
    public var checked: [String]

    public init(host: String, checked: [String]) {
        self.host = host
        self.checked = checked
    }
}

/// `terraform plan`'s counts.
public struct TerraformPlanCounts: Codable, Sendable, Equatable {
    public var add: Int
    public var change: Int
    public var destroy: Int

    public init(add: Int, change: Int, destroy: Int) {
        self.add = add
        self.change = change
        self.destroy = destroy
    }
}

/// `provision`: the cluster's nodes and addresses. The kubeconfig travels as the `kubeconfig` artifact (and the
/// join token as `k3s-token`, demo mode's model as `cluster-state`), not in the output.
public struct ProvisionOutput: StepOutputContract {
    public static let step: StepName? = .provision
    public var target: Target
    /// The planned node names.
    public var nodes: [String]
    public var k3sVersion: String
    /// What Terraform did, in one line.
    public var terraform: String
    public var terraformPlan: TerraformPlanCounts?
    /// Where the NodePorts answer for other hosts.
    public var nodeAddress: String
    /// The API server's URL as the kubeconfig names it.
    public var apiEndpoint: String
    /// docker target: the docker host's address inside the node containers (`host.k3d.internal`).
    public var hostGateway: String?
    /// Real mode: the nodes found Ready.
    public var readyNodes: [String]?

    public init(
        target: Target, nodes: [String], k3sVersion: String, terraform: String,
        terraformPlan: TerraformPlanCounts? = nil, nodeAddress: String, apiEndpoint: String, hostGateway: String? = nil,
        readyNodes: [String]? = nil
    ) {
        self.target = target
        self.nodes = nodes
        self.k3sVersion = k3sVersion
        self.terraform = terraform
        self.terraformPlan = terraformPlan
        self.nodeAddress = nodeAddress
        self.apiEndpoint = apiEndpoint
        self.hostGateway = hostGateway
        self.readyNodes = readyNodes
    }
}

/// `gitops-engine`: the Argo CD that was rolled out (its admin password is the `argocd-admin-password` artifact).
public struct ArgoCDOutput: StepOutputContract {
    public static let step: StepName? = .gitopsEngine
    public var version: String
    public var nodePort: Int
    public var namespace: String

    public init(version: String, nodePort: Int, namespace: String) {
        self.version = version
        self.nodePort = nodePort
        self.namespace = namespace
    }
}

/// Where the GitOps repository went (`monitoring`'s `gitopsSource`).
public enum GitOpsSourceKind: String, Codable, Sendable, CaseIterable {
    /// The git server shoal installs in the cluster.
    case inCluster = "in-cluster"
    /// The operator's remote (`--gitops-remote`).
    case remote
    /// Served by the monitoring agent itself (`--gitops-advertise`).
    case host
}

/// `monitoring`: the GitOps repository and what Argo CD was given.
public struct MonitoringOutput: StepOutputContract {
    public static let step: StepName? = .monitoring
    /// The URL the Applications read.
    public var repoURL: String
    /// The commit handed to Argo CD.
    public var commit: String
    /// The Applications waited for (empty without Argo CD).
    public var applications: [String]
    /// The monitoring stack's manifest files.
    public var manifests: [String]
    public var gitopsSource: GitOpsSourceKind
    /// Demo mode with `--gitops-advertise host.k3d.internal`: a loopback URL of the same repository, for steps on
    /// the monitoring agent's host.
    public var servedURL: String?
    /// Real mode, in-cluster git server: where the repository was pushed from outside the cluster.
    public var pushURL: String?

    public init(
        repoURL: String, commit: String, applications: [String], manifests: [String], gitopsSource: GitOpsSourceKind,
        servedURL: String? = nil, pushURL: String? = nil
    ) {
        self.repoURL = repoURL
        self.commit = commit
        self.applications = applications
        self.manifests = manifests
        self.gitopsSource = gitopsSource
        self.servedURL = servedURL
        self.pushURL = pushURL
    }
}

/// `validate/<check>`: the check's verdict and the validation agent that ran it.
public struct CheckOutput: StepOutputContract {
    public static let step: StepName? = nil
    public var result: CheckResult
    public var agent: String

    public init(result: CheckResult, agent: String) {
        self.result = result
        self.agent = agent
    }
}

/// One check in the health report.
public struct HealthReportCheck: Codable, Sendable, Equatable {
    public var name: String
    public var passed: Bool
    public var weight: Int
    public var message: String
    public var remedy: String?
    /// The validation agent that ran it (`?` when unknown).
    public var agent: String

    public init(name: String, passed: Bool, weight: Int, message: String, remedy: String?, agent: String) {
        self.name = name
        self.passed = passed
        self.weight = weight
        self.message = message
        self.remedy = remedy
        self.agent = agent
    }
}

/// `health-report`: the score (see docs/validation.md) and every check.
public struct HealthReportOutput: StepOutputContract {
    public static let step: StepName? = .healthReport
    /// 0-100.
    public var score: Int
    /// `healthy`, `degraded` or `unhealthy`.
    public var status: String
    public var checks: [HealthReportCheck]

    public init(score: Int, status: String, checks: [HealthReportCheck]) {
        self.score = score
        self.status = status
        self.checks = checks
    }
}

/// `docs`: where the runbook is, in the output tree.
public struct DocsOutput: StepOutputContract {
    public static let step: StepName? = .docs
    public var path: String
    public init(path: String) { self.path = path }
}

/// `destroy`: what terraform destroy removed, where.
public struct DestroyOutput: StepOutputContract {
    public static let step: StepName? = .destroy
    /// The infra agent's host.
    public var host: String
    /// The Terraform directory.
    public var directory: String
    public var destroyedResources: Int

    public init(host: String, directory: String, destroyedResources: Int) {
        self.host = host
        self.directory = directory
        self.destroyedResources = destroyedResources
    }
}

// MARK: Errors

/// Params or an output that do not have their step kind's shape.
public struct StepContractError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The step concerned.
    public var step: String
    /// `params` or `output`.
    public var part: String
    /// The field, dotted (`checks.2.weight`), empty for the whole object.
    public var field: String
    /// What is wrong, in a few words.
    public var problem: String

    public init(step: String, part: String, field: String, problem: String) {
        self.step = step
        self.part = part
        self.field = field
        self.problem = problem
    }

    public var description: String {
        "step '\(Self.printable(step))' \(part)" + (field.isEmpty ? "" : " field '\(Self.printable(field))'")
            + ": \(Self.printable(problem))"
    }

    /// One line of at most 200 characters: the text may come from the network.
    private static func printable(_ text: String) -> String {
        let line = String(text.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : Character($0) })
        return line.count > 200 ? String(line.prefix(200)) + "..." : line
    }
}

// MARK: Encoding and decoding

/// The one place where params and outputs cross between their types and their JSON objects.
public enum StepContract {
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    /// The JSON object `value` encodes to.
    /// - Throws: `StepContractError` when it does not encode to an object.
    public static func object<T: Encodable>(
        _ value: T, step: StepName, part: String = "output"
    ) throws(StepContractError) -> [String: JSONValue] {
        do {
            let data = try encoder.encode(value)
            let read = try JSONReader.parse(Array(data)) ?? JSONDecoder().decode(JSONValue.self, from: data)
            guard case .object(let object) = read else {
                throw StepContractError(step: step.wireName, part: part, field: "", problem: "not a JSON object")
            }
            return object
        } catch let error as StepContractError { throw error } catch {
            throw StepContractError(step: step.wireName, part: part, field: "", problem: "does not encode: \(error)")
        }
    }

    /// Decodes `object` as `type`.
    /// - Throws: `StepContractError` naming the step, the part and the field that is missing or of another type.
    public static func decode<T: Decodable>(
        _ type: T.Type, from object: [String: JSONValue], step: String, part: String
    ) throws(StepContractError) -> T {
        var json = CompactJSON()
        json.object(object)
        do { return try JSONDecoder().decode(type, from: Data(json.bytes)) } catch let error as DecodingError {
            // `checks.2.weight`, not `checks.Index 2.weight`.
            func dotted(_ path: [any CodingKey]) -> String {
                path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            }
            let (field, problem): (String, String)
            switch error {
            case .keyNotFound(let key, let context):
                field = dotted(context.codingPath + [key])
                problem = "missing"
            case .valueNotFound(let wanted, let context):
                field = dotted(context.codingPath)
                problem = "null where \(describe(wanted)) is required"
            case .typeMismatch(let wanted, let context):
                field = dotted(context.codingPath)
                problem = "not \(describe(wanted))"
            case .dataCorrupted(let context):
                field = dotted(context.codingPath)
                problem = context.debugDescription
            @unknown default:
                field = ""
                problem = "\(error)"
            }
            throw StepContractError(step: step, part: part, field: field, problem: problem)
        } catch { throw StepContractError(step: step, part: part, field: "", problem: "\(error)") }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "an array" }
            return name.hasPrefix("Dictionary") ? "an object" : name
        }
    }
}

extension JSONValue {
    /// The JSON value `value` encodes to.
    /// - Throws: what `JSONEncoder` throws.
    public init<T: Encodable>(encoding value: T) throws {
        let data = try JSONEncoder().encode(value)
        self = try JSONDecoder().decode(JSONValue.self, from: data)
    }

    /// Decodes the value as `type`.
    /// - Throws: `DecodingError`.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: JSONEncoder().encode(self))
    }
}

// MARK: Typed accessors

extension StepOutput {
    /// An output whose values are `typed`, encoded as its JSON object.
    /// - Throws: `StepContractError` when `typed` does not encode to an object (it always does for the contract's
    ///   types).
    public init<T: StepOutputContract>(
        summary: String, typed: T, artifacts: [Artifact] = [], log: [String] = []
    ) throws(StepContractError) {
        self.init(
            summary: summary, values: try StepContract.object(typed, step: T.step ?? .other("?")), artifacts: artifacts,
            log: log)
    }

    /// The values as the output of `step`.
    /// - Throws: `StepContractError` naming the step and the field.
    public func decode<T: StepOutputContract>(_ type: T.Type, step: String) throws(StepContractError) -> T {
        try StepContract.decode(type, from: values, step: step, part: "output")
    }

    /// A plan step's plan, and the values the plan step keeps (the other fields of `PlanOutput`).
    /// - Throws: `StepContractError` when the values are not a `PlanOutput`.
    public func splitPlan() throws(StepContractError) -> (plan: Plan, kept: [String: JSONValue]) {
        var kept = values
        kept.removeValue(forKey: "plan")
        // A large plan is read from its values directly; the rest of the output is checked as before, around a
        // plan of no steps. A plan the quick reading is unsure of is decoded whole, which names what is wrong.
        if let value = values["plan"], let plan = Plan.quick(value) {
            var rest = kept
            rest["plan"] = ["steps": []]
            _ = try StepContract.decode(PlanOutput.self, from: rest, step: StepName.plan.wireName, part: "output")
            return (plan, kept)
        }
        let output = try decode(PlanOutput.self, step: StepName.plan.wireName)
        return (output.plan, kept)
    }
}

extension StepAssignment {
    /// The step's params as `type` (an absent field is absent, so a step without params decodes a type whose
    /// fields are all optional).
    /// - Throws: `StepContractError` naming the step and the field.
    public func params<T: Decodable>(_ type: T.Type, step: String) throws(StepContractError) -> T {
        try StepContract.decode(type, from: params, step: step, part: "params")
    }

    /// The output of the dependency `step`, nil when no step of that name ran before this one or returned values.
    /// - Throws: `StepContractError` when it has another shape.
    public func output<T: StepOutputContract>(
        of step: StepName, as type: T.Type = T.self
    ) throws(StepContractError) -> T? {
        guard let values = inputs[step.wireName] else { return nil }
        return try StepContract.decode(type, from: values, step: step.wireName, part: "output")
    }

    /// The outputs of the `validate/<check>` steps before this one, ordered by check name.
    /// - Throws: `StepContractError` when one has another shape.
    public func checkOutputs() throws(StepContractError) -> [CheckOutput] {
        var outputs: [CheckOutput] = []
        for (name, values) in inputs.sorted(by: { $0.key < $1.key }) where StepName(name).check != nil {
            outputs.append(try StepContract.decode(CheckOutput.self, from: values, step: name, part: "output"))
        }
        return outputs
    }
}

extension PlannedStep {
    /// A step of kind `name` with typed params.
    /// - Throws: `StepContractError` when `params` does not encode to an object.
    public init<P: Encodable>(
        _ name: StepName, role: Role, needs: [StepName] = [], critical: Bool = false, params: P
    ) throws(StepContractError) {
        self.init(
            name: name.wireName, role: role, needs: needs.map(\.wireName), critical: critical,
            params: try StepContract.object(params, step: name, part: "params"))
    }

    /// A step of kind `name` without params.
    public init(_ name: StepName, role: Role, needs: [StepName] = [], critical: Bool = false) {
        self.init(name: name.wireName, role: role, needs: needs.map(\.wireName), critical: critical)
    }

    public var kind: StepName { StepName(name) }
}

extension StepKey { public var kind: StepName { StepName(step) } }

extension Submit {
    /// A submit with typed params for its `plan` step (the bench planner's workload).
    /// - Throws: `StepContractError` when `params` does not encode to an object.
    public init<P: Encodable>(request: WorkflowRequest, planner: Role, planParams: P) throws(StepContractError) {
        self.init(
            request: request, planner: planner, params: try StepContract.object(planParams, step: .plan, part: "params")
        )
    }
}

extension WorkflowSnapshot {
    /// The step of that name, when the workflow has one.
    public func step(_ name: StepName) -> StepSnapshot? { step(name.wireName) }

    /// The output of the step that returns `type` (`ProvisionOutput`, `MonitoringOutput`, ...), nil when that step
    /// has not succeeded.
    /// - Throws: `StepContractError` when its values have another shape.
    public func output<T: StepOutputContract>(_ type: T.Type) throws(StepContractError) -> T? {
        guard let name = T.step, let step = step(name), step.state == .succeeded else { return nil }
        return try step.output(as: type)
    }

    /// The outputs of the `validate/<check>` steps that succeeded, in workflow order.
    /// - Throws: `StepContractError` when one has another shape.
    public func checkOutputs() throws(StepContractError) -> [CheckOutput] {
        var outputs: [CheckOutput] = []
        for step in steps where step.kind.check != nil && step.state == .succeeded {
            outputs.append(try step.output(as: CheckOutput.self))
        }
        return outputs
    }
}

extension StepSnapshot {
    public var kind: StepName { StepName(name) }

    /// The step's values as `type`.
    /// - Throws: `StepContractError` naming the step and the field.
    public func output<T: StepOutputContract>(as type: T.Type) throws(StepContractError) -> T {
        try StepContract.decode(type, from: values, step: name, part: "output")
    }

    /// The agent the step's params pin it to (`StepPin`), nil when none or when the params have no such string.
    public var pinnedAgent: String? {
        guard let params, !params.isEmpty else { return nil }
        return (try? StepContract.decode(StepPin.self, from: params, step: name, part: "params"))?.agent
    }

    /// A step row written before steps had `params`, which kept them in `values` under `params`, with its params
    /// where they are now.
    public func movingLegacyParams() -> StepSnapshot {
        guard params == nil, state != .succeeded, let legacy = values["params"]?.objectValue else { return self }
        var step = self
        step.params = legacy
        step.values = [:]
        return step
    }
}
