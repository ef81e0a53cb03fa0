import Foundation
import ShoalSupport
import Testing
import Yams

@testable import GitOps

@Suite struct FleetLayoutTests {
    let runner = ProcessRunner(defaultTimeout: .seconds(180))
    static let repoURL = "http://shoal-git.shoal-gitops.svc.cluster.local/shoal/lab.git"

    func layout() throws -> RepositoryLayout {
        try RepositoryLayout.render(
            repoURL: Self.repoURL, monitoring: MonitoringStack.render(MonitoringStackSpec(instance: "lab")),
            monitoringNamespace: "monitoring", argoCDVersion: "v3.5.1",
            applications: [
                try UserApplication.parse("guestbook=https://github.com/argoproj/argocd-example-apps.git//guestbook?ref=v0.2"),
                try UserApplication.parse("podinfo=helm:https://stefanprodan.github.io/podinfo//podinfo@6.7.1"),
            ],
            examples: true)
    }

    @Test func sourcesParseOrAreRefusedWithOneLine() throws {
        let local = try AppSource.parse("examples/web")
        #expect(local == AppSource(repoURL: nil, path: "examples/web"))
        let remote = try AppSource.parse("https://git.example.com/team/apps.git//guestbook/base?ref=v1.2")
        #expect(remote.repoURL == "https://git.example.com/team/apps.git")
        #expect(remote.path == "guestbook/base" && remote.targetRevision == "v1.2")
        for bad in [
            "", "/etc", "../up", "a/../b", "apps/x", "argocd", "a b", "a;id", "-rf", "ftp://h/r.git//p",
            "https://h/r.git", "https://user:pw@h/r.git//p", "https://h//p", "https://h/r.git//p?ref=-x",
            "https://h/r.git//p?x=1", "https://h/r.git//../p", "x\ny",
        ] {
            #expect(throws: ShoalError.self, "\(bad)") { try AppSource.parse(bad) }
        }
        #expect(throws: ShoalError.self) { try UserApplication.parse("monitoring=examples/web") }
        #expect(throws: ShoalError.self) { try UserApplication.parse("Web=examples/web") }
        #expect(throws: ShoalError.self) { try UserApplication.parse("examples/web") }
        #expect(try UserApplication.parse("shop=examples/web").name == "shop")
        let chart = try AppSource.parse("helm:https://charts.jetstack.io//cert-manager@v1.16.1")
        #expect(chart.chart == "cert-manager" && chart.repoURL == "https://charts.jetstack.io")
        #expect(chart.targetRevision == "v1.16.1")
        for bad in [
            "helm:https://charts.jetstack.io//cert-manager", "helm:https://charts.jetstack.io//cert-manager@^1.16",
            "helm:https://charts.jetstack.io//cert-manager@1.16", "helm:https://charts.jetstack.io//cert-manager@*",
            "helm:https://charts.jetstack.io//Cert@1.2.3", "helm:ftp://h//c@1.2.3", "helm:https://u@h//c@1.2.3",
            "helm:https://charts.jetstack.io/cert-manager@1.2.3",
        ] {
            #expect(throws: ShoalError.self, "\(bad)") { try AppSource.parse(bad) }
        }
    }

