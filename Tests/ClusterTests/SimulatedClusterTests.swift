import Foundation
import ShoalSupport
import Testing

@testable import Cluster
import Protocol

@Suite struct SimulatedClusterTests {
    @Test func provisionedClusterHasReadyK3sNodesAndSystemPods() async throws {
        let cluster = SimulatedCluster.provision(name: "demo", nodes: 3, servers: 3, k3sVersion: "v1.31.4+k3s1")
        let client = cluster.client(gitSource: InMemoryGitSource(repositories: [:]))
        let nodes = try await client.nodes()
        #expect(nodes.map(\.name) == ["demo-server-1", "demo-server-2", "demo-server-3"])
        #expect(nodes.allSatisfy { $0.ready && $0.roles == ["control-plane", "etcd", "master"] })
        #expect(nodes.allSatisfy { $0.kubeletVersion == "v1.31.4+k3s1" })
        let pods = try await client.pods(namespace: "kube-system")
        for prefix in ["coredns-", "metrics-server-", "local-path-provisioner-", "traefik-"] {
            #expect(pods.contains { $0.name.hasPrefix(prefix) && $0.healthy }, "\(prefix) missing")
        }
        #expect(pods.filter { $0.name.hasPrefix("svclb-traefik-") }.count == 3)
        #expect(pods.filter { $0.name.hasPrefix("helm-install-traefik") }.allSatisfy { $0.phase == "Succeeded" })
        let traefik = try #require(try await client.services(namespace: "kube-system").first { $0.name == "traefik" })
        #expect(traefik.type == "LoadBalancer")
        #expect(traefik.nodePorts.count == 2)
    }

