import Foundation
import Testing

@testable import Protocol

@Suite struct StepContractTests {
    static let check = CheckResult(
        name: "nodes", passed: false, weight: 20, message: "1 of 3 nodes Ready", remedy: "journalctl -u k3s",
        details: ["node-1 Ready", "node-2 NotReady"], explanation: "Every planned node is registered and Ready.")

    /// One output of each step kind, as the agents return them.
    static let outputs: [(StepName, any StepOutputContract)] = [
        (
            .plan,
            PlanOutput(
                plan: Plan(steps: [
                    PlannedStep(name: "provision", role: .infra, needs: ["plan"], critical: true),
                    PlannedStep(
                        name: "validate/dns", role: .validation, needs: ["provision"], params: ["check": "dns"]),
                ]), servers: 3, agents: 2, highAvailability: true, datastore: "embedded etcd",
                nodeSize: "4 vCPU / 16 GiB")
        ),
        (.preflight(.infra), PreflightOutput(host: "lab-1", checked: ["terraform", "kubectl", "docker daemon"])),
        (
            .provision,
            ProvisionOutput(
                target: .docker, nodes: ["k-server-0", "k-agent-0"], k3sVersion: "v1.36.3+k3s1",
                terraform: "terraform init+validate+plan ok (4 to add)",
                terraformPlan: TerraformPlanCounts(add: 4, change: 0, destroy: 0), nodeAddress: "10.0.0.5",
                apiEndpoint: "https://10.0.0.5:6443", hostGateway: "172.17.0.1", readyNodes: ["k-server-0"])
        ),
        (.gitopsEngine, ArgoCDOutput(version: "v3.1.0", nodePort: 30080, namespace: "argocd")),
        (
            .monitoring,
            MonitoringOutput(
                repoURL: "http://git.shoal-git.svc/shoal/k.git", commit: String(repeating: "a", count: 40),
                applications: ["root", "monitoring"], manifests: ["monitoring/10-prometheus.yaml"],
                gitopsSource: .inCluster, servedURL: "http://127.0.0.1:9418/k", pushURL: "http://10.0.0.5:30418/x.git")
        ),
        (.validate(.nodes), CheckOutput(result: check, agent: "validation-2")),
        (
            .healthReport,
            HealthReportOutput(
                score: 80, status: "degraded",
                checks: [
                    HealthReportCheck(
                        name: "nodes", passed: false, weight: 20, message: "m", remedy: "r", agent: "validation-2"),
                    HealthReportCheck(name: "dns", passed: true, weight: 5, message: "ok", remedy: nil, agent: "?"),
                ])
        ),
        (.docs, DocsOutput(path: "docs/k/runbook.md")),
        (.destroy, DestroyOutput(host: "infra-host", directory: "/srv/terraform/k", destroyedResources: 7)),
    ]

    private func roundTrip<T: StepOutputContract>(_ output: T, step: StepName) throws -> Bool {
        let result = StepResult(
            outcome: .succeeded, output: try StepOutput(summary: "s", typed: output), error: nil, agent: "a", host: "h",
            pid: 1, startedAt: 1, finishedAt: 2)
        let frames = Codec.encode(Header(type: .result, workflow: "k", step: step.wireName, attempt: 1), result)
        let decoded = try Codec.decode(frames[...]).decode(StepResult.self)
        return try decoded.output.decode(T.self, step: step.wireName) == output
    }

