import Foundation
import ShoalSupport
import Testing

@testable import Cluster

@Suite struct ApplicationSetTests {
    static let web = """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web, labels: {app: web}}
        spec:
          replicas: 1
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers: [{name: web, image: "nginx:1.27.4", resources: {requests: {cpu: 10m, memory: 16Mi}}}]
        """

    static func secret(_ name: String, server: String, role: String, fleet: String = "hub") -> String {
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: cluster-\(name)
          namespace: argocd
          labels:
            argocd.argoproj.io/secret-type: cluster
            shoal.dev/fleet: \(fleet)
            shoal.dev/fleet-role: \(role)
        type: Opaque
        stringData:
          name: \(name)
          server: \(server)
          config: '{"bearerToken":"t0ken-\(name)","tlsClientConfig":{"insecure":true}}'

        """
    }

    /// A hub with Argo CD, its own cluster Secret and two members, each member's model registered.
    static func fleet(_ appSets: String, files: [String: String]) throws -> (SimulatedClusterClient, MemoryGitSource) {
        var hub = SimulatedCluster.provision(name: "hub", nodes: 1, k3sVersion: "v1.33.1+k3s1")
        hub.installArgoCD(version: "v3.5.1", adminPassword: "test-password-123")
        try hub.apply(
            yaml: secret("hub", server: "https://kubernetes.default.svc", role: "fleet")
                + "---\n" + secret("east", server: "https://10.1.0.1:6443", role: "member")
                + "---\n" + secret("west", server: "https://10.2.0.1:6443", role: "member")
                + "---\n" + secret("other", server: "https://10.3.0.1:6443", role: "member", fleet: "elsewhere"),
            source: "test")
        for (name, server) in [("east", "https://10.1.0.1:6443"), ("west", "https://10.2.0.1:6443")] {
            hub.registerFleetMember(
                SimulatedCluster.provision(name: name, nodes: 1, k3sVersion: "v1.33.1+k3s1"), server: server)
        }
        hub.registerApplication(name: "root", repoURL: "mem://repo", path: "apps", destinationNamespace: "argocd")
        let source = MemoryGitSource(files.merging(["apps/sets.yaml": appSets]) { first, _ in first })
        return (hub.client(gitSource: source), source)
    }

    static let clusters = """
        apiVersion: argoproj.io/v1alpha1
        kind: ApplicationSet
        metadata: {name: web, namespace: argocd}
        spec:
          goTemplate: true
          goTemplateOptions: ["missingkey=error"]
          generators:
            - clusters:
                selector:
                  matchLabels: {shoal.dev/fleet: hub}
          template:
            metadata: {name: 'web-{{.name}}', labels: {fleet-role: '{{index .metadata.labels "shoal.dev/fleet-role"}}'}}
            spec:
              project: default
              source: {repoURL: mem://repo, targetRevision: HEAD, path: web}
              destination: {server: '{{.server}}', namespace: web}
              syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
        """

    @Test func aClusterGeneratorYieldsOneApplicationPerSelectedClusterDeployedThere() async throws {
        let (client, _) = try Self.fleet(Self.clusters, files: ["web/deployment.yaml": Self.web])
        let apps = try await client.applications(namespace: "argocd").filter { $0.name.hasPrefix("web-") }
        #expect(apps.map(\.name).sorted() == ["web-east", "web-hub", "web-west"])
        #expect(apps.allSatisfy { $0.healthy }, "\(apps)")
        #expect(apps.first { $0.name == "web-hub" }?.destinationServer == nil)
        #expect(apps.first { $0.name == "web-east" }?.destinationServer == "https://10.1.0.1:6443")
        let state = await client.cluster
        // The labels come from each cluster's Secret; the objects land in the cluster each Application names.
        let east = try #require(state.objects["Application/argocd/web-east"])
        #expect(east.body["metadata", "labels", "fleet-role"]?.string == "member")
        #expect(state.objects["Deployment/web/web"]?.owner == "argocd/web-hub")
        #expect(state.fleetMembers?["https://10.1.0.1:6443"]?.objects["Deployment/web/web"]?.owner == "argocd/web-east")
        #expect(state.fleetMembers?["https://10.2.0.1:6443"]?.objects["Deployment/web/web"]?.owner == "argocd/web-west")
        let members = FleetHealth.members(of: state, fleet: "hub")
        #expect(members.map(\.name) == ["east", "west"])
        let pods = try await #require(members.first?.client).pods(namespace: "web")
        #expect(pods.count == 1 && pods.allSatisfy { $0.healthy })
    }

    @Test func aMatrixIsTheCartesianProductAndFasttemplateReadsFlatParameters() async throws {
        let matrix = """
            apiVersion: argoproj.io/v1alpha1
            kind: ApplicationSet
            metadata: {name: apps, namespace: argocd}
            spec:
              generators:
                - matrix:
                    generators:
                      - clusters:
                          selector:
                            matchLabels: {shoal.dev/fleet: hub, shoal.dev/fleet-role: member}
                      - list:
                          elements: [{app: web, path: web}, {app: api, path: web}]
              template:
                metadata: {name: '{{app}}-{{name}}', annotations: {role: '{{metadata.labels.shoal.dev/fleet-role}}'}}
                spec:
                  project: default
                  source: {repoURL: mem://repo, targetRevision: HEAD, path: '{{path}}'}
                  destination: {server: '{{server}}', namespace: '{{app}}'}
                  syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
            """
        let (client, source) = try Self.fleet(matrix, files: ["web/deployment.yaml": Self.web])
        let apps = try await client.applications(namespace: "argocd").filter { $0.name != "root" }
        #expect(apps.map(\.name).sorted() == ["api-east", "api-west", "web-east", "web-west"])
        #expect(apps.allSatisfy { $0.healthy }, "\(apps)")
        let state = await client.cluster
        #expect(
            state.objects["Application/argocd/api-west"]?.body["metadata", "annotations", "role"]?.string == "member")
        #expect(state.fleetMembers?["https://10.2.0.1:6443"]?.objects["Deployment/api/web"] != nil)

        // One element fewer: its Applications go, and what they deployed with them.
        source.commit(["apps/sets.yaml": matrix.replacingOccurrences(of: ", {app: api, path: web}", with: "")])
        let after = try await client.applications(namespace: "argocd").filter { $0.name != "root" }
        #expect(after.map(\.name).sorted() == ["web-east", "web-west"])
        #expect(await client.cluster.fleetMembers?["https://10.2.0.1:6443"]?.objects["Deployment/api/web"] == nil)
    }

    @Test func aMissingKeyFailsTheApplicationSetNamingItsFileAndABrokenManifestFailsTheSync() async throws {
        let broken = Self.clusters.replacingOccurrences(of: "'web-{{.name}}'", with: "'web-{{.cluster}}'")
        let (client, _) = try Self.fleet(broken, files: ["web/deployment.yaml": Self.web])
        let apps = try await client.applications(namespace: "argocd")
        #expect(apps.map(\.name) == ["root"])
        let problems = FleetHealth.problems(of: await client.cluster)
        #expect(problems.count == 1)
        #expect(problems.first?.contains("apps/sets.yaml") == true, "\(problems)")
        #expect(problems.first?.contains("map has no entry for key \"cluster\"") == true, "\(problems)")

        let (second, _) = try Self.fleet(Self.clusters, files: ["web/deployment.yaml": "kind: [unclosed"])
        let failed = try await second.applications(namespace: "argocd").filter { $0.name.hasPrefix("web-") }
        #expect(failed.count == 3)
        #expect(
            failed.allSatisfy { !$0.healthy && $0.conditions.contains { $0.message.contains("web/deployment.yaml") } })
        let state = await second.cluster
        let report = await FleetHealth.report(
            fleet: "hub", own: HealthReport.make([]), fleetClient: second,
            members: FleetHealth.members(of: state, fleet: "hub"), headlamp: false, problems: [])
        let east = try #require(report.clusters.first { $0.name == "east" })
        let check = try #require(east.checks.first { $0.name == FleetHealth.applicationsCheck })
        #expect(!check.passed)
        #expect(check.remedy?.contains("web/deployment.yaml") == true, "\(check)")
        #expect(report.score == report.clusters.map(\.score).min())
    }

    @Test func anApplicationToAnUnregisteredServerFailsAsArgoCDSays() async throws {
        let set = Self.clusters.replacingOccurrences(
            of: "server: '{{.server}}'", with: "server: 'https://10.9.9.9:6443'"
        )
        .replacingOccurrences(of: "'web-{{.name}}'", with: "'web-{{.nameNormalized}}'")
        let (client, _) = try Self.fleet(set, files: ["web/deployment.yaml": Self.web])
        let apps = try await client.applications(namespace: "argocd").filter { $0.name.hasPrefix("web-") }
        #expect(apps.count == 3)
        #expect(
            apps.allSatisfy { $0.conditions.first?.message.contains("there are no clusters with this URL") == true })
    }

    @Test func goTemplatesAndFasttemplateRenderAsArgoCDDocuments() throws {
        let parameters = ["name": "east", "server": "https://10.1.0.1:6443", "metadata.labels.env": "prod"]
        let go = try TemplateRenderer(spec: .object(["goTemplate": .bool(true)]))
        #expect(try go.render("{{.name}}-{{ .server }}", parameters) == "east-https://10.1.0.1:6443")
        #expect(try go.render(#"{{index .metadata.labels "env"}}"#, parameters) == "prod")
        #expect(try go.render("{{.missing}}", parameters) == "<no value>")
        #expect(throws: ShoalError.self) { try go.render("{{.name | upper}}", parameters) }
        let strict = try TemplateRenderer(
            spec: .object(["goTemplate": .bool(true), "goTemplateOptions": .array([.string("missingkey=error")])]))
        #expect(throws: ShoalError.self) { try strict.render("{{.missing}}", parameters) }
        let fast = try TemplateRenderer(spec: .object([:]))
        #expect(try fast.render("{{name}}/{{metadata.labels.env}}/{{unknown}}", parameters) == "east/prod/{{unknown}}")
    }

    @Test func aKubeconfigGivesTheServerAndCredentials() throws {
        let access = try KubeconfigAccess.parse(
            """
            apiVersion: v1
            kind: Config
            clusters: [{name: c, cluster: {server: "https://10.0.0.5:6443", certificate-authority-data: Q0E=}}]
            users: [{name: u, user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}}]
            contexts: [{name: x, context: {cluster: c, user: u}}]
            current-context: x
            """)
        #expect(access.server == "https://10.0.0.5:6443" && access.certData == "Q0VSVA==" && access.caData == "Q0E=")
        #expect(throws: ShoalError.self) { try KubeconfigAccess.parse("apiVersion: v1\nkind: Config\n") }
        #expect(throws: ShoalError.self) { try KubeconfigAccess.parse("{{{") }
    }
}