    @Test func argoCDInstallCreatesItsPodsNodePortAndAdminSecret() async throws {
        var cluster = SimulatedCluster.provision(name: "demo", nodes: 1, k3sVersion: "v1.31.4+k3s1")
        cluster.installArgoCD(version: "v2.13.3", adminPassword: "s3cret-value")
        let client = cluster.client(gitSource: InMemoryGitSource(repositories: [:]))
        let pods = try await client.pods(namespace: "argocd")
        for component in [
            "argocd-application-controller-0", "argocd-repo-server-", "argocd-server-", "argocd-redis-",
            "argocd-applicationset-controller-", "argocd-dex-server-", "argocd-notifications-controller-",
        ] {
            #expect(pods.contains { $0.name.hasPrefix(component) && $0.healthy }, "\(component) missing")
        }
        let server = try #require(try await client.services(namespace: "argocd").first { $0.name == "argocd-server" })
        #expect(server.type == "NodePort")
        #expect(server.nodePorts == [30080, 30443])
        #expect(
            try await client.secretData(namespace: "argocd", name: "argocd-initial-admin-secret") == [
                "password": "s3cret-value"
            ])
        await #expect(throws: ShoalError.self) { try await client.secretData(namespace: "argocd", name: "nope") }
    }

    @Test func validStackInARealGitRepositoryPassesEveryCheckWithScore100() async throws {
        guard requireTool("git") else { return }
        let repository = try await TemporaryGitRepository()
        defer { repository.delete() }
        try await repository.commit(Stack.files)
        let client = try Stack.cluster(repoURL: repository.path).client(gitSource: GitCLISource())

        let apps = try await client.applications(namespace: "argocd")
        #expect(apps.count == 1)
        #expect(apps.first?.syncStatus == "Synced")
        #expect(apps.first?.healthStatus == "Healthy")

        let report = await HealthChecks.report(client: client, expectation: Stack.expectation)
        for check in report.checks where !check.passed {
            Issue.record("\(check.name) failed: \(check.message) \(check.details)")
        }
        #expect(report.checks.map(\.name) == HealthCheckKind.allCases.map(\.rawValue))
        #expect(report.score == 100)
        #expect(report.status == "healthy")
        #expect(report.checks.allSatisfy { $0.remedy == nil })
    }

    @Test func unparsableManifestLeavesApplicationOutOfSyncAndTheRemedyNamesTheFile() async throws {
        guard requireTool("git") else { return }
        let repository = try await TemporaryGitRepository()
        defer { repository.delete() }
        try await repository.commit(Stack.files)
        let healthyClient = try Stack.cluster(repoURL: repository.path).client(gitSource: GitCLISource())
        let before = await HealthChecks.report(client: healthyClient, expectation: Stack.expectation)
        #expect(before.score == 100)

        try await repository.commit(["monitoring/30-alerts.yaml": "kind: ConfigMap\nmetadata: [unclosed\n  name: x\n"])
        // The next agent receives the state the last one left, as it travels with the workflow.
        let state = try SimulatedCluster.decode(await healthyClient.cluster.encoded())
        let client = state.client(gitSource: GitCLISource())

        let app = try #require(try await client.applications(namespace: "argocd").first)
        #expect(app.syncStatus == "OutOfSync")
        #expect(app.conditions.first?.type == "ComparisonError")
        #expect(app.conditions.first?.message.contains("monitoring/30-alerts.yaml") == true)

        let check = await HealthChecks.run(.applications, client: client, expectation: Stack.expectation)
        #expect(!check.passed)
        #expect(check.remedy?.contains("monitoring/30-alerts.yaml") == true)
        let after = await HealthChecks.report(client: client, expectation: Stack.expectation)
        #expect(after.score < before.score)
        #expect(after.status == "degraded")
        // What the last good sync created keeps running, as in a real cluster.
        #expect(after.checks.first { $0.name == "prometheus" }?.passed == true)
    }

    @Test func brokenManifestBeforeTheFirstSyncLeavesTheApplicationMissing() async throws {
        guard requireTool("git") else { return }
        let repository = try await TemporaryGitRepository()
        defer { repository.delete() }
        var files = Stack.files
        files["monitoring/20-grafana.yaml"] = Stack.grafana.replacingOccurrences(
            of: "  selector:\n", with: "  selector: [\n")
        try await repository.commit(files)
        let client = try Stack.cluster(repoURL: repository.path).client(gitSource: GitCLISource())
        let app = try #require(try await client.applications(namespace: "argocd").first)
        #expect(app.syncStatus == "OutOfSync")
        #expect(app.healthStatus == "Missing")
        let report = await HealthChecks.report(client: client, expectation: Stack.expectation)
        let failed = Set(report.checks.filter { !$0.passed }.map(\.name))
        #expect(failed == ["applications", "prometheus", "grafana", "headlamp"])
        #expect(
            report.checks.first { $0.name == "applications" }?.remedy?.contains("monitoring/20-grafana.yaml") == true)
        #expect(report.score == 60)
    }

    @Test func deploymentReferencingAMissingSecretIsDegradedNamingTheFile() async throws {
        guard requireTool("git") else { return }
        let repository = try await TemporaryGitRepository()
        defer { repository.delete() }
        try await repository.commit(Stack.files)
        var cluster = try Stack.cluster(repoURL: repository.path, withGrafanaSecret: false)
        try cluster.apply(yaml: Stack.namespace, source: "monitoring-step")
        let client = cluster.client(gitSource: GitCLISource())

        let app = try #require(try await client.applications(namespace: "argocd").first)
        #expect(app.syncStatus == "Synced")
        #expect(app.healthStatus == "Degraded")
        let message = try #require(app.message)
        #expect(message.contains("monitoring/20-grafana.yaml"))
        #expect(message.contains("Secret \"grafana-admin\" not found"))

        let pods = try await client.pods(namespace: "monitoring")
        #expect(pods.first { $0.name.hasPrefix("grafana-") }?.reason == "CreateContainerConfigError")

        let report = await HealthChecks.report(client: client, expectation: Stack.expectation)
        let applications = try #require(report.checks.first { $0.name == "applications" })
        #expect(!applications.passed)
        #expect(applications.remedy?.contains("monitoring/20-grafana.yaml") == true)
        let grafana = try #require(report.checks.first { $0.name == "grafana" })
        #expect(!grafana.passed)
        #expect(grafana.message.contains("503"))
        // Prometheus scrapes Grafana, so that target is down too.
        let prometheus = try #require(report.checks.first { $0.name == "prometheus" })
        #expect(!prometheus.passed)
        #expect(prometheus.message.contains("grafana"))
        #expect(report.score < 100)
    }

    @Test func missingServiceAccountAndConfigMapAreNamedToo() async throws {
        var files = Stack.files
        files["monitoring/10-prometheus.yaml"] = Stack.prometheus
            .replacingOccurrences(of: "configMap: {name: prometheus-config}", with: "configMap: {name: prom-cfg}")
        files["monitoring/25-headlamp.yaml"] = Stack.headlamp
            .replacingOccurrences(
                of: "kind: ServiceAccount\nmetadata: {name: headlamp",
                with: "kind: ServiceAccount\nmetadata: {name: other")
        let source = InMemoryGitSource(repositories: ["mem://repo": files])
        let client = try Stack.cluster(repoURL: "mem://repo").client(gitSource: source)
        let app = try #require(try await client.applications(namespace: "argocd").first)
        #expect(app.healthStatus == "Degraded")
        let message = app.message ?? ""
        #expect(
            message.contains(
                "monitoring/10-prometheus.yaml: Deployment monitoring/prometheus: ConfigMap \"prom-cfg\" not found"))
        #expect(
            message.contains(
                "monitoring/25-headlamp.yaml: Deployment monitoring/headlamp: ServiceAccount \"headlamp\" not found"))
        // Without its ServiceAccount the ReplicaSet creates no pod at all.
        #expect(try await client.pods(namespace: "monitoring").contains { $0.name.hasPrefix("headlamp-") } == false)
    }

    @Test func appOfAppsParentStaysHealthyWhileAChildIsDegraded() async throws {
        var files = Stack.files
        files["monitoring/20-grafana.yaml"] = Stack.grafana.replacingOccurrences(
            of: "name: grafana-admin", with: "name: absent")
        files["apps/monitoring.yaml"] = """
            apiVersion: argoproj.io/v1alpha1
            kind: Application
            metadata: {name: monitoring, namespace: argocd}
            spec:
              project: default
              source: {repoURL: "mem://repo", path: monitoring, targetRevision: HEAD}
              destination: {server: "https://kubernetes.default.svc", namespace: monitoring}
              syncPolicy: {automated: {prune: true, selfHeal: true}}
            """
        var cluster = SimulatedCluster.provision(name: "demo", nodes: 2, k3sVersion: "v1.31.4+k3s1")
        cluster.installArgoCD(version: "v2.13.3")
        cluster.registerApplication(name: "root", repoURL: "mem://repo", path: "apps")
        let client = cluster.client(gitSource: InMemoryGitSource(repositories: ["mem://repo": files]))
        let apps = try await client.applications(namespace: "argocd")
        #expect(apps.map(\.name) == ["monitoring", "root"])
        #expect(apps.first { $0.name == "root" }?.healthy == true)
        #expect(apps.first { $0.name == "monitoring" }?.healthStatus == "Degraded")
        let check = await HealthChecks.run(.applications, client: client, expectation: Stack.expectation)
        #expect(!check.passed)
        #expect(check.message.contains("monitoring Synced/Degraded"))
    }

    @Test func sameInputsGiveTheSameEncodedState() async throws {
        let source = InMemoryGitSource(repositories: ["mem://repo": Stack.files])
        func build() async throws -> Data {
            let client = try Stack.cluster(repoURL: "mem://repo", nodes: 3).client(gitSource: source)
            _ = try await client.applications(namespace: "argocd")
            try await client.apply(manifests: Stack.grafanaAdminSecret, serverSide: true)
            return await client.cluster.encoded()
        }
        let first = try await build()
        let second = try await build()
        #expect(first == second)
        #expect(!first.isEmpty)
        // Pod names are derived, not random.
        let one = try await SimulatedCluster.decode(first).client(gitSource: source).pods(namespace: nil).map(\.name)
        let two = try await SimulatedCluster.decode(second).client(gitSource: source).pods(namespace: nil).map(\.name)
        #expect(one == two)
    }

    @Test func stateRoundTripsThroughEncodedJSON() async throws {
        let source = InMemoryGitSource(repositories: ["mem://repo": Stack.files])
        let client = try Stack.cluster(repoURL: "mem://repo").client(gitSource: source)
        _ = try await client.applications(namespace: "argocd")
        let cluster = await client.cluster
        let decoded = try SimulatedCluster.decode(cluster.encoded())
        #expect(decoded == cluster)
        #expect(decoded.encoded() == cluster.encoded())
        #expect(decoded.applicationStates["argocd/monitoring"]?.healthStatus == "Healthy")
        #expect(throws: ShoalError.self) { try SimulatedCluster.decode(Data("{\"name\": 1}".utf8)) }
    }

    @Test func pruneRemovesWhatLeftTheRepository() async throws {
        guard requireTool("git") else { return }
        let repository = try await TemporaryGitRepository()
        defer { repository.delete() }
        try await repository.commit(Stack.files)
        let client = try Stack.cluster(repoURL: "file://" + repository.path).client(gitSource: GitCLISource())
        #expect(
            try await client.services(namespace: "monitoring").map(\.name) == ["grafana", "headlamp", "prometheus"])
        try await repository.remove("monitoring/25-headlamp.yaml")
        #expect(try await client.services(namespace: "monitoring").map(\.name) == ["grafana", "prometheus"])
        let check = await HealthChecks.run(.headlamp, client: client, expectation: Stack.expectation)
        #expect(!check.passed)
    }

    @Test func serviceProxyAnswersInTheRecordedShapes() async throws {
        let source = InMemoryGitSource(repositories: ["mem://repo": Stack.files])
        let client = try Stack.cluster(repoURL: "mem://repo").client(gitSource: source)

        let ready = try await client.serviceProxyGet(
            namespace: "monitoring", service: "prometheus", port: 9090, path: "/-/ready")
        #expect(ready.status == 200)
        #expect(ready.body == (try Fixtures.text("prometheus/ready-200.txt")))

        let targets = try await client.serviceProxyGet(
            namespace: "monitoring", service: "prometheus", port: 9090, path: "/api/v1/targets")
        let recorded = try #require(
            try JSONSerialization.jsonObject(
                with: Data(Fixtures.text("prometheus/api-v1-targets-openapi-golden-example.json").utf8))
                as? [String: Any])
        let ours = try #require(try JSONSerialization.jsonObject(with: Data(targets.body.utf8)) as? [String: Any])
        #expect(Set(ours.keys) == Set(recorded.keys))
        let recordedData = try #require(recorded["data"] as? [String: Any])
        let ourData = try #require(ours["data"] as? [String: Any])
        #expect(Set(ourData.keys) == Set(recordedData.keys))
        let recordedTarget = try #require((recordedData["activeTargets"] as? [[String: Any]])?.first)
        let active = try #require(ourData["activeTargets"] as? [[String: Any]])
        #expect(active.allSatisfy { Set($0.keys) == Set(recordedTarget.keys) })
        let jobs = Set(active.compactMap { ($0["labels"] as? [String: Any])?["job"] as? String })
        #expect(jobs == ["prometheus", "kubernetes-apiservers", "kubernetes-nodes", "kubernetes-pods", "grafana"])
        #expect(active.allSatisfy { $0["health"] as? String == "up" })

        let health = try await client.serviceProxyGet(
            namespace: "monitoring", service: "grafana", port: 3000, path: "/api/health")
        #expect(health.status == 200)
        let recordedHealth = try #require(
            try JSONSerialization.jsonObject(with: Data(Fixtures.text("grafana/api-health-200-docs-example.json").utf8))
                as? [String: Any])
        let ourHealth = try #require(try JSONSerialization.jsonObject(with: Data(health.body.utf8)) as? [String: Any])
        #expect(Set(ourHealth.keys) == Set(recordedHealth.keys))
        #expect(ourHealth["version"] as? String == "11.4.0")

        let headlamp = try await client.serviceProxyGet(
            namespace: "monitoring", service: "headlamp", port: 80, path: "/")
        #expect(headlamp.status == 200)
        #expect(headlamp.body.contains("<title>Headlamp</title>"))

        let wrongPort = try await client.serviceProxyGet(
            namespace: "monitoring", service: "grafana", port: 9999, path: "/")
        #expect(wrongPort.status == 503)
        await #expect(throws: ShoalError.self) {
            try await client.serviceProxyGet(namespace: "monitoring", service: "absent", port: 80, path: "/")
        }
    }

    @Test func notReadyNodeFailsTheNodesCheckAndMakesTheReportUnhealthy() async throws {
        let source = InMemoryGitSource(repositories: ["mem://repo": Stack.files])
        var cluster = try Stack.cluster(repoURL: "mem://repo")
        cluster.setNodeReady("demo-agent-1", false)
        let client = cluster.client(gitSource: source)
        let check = await HealthChecks.run(.nodes, client: client, expectation: Stack.expectation)
        #expect(!check.passed)
        #expect(check.message == "1 of 2 planned nodes Ready (2 registered)")
        #expect(check.remedy?.contains("demo-agent-1") == true)
        let report = await HealthChecks.report(client: client, expectation: Stack.expectation)
        #expect(report.status == "unhealthy")
    }

    @Test func unreachableAPIServerFailsEveryCheckWithoutThrowing() async throws {
        var cluster = SimulatedCluster.provision(name: "demo", nodes: 1, k3sVersion: "v1.31.4+k3s1")
        cluster.reachable = false
        let client = cluster.client(gitSource: InMemoryGitSource(repositories: [:]))
        await #expect {
            try await client.nodes()
        } throws: { error in
            (error as? ShoalError)?.code == .unreachable
        }
        let report = await HealthChecks.report(client: client, expectation: HealthExpectation(nodes: 1))
        #expect(report.score == 0)
        #expect(report.status == "unhealthy")
        #expect(report.checks.allSatisfy { !$0.passed && $0.message.contains("refused") && $0.remedy != nil })
    }

    @Test func smallNodesFailTheCapacityCheck() async throws {
        let source = InMemoryGitSource(repositories: ["mem://repo": Stack.files])
        var cluster = SimulatedCluster.provision(
            name: "tiny", nodes: 1, k3sVersion: "v1.31.4+k3s1", nodeCPUMillicores: 400, nodeMemoryBytes: 1_073_741_824)
        cluster.installArgoCD(version: "v2.13.3")
        try cluster.apply(yaml: Stack.namespace, source: "monitoring-step")
        try cluster.apply(yaml: Stack.grafanaAdminSecret, source: "monitoring-step")
        cluster.registerApplication(name: "monitoring", repoURL: "mem://repo", path: "monitoring")
        let client = cluster.client(gitSource: source)
        let check = await HealthChecks.run(.capacity, client: client, expectation: HealthExpectation(nodes: 1))
        #expect(!check.passed)
        #expect(check.details.contains { $0.hasPrefix("unschedulable: monitoring/") })
        let app = try #require(try await client.applications(namespace: "argocd").first)
        #expect(app.healthStatus == "Degraded")
    }

    @Test func applyRejectsWhatTheAPIServerWouldReject() throws {
        var cluster = SimulatedCluster.provision(name: "demo", nodes: 1, k3sVersion: "v1.31.4+k3s1")
        #expect(throws: ShoalError.self) { try cluster.apply(yaml: Stack.grafana, source: "20-grafana.yaml") }  // no namespace
        let lines = try cluster.apply(yaml: Stack.namespace + "\n---\n" + Stack.headlamp, source: "x.yaml")
        #expect(
            lines == [
                "namespace/monitoring created", "serviceaccount/headlamp created", "service/headlamp created",
                "deployment.apps/headlamp created",
            ])
        #expect(try cluster.apply(yaml: Stack.headlamp, source: "x.yaml").allSatisfy { $0.hasSuffix("unchanged") })
        let clash = Stack.grafana.replacingOccurrences(of: "nodePort: 30300", with: "nodePort: 30466")
        #expect {
            try cluster.apply(yaml: clash, source: "20-grafana.yaml")
        } throws: { error in
            "\(error)".contains("20-grafana.yaml") && "\(error)".contains("already allocated")
        }
        let mismatch = Stack.headlamp.replacingOccurrences(
            of: "matchLabels: {app.kubernetes.io/name: headlamp}", with: "matchLabels: {app: other}")
        #expect(throws: ShoalError.self) { try cluster.apply(yaml: mismatch, source: "25-headlamp.yaml") }
        let application = """
            apiVersion: argoproj.io/v1alpha1
            kind: Application
            metadata: {name: x, namespace: default}
            spec: {}
            """
        #expect {
            try cluster.apply(yaml: application, source: "app.yaml")
        } throws: { error in
            (error as? ShoalError)?.code == .notFound && "\(error)".contains("install Argo CD")
        }
        // Applying an Application after the install registers it for syncing.
        cluster.installArgoCD(version: "v2.13.3")
        try cluster.apply(yaml: application, source: "app.yaml")
        #expect(cluster.objects["Application/default/x"] != nil)
    }
}