    @Test func theRepositoryHoldsArgoCDsOwnApplicationAndOnePerUserApplication() throws {
        let layout = try layout()
        #expect(layout.applicationNames == ["root", "monitoring", "argocd", "web", "postgres", "valkey", "guestbook", "podinfo"])
        let paths = Set(layout.files.map(\.path))
        for path in [
            "argocd/kustomization.yaml", "apps/argocd.yaml", "apps/web.yaml", "apps/guestbook.yaml",
            "examples/web/web.yaml", "examples/postgres/postgres.yaml", "examples/valkey/valkey.yaml", "root-app.yaml",
        ] {
            #expect(paths.contains(path), "\(path)")
        }
        let argocd = try #require(try yamlDocuments(layout.files.first { $0.path == "apps/argocd.yaml" }!.contents).first)
        #expect(value(argocd, "spec", "source", "path") as? String == "argocd")
        #expect((value(argocd, "spec", "syncPolicy", "syncOptions") as? [String])?.contains("ServerSideApply=true") == true)
        #expect((value(argocd, "metadata", "finalizers") as? [Any])?.isEmpty != false, "deleting it keeps Argo CD")
        let kustomization = layout.files.first { $0.path == ArgoCDSelfManagement.kustomizationPath }!.contents
        #expect(kustomization.contains(ArgoCDInstall(version: "v3.5.1").manifestURL))
        #expect(ArgoCDSelfManagement.pinnedVersion(kustomization: kustomization) == "v3.5.1")
        let guestbook = try #require(
            try yamlDocuments(layout.files.first { $0.path == "apps/guestbook.yaml" }!.contents).first)
        #expect(value(guestbook, "spec", "source", "repoURL") as? String == "https://github.com/argoproj/argocd-example-apps.git")
        #expect(value(guestbook, "spec", "source", "targetRevision") as? String == "v0.2")
        #expect(value(guestbook, "spec", "destination", "namespace") as? String == "guestbook")
        // The chart application names a chart, a repository and an exact version, with its values in git.
        let podinfo = try #require(
            try yamlDocuments(layout.files.first { $0.path == "apps/podinfo.yaml" }!.contents).first)
        let sources = try #require(value(podinfo, "spec", "sources") as? [[String: Any]])
        #expect(sources.first?["chart"] as? String == "podinfo")
        #expect(sources.first?["repoURL"] as? String == "https://stefanprodan.github.io/podinfo")
        #expect(sources.first?["targetRevision"] as? String == "6.7.1")
        #expect((value(sources.first, "helm", "valueFiles") as? [String]) == ["$values/values/podinfo.yaml"])
        #expect(sources.last?["ref"] as? String == "values" && sources.last?["repoURL"] as? String == Self.repoURL)
        #expect(paths.contains("values/podinfo.yaml"))
        // No secret in git: PostgreSQL reads its password from a Secret made in the cluster.
        #expect(!layout.files.contains { $0.contents.contains("kind: Secret") })
        #expect(throws: ShoalError.self) {
            try RepositoryLayout.render(
                repoURL: Self.repoURL, monitoring: [], monitoringNamespace: "monitoring", argoCDVersion: "latest")
        }
        #expect(throws: ShoalError.self) {
            try RepositoryLayout.render(
                repoURL: Self.repoURL, monitoring: [], monitoringNamespace: "monitoring", argoCDVersion: nil,
                applications: [UserApplication(name: "web", source: AppSource(repoURL: nil, path: "x"))],
                examples: true)
        }
    }

    @Test func everyApplicationMatchesTheArgoCDApplicationCRDSchema() async throws {
        guard await Tools.pythonModules(["jsonschema", "yaml"], install: ValidatorTests.pipInstall) else { return }
        let schema = "\(packageRoot)/../shared/fixtures/argocd/application-crd-v3.5.1-openAPIV3Schema.min.json"
        guard FileManager.default.fileExists(atPath: schema) else {
            Tools.missing("the Application CRD schema fixture is missing at \(schema)")
            return
        }
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let layout = try layout()
        let paths = try writeFiles(layout.children + [layout.root], into: directory)
        try SecureFile.write(ValidatorTests.schemaScript, to: "\(directory)/check.py")
        let result = try await runner.run("python3", ["\(directory)/check.py", schema] + paths)
        #expect(result.succeeded, "schema:\n\(result.standardOutput)\n\(result.standardError)")
        #expect(result.standardOutput.contains("checked 8 documents"), "\(result.standardOutput)")
    }

    @Test func theExamplesPassKubernetesValidateStrict() async throws {
        guard Tools.available("kubernetes-validate", install: ValidatorTests.pipInstall),
            await Tools.pythonModules(["kubernetes_validate"], install: ValidatorTests.pipInstall)
        else { return }
        let newest = try await runner.run(
            "python3", ["-c", "from kubernetes_validate.utils import latest_version; print(latest_version())"])
        let version = newest.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let files =
            ExampleApplications.files() + [
                ManifestFile(path: "secret.yaml", contents: ExampleApplications.postgresSecret(password: "p\"w"))
            ]
        let paths = try writeFiles(files, into: directory)
        let result = try await runner.run("kubernetes-validate", ["--strict", "-k", version] + paths)
        #expect(result.succeeded, "kubernetes-validate \(version):\n\(result.standardOutput)\n\(result.standardError)")
        #expect(!result.standardOutput.lowercased().contains("skip"), "\(result.standardOutput)")
        // Every example container is pinned, probed and bounded.
        for (file, doc) in try allDocuments(ExampleApplications.files())
        where ["Deployment", "StatefulSet"].contains(kind(doc)) {
            let containers = try #require(value(doc, "spec", "template", "spec", "containers") as? [[String: Any]])
            for container in containers {
                let image = container["image"] as? String ?? ""
                #expect(MonitoringStack.isPinnedTag(String(image.split(separator: ":").last ?? "")), "\(file)")
                #expect(container["readinessProbe"] != nil && container["livenessProbe"] != nil, "\(file)")
                #expect(value(container, "resources", "limits", "memory") != nil, "\(file)")
            }
        }
        #expect(try allDocuments(ExampleApplications.files()).filter { kind($0.doc) == "Service" }.count == 3)
    }

    @Test func argoCDsKustomizationBuildsWithKubectlOverALocalCopyOfTheRelease() async throws {
        guard Tools.available("kubectl", install: "see https://kubernetes.io/docs/tasks/tools/") else { return }
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let install = ArgoCDInstall(version: "v3.5.1")
        // The release is not fetched here: a minimal stand-in with the two objects the patches change.
        let release = """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: argocd-cmd-params-cm}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: argocd-server}
            spec:
              ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}, {name: https, port: 443, targetPort: 8080}]
            """
        let files = try ArgoCDSelfManagement.files(version: "v3.5.1").map {
            ManifestFile(path: $0.path, contents: $0.contents.replacingOccurrences(of: install.manifestURL, with: "release.yaml"))
        } + [ManifestFile(path: "argocd/release.yaml", contents: release)]
        _ = try writeFiles(files, into: directory)
        let built = try await runner.run("kubectl", ["kustomize", "\(directory)/argocd"])
        #expect(built.succeeded, "\(built.standardError)")
        let documents = try yamlDocuments(built.standardOutput)
        let service = try #require(documents.first { kind($0) == "Service" })
        #expect(value(service, "spec", "type") as? String == "NodePort")
        let ports = try #require(value(service, "spec", "ports") as? [[String: Any]])
        #expect(ports.first { $0["port"] as? Int == 80 }?["nodePort"] as? Int == 30080)
        #expect(ports.count == 2)
        let params = try #require(documents.first { kind($0) == "ConfigMap" })
        #expect(value(params, "data", "server.insecure") as? String == "true")
        #expect(value(params, "metadata", "namespace") as? String == "argocd")
    }

    @Test func everyMonitoringOverlayBuildsWithKubectlAndTheEnvironmentsDiffer() async throws {
        guard Tools.available("kubectl", install: "see https://kubernetes.io/docs/tasks/tools/") else { return }
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        for headlamp in [true, false] {
            let root = "\(directory)/\(headlamp)"
            _ = try writeFiles(MonitoringKustomize.render(MonitoringStackSpec(instance: "lab", headlamp: headlamp)), into: root)
            var built: [String: [[String: Any]]] = [:]
            for environment in MonitoringKustomize.environments {
                let result = try await runner.run(
                    "kubectl", ["kustomize", "\(root)/\(MonitoringKustomize.overlayPath(environment))"])
                #expect(result.succeeded, "\(environment): \(result.standardError)")
                built[environment] = try yamlDocuments(result.standardOutput)
            }
            let plain = try allDocuments(MonitoringStack.render(MonitoringStackSpec(instance: "lab", headlamp: headlamp)))
            for (environment, documents) in built {
                #expect(documents.count == plain.count, "\(environment): the overlay keeps every object of the base")
                let prometheus = try #require(documents.first { kind($0) == "Deployment" && name($0) == "prometheus" })
                let container = try #require(
                    (value(prometheus, "spec", "template", "spec", "containers") as? [[String: Any]])?.first)
                let settings = MonitoringKustomize.settings(environment)
                let args = container["args"] as? [String] ?? []
                #expect(args.contains("--storage.tsdb.retention.time=\(settings.retention)"), "\(args)")
                #expect(args.contains("--config.file=/etc/prometheus/prometheus.yml"), "the other arguments stay")
                #expect(value(container, "resources", "limits", "memory") as? String == settings.limits.memory)
                #expect(container["readinessProbe"] != nil, "the patch merges into the container")
                if headlamp {
                    let headlampDeployment = try #require(documents.first { name($0) == "headlamp" && kind($0) == "Deployment" })
                    #expect(value(headlampDeployment, "spec", "replicas") as? Int == settings.headlampReplicas)
                }
            }
        }
        #expect(MonitoringKustomize.settings("production") != MonitoringKustomize.settings("development"))
        #expect(MonitoringKustomize.settings("staging") != MonitoringKustomize.settings("production"))

        // A broken overlay does not build, and kubectl names the cause.
        let broken = "\(directory)/true/\(MonitoringKustomize.overlayPath("staging"))/kustomization.yaml"
        try SecureFile.write("resources: [../../nothere]\n", to: broken)
        let failed = try await runner.run("kubectl", ["kustomize", (broken as NSString).deletingLastPathComponent])
        #expect(!failed.succeeded)
    }
}