    @Test func everyTypedOutputRoundTripsThroughTheCodec() throws {
        for (step, output) in Self.outputs { #expect(try roundTrip(output, step: step), "\(step)") }
    }

    @Test func typedParamsRoundTripThroughAnAssignment() throws {
        let step = try PlannedStep(
            .validate(.dns), role: .validation, needs: [.monitoring], params: CheckParams(check: .dns, target: "k"))
        #expect(step.params == ["check": "dns", "target": "k"])
        #expect(step.needs == ["monitoring"])
        let assignment = StepAssignment(
            role: .validation, request: WorkflowRequest(), params: step.params, inputs: [:], artifacts: [])
        let frames = Codec.encode(Header(type: .step), assignment)
        let decoded = try Codec.decode(frames[...]).decode(StepAssignment.self)
        #expect(try decoded.params(CheckParams.self, step: step.name) == CheckParams(check: .dns, target: "k"))
        let destroy = try PlannedStep(.destroy, role: .infra, params: DestroyParams(target: "k", agent: "infra-1"))
        #expect(
            StepSnapshot(name: destroy.name, role: .infra, needs: [], critical: true, params: destroy.params)
                .pinnedAgent == "infra-1")
        let bench = try Submit(
            request: WorkflowRequest(), planner: .bench, planParams: BenchPlanParams(shape: .chain, steps: 3))
        #expect(bench.params == ["shape": "chain", "steps": 3])
    }

