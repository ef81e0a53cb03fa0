import Foundation
import ShoalSupport
import Testing

@testable import Cluster
import Protocol

@Suite struct ManifestTests {
    @Test func parsesMultiDocumentYAMLAndExpandsLists() throws {
        let yaml = """
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: a, namespace: x}
            data: {port: 8080, enabled: true}
            ---
            # only a comment
            ---
            apiVersion: v1
            kind: List
            items:
            - {apiVersion: v1, kind: Secret, metadata: {name: b}}
            """
        let manifests = try ManifestParser.parse(yaml, source: "a.yaml")
        #expect(manifests.map(\.name) == ["a", "b"])
        #expect(manifests[0].namespace == "x")
        #expect(manifests[0].body["data", "port"] == .int(8080))
        #expect(manifests[0].body["data", "enabled"] == .bool(true))
        #expect(manifests[1].kind == "Secret")
    }

    @Test func rejectsTextThatIsNotYAMLNamingTheFile() {
        #expect {
            try ManifestParser.parse("kind: [unclosed\n", source: "monitoring/30-broken.yaml")
        } throws: { error in
            (error as? ShoalError)?.code == .invalidInput && "\(error)".contains("monitoring/30-broken.yaml")
        }
        #expect {
            try ManifestParser.parse("apiVersion: v1\nmetadata: {name: a}\n", source: "b.yaml")
        } throws: { error in
            "\(error)".contains("Object 'Kind' is missing")
        }
        #expect(throws: ShoalError.self) { try ManifestParser.parse("just text", source: "c.yaml") }
    }

    @Test func readsRecordedKubernetesYAML() throws {
        let manifests = try ManifestParser.parse(
            try Fixtures.text("kubernetes/k3s-deployments-kube-system-k3d-v1.20.6.yaml"), source: "fixture")
        #expect(
            Set(manifests.map(\.name)).isSuperset(of: [
                "coredns", "metrics-server", "local-path-provisioner", "traefik",
            ]))
    }

    @Test func parsesResourceQuantities() {
        #expect(Quantity.millicores("250m") == 250)
        #expect(Quantity.millicores("0.5") == 500)
        #expect(Quantity.millicores("2") == 2000)
        #expect(Quantity.millicores("abc") == nil)
        #expect(Quantity.bytes("128Mi") == 134_217_728)
        #expect(Quantity.bytes("1Gi") == 1_073_741_824)
        #expect(Quantity.bytes("500M") == 500_000_000)
        #expect(Quantity.bytes("1e3") == 1000)
        #expect(Quantity.bytes("3928188Ki") == 3_928_188 * 1024)
    }

    @Test func relabelingKeepsDropsAndRewrites() {
        let rules: [ManifestValue] = [
            .object([
                "source_labels": .array([.string("a"), .string("b")]), "action": .string("keep"),
                "regex": .string("x;y"),
            ]),
            .object([
                "source_labels": .array([.string("__address__"), .string("port")]),
                "regex": .string("([^:]+)(?::\\d+)?;(\\d+)"),
                "replacement": .string("$1:$2"), "target_label": .string("__address__"),
            ]),
        ]
        let kept = PrometheusDiscovery.relabel(
            ["a": "x", "b": "y", "__address__": "10.0.0.1:80", "port": "9100"], rules)
        #expect(kept?["__address__"] == "10.0.0.1:9100")
        #expect(PrometheusDiscovery.relabel(["a": "x", "b": "z"], rules) == nil)
    }
}

@Suite struct HealthReportTests {
    func result(_ name: String, _ passed: Bool, _ weight: Int) -> CheckResult {
        CheckResult(name: name, passed: passed, weight: weight, message: "")
    }

    @Test func scoreIsTheShareOfPassedWeightRoundedDown() {
        let all = HealthReport.make([result("nodes", true, 20), result("dns", true, 5)])
        #expect(all.score == 100)
        #expect(all.status == "healthy")
        let some = HealthReport.make([result("nodes", true, 20), result("grafana", false, 5), result("dns", true, 5)])
        #expect(some.score == 83)
        #expect(some.status == "degraded")
        let nodesDown = HealthReport.make([result("nodes", false, 20), result("dns", true, 80)])
        #expect(nodesDown.score == 80)
        #expect(nodesDown.status == "unhealthy")
        let low = HealthReport.make([result("applications", false, 20), result("dns", true, 5)])
        #expect(low.score == 20)
        #expect(low.status == "unhealthy")
        #expect(HealthReport.make([]).status == "unhealthy")
    }

    @Test func applicableChecksFollowThePlan() {
        #expect(HealthChecks.applicable(HealthExpectation(nodes: 1)) == HealthCheckKind.allCases)
        let bare = HealthChecks.applicable(
            HealthExpectation(nodes: 1, argocd: false, monitoring: false, headlamp: false))
        #expect(bare == [.nodes, .systemPods, .dns, .capacity])
        let weights = HealthCheckKind.allCases.reduce(0) { $0 + $1.weight }
        #expect(weights == 100)
    }

    @Test func reportRoundTripsAsJSON() throws {
        let report = HealthReport.make([
            CheckResult(
                name: "nodes", passed: false, weight: 20, message: "m", remedy: "r", details: ["d"], explanation: "e")
        ])
        let decoded = try JSONDecoder().decode(HealthReport.self, from: JSONEncoder().encode(report))
        #expect(decoded == report)
    }

    @Test func manifestFileNamesAreFoundInMessages() {
        let text = "Failed to load target state: failed to unmarshal \"monitoring/30-alerts.yaml\": x; apps/root.yml: y"
        #expect(HealthChecks.manifestFiles(in: text) == ["monitoring/30-alerts.yaml", "apps/root.yml"])
    }
}

@Suite struct GitCLISourceTests {
    @Test func readsAPathAtHeadThroughFileURLsAndReportsMissingPaths() async throws {
        guard requireTool("git") else { return }
        let repository = try await TemporaryGitRepository()
        defer { repository.delete() }
        try await repository.commit([
            "monitoring/a.yaml": "a: 1\n", "monitoring/sub/b.yaml": "b: 2\n", "other/c.yaml": "c",
        ])
        try await repository.commit(["monitoring/a.yaml": "a: 2\n"])
        let source = GitCLISource()
        let files = try await source.files(repoURL: "file://" + repository.path, revision: "HEAD", path: "monitoring")
        #expect(files.map(\.path) == ["monitoring/a.yaml", "monitoring/sub/b.yaml"])
        #expect(files.first?.contents == "a: 2\n")
        let branch = try await source.files(repoURL: repository.path, revision: "main", path: "/")
        #expect(branch.count == 3)
        await #expect {
            try await source.files(repoURL: repository.path, revision: "HEAD", path: "absent")
        } throws: { error in
            (error as? ShoalError)?.code == .notFound
        }
        await #expect {
            try await source.files(repoURL: repository.path + "-missing", revision: "HEAD", path: "monitoring")
        } throws: { error in
            (error as? ShoalError)?.code == .unreachable
        }
    }

    @Test func credentialsInURLsAreRedacted() {
        #expect(GitCLISource.redacted("https://user:token@example.com/repo.git") == "https://***@example.com/repo.git")
        #expect(GitCLISource.redacted("/srv/repo") == "/srv/repo")
    }
}
