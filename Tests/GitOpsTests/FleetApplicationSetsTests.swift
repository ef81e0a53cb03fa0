import Foundation
import ShoalSupport
import Testing
import Yams

@testable import GitOps

@Suite struct FleetApplicationSetsTests {
    let runner = ProcessRunner(defaultTimeout: .seconds(180))
    static let repoURL = "http://shoal-git.shoal-gitops.svc.cluster.local/shoal/hub.git"

    static func sets() -> [ManifestFile] {
        [
            FleetApplicationSets.monitoring(
                fleet: "hub", repoURL: repoURL, path: "monitoring", namespace: "monitoring"),
            FleetApplicationSets.applications(
                fleet: "hub",
                elements: [
                    .init(app: "web", repoURL: repoURL, path: "examples/web", targetRevision: "HEAD"),
                    .init(
                        app: "guestbook", repoURL: "https://github.com/argoproj/argocd-example-apps.git",
                        path: "guestbook", targetRevision: "v0.2"),
                ]),
            FleetApplicationSets.applications(fleet: "hub", elements: []),
        ]
    }

    @Test func everyApplicationSetMatchesTheArgoCDApplicationSetCRDSchema() async throws {
        guard await Tools.pythonModules(["jsonschema", "yaml"], install: ValidatorTests.pipInstall) else { return }
        let schema = "\(packageRoot)/../shared/fixtures/argocd/applicationset-crd-v3.5.1-openAPIV3Schema.min.json"
        guard FileManager.default.fileExists(atPath: schema) else {
            Tools.missing("the ApplicationSet CRD schema fixture is missing at \(schema)")
            return
        }
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let sets = Self.sets()
        let paths = try sets.enumerated().map { index, file in
            let path = "\(directory)/set-\(index).yaml"
            try SecureFile.write(file.contents, to: path)
            return path
        }
        let script = ValidatorTests.schemaScript.replacingOccurrences(
            of: #"document.get("kind") != "Application""#, with: #"document.get("kind") != "ApplicationSet""#)
        #expect(script != ValidatorTests.schemaScript)
        try SecureFile.write(script, to: "\(directory)/check.py")
        let result = try await runner.run("python3", ["\(directory)/check.py", schema] + paths)
        #expect(result.succeeded, "schema:\n\(result.standardOutput)\n\(result.standardError)")
        #expect(result.standardOutput.contains("checked 3 documents"), "\(result.standardOutput)")

        // An unknown field is refused, so the pass above means something.
        let broken = sets[0].contents.replacingOccurrences(of: "matchLabels:", with: "matchLabel:")
        try SecureFile.write(broken, to: "\(directory)/broken.yaml")
        let rejected = try await runner.run("python3", ["\(directory)/check.py", schema, "\(directory)/broken.yaml"])
        #expect(!rejected.succeeded)
    }

    @Test func theTemplatesRenderApplicationsThatMatchTheApplicationCRDSchema() async throws {
        guard await Tools.pythonModules(["jsonschema", "yaml"], install: ValidatorTests.pipInstall) else { return }
        let schema = "\(packageRoot)/../shared/fixtures/argocd/application-crd-v3.5.1-openAPIV3Schema.min.json"
        guard FileManager.default.fileExists(atPath: schema) else {
            Tools.missing("the Application CRD schema fixture is missing at \(schema)")
            return
        }
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        // Each template as the controller renders it for one parameter set, an Application of its own.
        let parameters = [
            "{{.name}}": "east", "{{.server}}": "https://10.1.0.1:6443", "{{.app}}": "web",
            "{{.repoURL}}": Self.repoURL, "{{.path}}": "examples/web", "{{.targetRevision}}": "HEAD",
        ]
        var paths: [String] = []
        for (index, file) in Self.sets().prefix(2).enumerated() {
            let set = try #require(try Yams.load(yaml: file.contents) as? [String: Any])
            var template = try #require((set["spec"] as? [String: Any])?["template"] as? [String: Any])
            template["apiVersion"] = "argoproj.io/v1alpha1"
            template["kind"] = "Application"
            var text = try Yams.dump(object: template)
            for (key, value) in parameters { text = text.replacingOccurrences(of: key, with: value) }
            #expect(!text.contains("{{"), "\(text)")
            paths.append("\(directory)/app-\(index).yaml")
            try SecureFile.write(text, to: paths[index])
        }
        try SecureFile.write(ValidatorTests.schemaScript, to: "\(directory)/check.py")
        let result = try await runner.run("python3", ["\(directory)/check.py", schema] + paths)
        #expect(result.succeeded, "schema:\n\(result.standardOutput)\n\(result.standardError)")
        #expect(result.standardOutput.contains("checked 2 documents"), "\(result.standardOutput)")
    }

    @Test func theApplicationSetsSelectTheFleetByLabelAndTemplateWithGoTemplates() throws {
        let sets = Self.sets()
        #expect(
            sets.map(\.path) == [
                FleetApplicationSets.monitoringPath, FleetApplicationSets.applicationsPath,
                FleetApplicationSets.applicationsPath,
            ])
        let monitoring = try #require(try Yams.load(yaml: sets[0].contents) as? [String: Any])
        let spec = try #require(monitoring["spec"] as? [String: Any])
        #expect(spec["goTemplate"] as? Bool == true)
        let generator = try #require((spec["generators"] as? [[String: Any]])?.first?["clusters"] as? [String: Any])
        #expect(
            ((generator["selector"] as? [String: Any])?["matchLabels"] as? [String: String]) == [
                "shoal.dev/fleet": "hub"
            ])
        #expect(sets[0].contents.contains("name: \"monitoring-{{.name}}\""))
        #expect(sets[0].contents.contains("server: \"{{.server}}\""))
        let matrix = try #require(try Yams.load(yaml: sets[1].contents) as? [String: Any])
        let children = try #require(
            (((matrix["spec"] as? [String: Any])?["generators"] as? [[String: Any]])?.first?["matrix"] as? [String: Any])?[
                "generators"] as? [[String: Any]])
        #expect(children.count == 2)
        let elements = try #require((children[1]["list"] as? [String: Any])?["elements"] as? [[String: String]])
        #expect(elements.map { $0["app"] } == ["guestbook", "web"])
        #expect(!sets.contains { $0.contents.contains("kind: Secret") })
    }

    @Test func aClusterSecretCarriesTheCredentialsAndIsRefusedForBadInput() throws {
        let secret = try FleetApplicationSets.clusterSecret(
            fleet: "hub", cluster: "east", server: "https://10.1.0.1:6443",
            credentials: .init(bearerToken: "s3cret-token", caData: "Q0E="))
        let document = try #require(try Yams.load(yaml: secret) as? [String: Any])
        let labels = try #require((document["metadata"] as? [String: Any])?["labels"] as? [String: String])
        #expect(labels["argocd.argoproj.io/secret-type"] == "cluster")
        #expect(labels["shoal.dev/fleet"] == "hub" && labels["shoal.dev/fleet-role"] == "member")
        let data = try #require(document["stringData"] as? [String: String])
        #expect(data["name"] == "east" && data["server"] == "https://10.1.0.1:6443")
        let config = try #require(
            try JSONSerialization.jsonObject(with: Data((data["config"] ?? "").utf8)) as? [String: Any])
        #expect(config["bearerToken"] as? String == "s3cret-token")
        #expect((config["tlsClientConfig"] as? [String: Any])?["caData"] as? String == "Q0E=")
        let own = try FleetApplicationSets.clusterSecret(
            fleet: "hub", cluster: "hub", server: FleetApplicationSets.inClusterServer, credentials: nil)
        #expect(own.contains("shoal.dev/fleet-role: fleet") && !own.contains("bearerToken"))
        for (cluster, server) in [("East", "https://x"), ("east", "http://10.1.0.1:6443"), ("east", "https://a b")] {
            #expect(throws: ShoalError.self) {
                try FleetApplicationSets.clusterSecret(fleet: "hub", cluster: cluster, server: server, credentials: nil)
            }
        }
    }
}