    /// The typed outputs encode to the objects the handlers wrote as dictionaries before, so protocol v2 and the
    /// journals already written stay as they are.
    @Test func typedOutputsHaveTheShapeOfTheDictionariesBefore() throws {
        let argocd = try StepOutput(
            summary: "", typed: ArgoCDOutput(version: "v3.1.0", nodePort: 30080, namespace: "argocd"))
        #expect(argocd.values == ["version": "v3.1.0", "nodePort": .number(30080), "namespace": "argocd"])
        let destroy = try StepOutput(
            summary: "", typed: DestroyOutput(host: "h", directory: "/d", destroyedResources: 2))
        #expect(destroy.values == ["host": "h", "directory": "/d", "destroyedResources": .number(2)])
        let monitoring = try StepOutput(
            summary: "",
            typed: MonitoringOutput(
                repoURL: "r", commit: "c", applications: [], manifests: ["m"], gitopsSource: .remote))
        #expect(
            monitoring.values == [
                "repoURL": "r", "commit": "c", "applications": [], "manifests": ["m"], "gitopsSource": "remote",
            ])
    }

    /// Step rows as the journal held them before the typed contract (values built as dictionaries, numbers as
    /// doubles, an absent remedy as null) read as the typed outputs.
    @Test func stepsJournaledAsDictionariesReadAsTypedOutputs() throws {
        let report = #"""
            {"name":"health-report","role":"validation","needs":["validate/nodes"],"critical":false,
             "state":"succeeded","attempt":1,"values":{"score":75,"status":"degraded","checks":[
              {"name":"nodes","passed":true,"weight":20.0,"message":"3 of 3 Ready","remedy":null,"agent":"v-1"},
              {"name":"dns","passed":false,"weight":5,"message":"no endpoints","remedy":"restart CoreDNS","agent":"?"}]}}
            """#
        let step = try JSONDecoder().decode(StepSnapshot.self, from: Data(report.utf8))
        let output = try step.output(as: HealthReportOutput.self)
        #expect(output.score == 75)
        #expect(output.checks.map(\.weight) == [20, 5])
        #expect(output.checks[0].remedy == nil && output.checks[1].remedy == "restart CoreDNS")

        let provision = #"""
            {"name":"provision","role":"infra","needs":["plan"],"critical":true,"state":"succeeded","attempt":1,
             "values":{"target":"local","nodes":["k-server-0"],"k3sVersion":"v1.36.3+k3s1",
              "terraform":"terraform not installed: init/validate/plan skipped","nodeAddress":"127.0.0.1",
              "apiEndpoint":"https://127.0.0.1:6443"}}
            """#
        let workflow = WorkflowSnapshot(
            id: "k", state: .succeeded, request: WorkflowRequest(), createdAt: 0, finishedAt: 1,
            steps: [try JSONDecoder().decode(StepSnapshot.self, from: Data(provision.utf8))], error: nil, revision: 3)
        let typed = try #require(try workflow.output(ProvisionOutput.self))
        #expect(typed.nodeAddress == "127.0.0.1" && typed.hostGateway == nil && typed.terraformPlan == nil)
        #expect(try workflow.output(MonitoringOutput.self) == nil, "no monitoring step: no output")

        let legacy = #"""
            {"name":"validate/nodes","role":"validation","needs":[],"critical":false,"state":"failed","attempt":1,
             "values":{"params":{"check":"nodes"}}}
            """#
        let moved = try JSONDecoder().decode(StepSnapshot.self, from: Data(legacy.utf8)).movingLegacyParams()
        #expect(moved.params == ["check": "nodes"] && moved.values.isEmpty)
    }

    @Test(arguments: [
        (#"{"nodeAddress":5}"#, "field 'target': missing"),
        (
            #"{"target":"local","nodes":[],"k3sVersion":"v","terraform":"t","nodeAddress":5,"apiEndpoint":"a"}"#,
            "field 'nodeAddress': not a string"
        ),
        (
            #"{"target":"mars","nodes":[],"k3sVersion":"v","terraform":"t","nodeAddress":"n","apiEndpoint":"a"}"#,
            "field 'target'"
        ),
        (
            #"{"target":"local","nodes":[1],"k3sVersion":"v","terraform":"t","nodeAddress":"n","apiEndpoint":"a"}"#,
            "field 'nodes.0': not a string"
        ),
    ]) func aMalformedOutputIsAOneLineErrorNamingTheStepAndField(values: String, expected: String) throws {
        let object = try JSONDecoder().decode([String: JSONValue].self, from: Data(values.utf8))
        let output = StepOutput(summary: "", values: object)
        let error = try #require(throws: StepContractError.self) {
            try output.decode(ProvisionOutput.self, step: "provision")
        }
        #expect(error.description.hasPrefix("step 'provision' output"), "\(error)")
        #expect(error.description.contains(expected), "\(error)")
        #expect(!error.description.contains("\n"))
    }

    @Test func malformedParamsAreAOneLineErrorNotATrap() throws {
        let assignment = StepAssignment(
            role: .validation, request: WorkflowRequest(), params: ["check": "launch\nmissiles"], inputs: [:],
            artifacts: [])
        let error = try #require(throws: StepContractError.self) {
            try assignment.params(CheckParams.self, step: "validate/nodes")
        }
        #expect(error.description.hasPrefix("step 'validate/nodes' params field 'check'"), "\(error)")
        #expect(!error.description.contains("\n"))
        let missing = try #require(throws: StepContractError.self) {
            try StepAssignment(role: .infra, request: WorkflowRequest(), params: [:], inputs: [:], artifacts: [])
                .params(DestroyParams.self, step: "destroy")
        }
        #expect(missing.description == "step 'destroy' params field 'target': missing")
        // A check's output of another shape fails the report that reads it, by name.
        let bad = StepAssignment(
            role: .validation, request: WorkflowRequest(), params: [:],
            inputs: ["validate/dns": ["result": "old"], "provision": ["nodeAddress": "n"]], artifacts: [])
        let report = try #require(throws: StepContractError.self) { try bad.checkOutputs() }
        #expect(report.description.hasPrefix("step 'validate/dns' output field 'result'"), "\(report)")
        #expect(try bad.output(of: .monitoring, as: MonitoringOutput.self) == nil)
        #expect(throws: StepContractError.self) { try bad.output(of: .provision, as: ProvisionOutput.self) }
    }

    @Test func stepNamesParseAndPrintInOnePlace() {
        var names: [StepName] = [.plan, .provision, .gitopsEngine, .monitoring, .healthReport, .docs, .destroy]
        names += Role.allCases.map { .preflight($0) } + HealthCheckKind.allCases.map { .validate($0) }
        names += [.bench(0), .bench(99_999), .other("d7"), .other("validate/bogus"), .other("s01")]
        for name in names { #expect(StepName(name.wireName) == name, "\(name)") }
        #expect(StepName("validate/system-pods") == .validate(.systemPods))
        #expect(StepName("validate/system-pods").check == .systemPods)
        #expect(StepName("preflight/infra") == .preflight(.infra))
        #expect(StepName("gitops-engine").wireName == "gitops-engine")
        for other in ["validate/", "preflight/nobody", "s", "s-1", "s+1", "s1000000", "health-report/x", ""] {
            #expect(StepName(other) == .other(other), "\(other)")
        }
    }
}
