import Foundation
import ShoalSupport
import Testing
import Yams

@testable import GitOps

/// Third-party validators over the generated files. Install: `pip install kubernetes-validate yamllint jsonschema`
/// and `apt-get install -y prometheus` (promtool).
@Suite struct ValidatorTests {
    static let pipInstall = "pip install kubernetes-validate yamllint jsonschema"
    let runner = ProcessRunner(defaultTimeout: .seconds(180))

    func renderedVariants() -> [[ManifestFile]] {
        var custom = MonitoringStackSpec(instance: "prod-eu-1")
        custom.namespace = "observability"
        custom.coordinatorMetrics = "coordinator.lab:9464"
        return [
            MonitoringStack.render(MonitoringStackSpec(instance: "lab")),
            MonitoringStack.render(MonitoringStackSpec(instance: "lab", headlamp: false)),
            MonitoringStack.render(custom),
        ]
    }

    @Test func kubernetesManifestsPassKubernetesValidateStrictWithTheNewestSchema() async throws {
        guard Tools.available("kubernetes-validate", install: Self.pipInstall),
            await Tools.pythonModules(["kubernetes_validate"], install: Self.pipInstall)
        else { return }
        let newest = try await runner.run(
            "python3", ["-c", "from kubernetes_validate.utils import latest_version; print(latest_version())"])
        let version = newest.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(newest.succeeded && !version.isEmpty, "\(newest.standardErrorTail())")
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        for (index, files) in renderedVariants().enumerated() {
            let secret = ManifestFile(
                path: "secret.yaml",
                contents: MonitoringStack.grafanaAdminSecret(MonitoringStackSpec(instance: "lab"), password: "x\"y"))
            // The in-cluster git server and its Secret go to the cluster too.
            let gitServer = [
                ManifestFile(path: "git-server.yaml", contents: InClusterGitServer.manifests()),
                ManifestFile(path: "git-secret.yaml", contents: InClusterGitServer.secretManifest(password: "p\"w")),
            ]
            let paths = try writeFiles(files + [secret] + gitServer, into: "\(directory)/\(index)")
            let result = try await runner.run("kubernetes-validate", ["--strict", "-k", version] + paths)
            #expect(
                result.succeeded, "kubernetes-validate \(version):\n\(result.standardOutput)\n\(result.standardError)")
            // It reports every document it checked; make sure none was skipped as unknown.
            #expect(!result.standardOutput.lowercased().contains("skip"), "\(result.standardOutput)")
        }
        // The validator does reject a broken manifest (misspelt probe field): the pass above means something.
        let broken = MonitoringStack.render(MonitoringStackSpec(instance: "lab"))[1].contents
            .replacingOccurrences(of: "initialDelaySeconds", with: "initialDelaySecond")
        let paths = try writeFiles([ManifestFile(path: "broken.yaml", contents: broken)], into: "\(directory)/broken")
        let rejected = try await runner.run("kubernetes-validate", ["--strict", "-k", version] + paths)
        #expect(!rejected.succeeded)
    }

    @Test func everyGeneratedFilePassesYamllintStrict() async throws {
        guard Tools.available("yamllint", install: Self.pipInstall) else { return }
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let (files, _) = gitOpsFiles()
        var all = files
        for (index, variant) in renderedVariants().enumerated() {
            all += variant.map { ManifestFile(path: "v\(index)/\($0.path)", contents: $0.contents) }
        }
        all.append(
            ManifestFile(
                path: "secret.yaml",
                contents: MonitoringStack.grafanaAdminSecret(MonitoringStackSpec(instance: "lab"), password: "a b")))
        let paths = try writeFiles(all, into: directory)
        // Dashboards embed JSON whose PromQL strings cannot be wrapped, hence 160 columns.
        let config = "{extends: default, rules: {line-length: {max: 160}}}"
        let result = try await runner.run("yamllint", ["-s", "-f", "parsable", "-d", config] + paths)
        #expect(result.succeeded, "yamllint:\n\(result.standardOutput)\n\(result.standardError)")
    }

    @Test func prometheusConfigurationPassesPromtool() async throws {
        guard Tools.available("promtool", install: "apt-get install -y prometheus") else { return }
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let kubernetesSD = try await promtoolSupportsKubernetesSD(in: directory)
        if !kubernetesSD {
            print(
                """
                NOTE: this promtool was built without Kubernetes service discovery (Debian's package is); \
                kubernetes_sd_configs are checked by this test's own rules and replaced by static_configs \
                for promtool. \
                An upstream promtool checks them as they are.
                """)
        }
        var custom = MonitoringStackSpec(instance: "prod-eu-1")
        custom.namespace = "observability"
        custom.coordinatorMetrics = "[2001:db8::5]:9464"
        for (index, spec) in [MonitoringStackSpec(instance: "lab"), custom].enumerated() {
            let path = "\(directory)/prometheus-\(index).yml"
            let config = MonitoringStack.prometheusConfig(spec)
            try SecureFile.write(kubernetesSD ? config : try withoutKubernetesSD(config), to: path)
            let result = try await runner.run("promtool", ["check", "config", "--syntax-only", path])
            #expect(result.succeeded, "promtool:\n\(result.standardOutput)\n\(result.standardError)")
        }
        // promtool does reject a broken configuration.
        let broken = MonitoringStack.prometheusConfig(MonitoringStackSpec(instance: "lab"))
            .replacingOccurrences(of: "action: labelmap", with: "action: label-map")
        try SecureFile.write(kubernetesSD ? broken : try withoutKubernetesSD(broken), to: "\(directory)/broken.yml")
        let rejected = try await runner.run(
            "promtool", ["check", "config", "--syntax-only", "\(directory)/broken.yml"])
        #expect(!rejected.succeeded)
    }

    private func promtoolSupportsKubernetesSD(in directory: String) async throws -> Bool {
        let probe = "scrape_configs:\n  - job_name: probe\n    kubernetes_sd_configs:\n      - role: node\n"
        try SecureFile.write(probe, to: "\(directory)/probe.yml")
        return try await runner.run("promtool", ["check", "config", "--syntax-only", "\(directory)/probe.yml"])
            .succeeded
    }

    /// Checks every kubernetes_sd_configs entry against the fields Prometheus documents, then swaps it for a
    /// static target so that a promtool without Kubernetes discovery can check the rest.
    private func withoutKubernetesSD(_ config: String) throws -> String {
        var object = try #require(try Yams.load(yaml: config) as? [String: Any])
        var jobs = try #require(object["scrape_configs"] as? [[String: Any]])
        let roles: Set<String> = ["node", "pod", "service", "endpoints", "endpointslice", "ingress"]
        let fields: Set<String> = [
            "role", "namespaces", "selectors", "api_server", "kubeconfig_file", "attach_metadata",
        ]
        for index in jobs.indices {
            guard let sds = jobs[index].removeValue(forKey: "kubernetes_sd_configs") as? [[String: Any]] else {
                continue
            }
            for sd in sds {
                #expect(roles.contains(sd["role"] as? String ?? ""), "\(sd)")
                #expect(Set(sd.keys).isSubset(of: fields), "\(sd)")
                if let namespaces = sd["namespaces"] {
                    let names = (namespaces as? [String: Any])?["names"] as? [String]
                    #expect(names?.isEmpty == false && names!.allSatisfy(Names.isDNSLabel), "\(sd)")
                }
            }
            jobs[index]["static_configs"] = [["targets": ["kubernetes-sd.invalid:443"]]]
        }
        object["scrape_configs"] = jobs
        return try Yams.dump(object: object)
    }

    @Test func dashboardQueriesAreValidPromQL() async throws {
        guard Tools.available("promtool", install: "apt-get install -y prometheus") else { return }
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        // The shoal dashboard's Grafana variables as Grafana fills them in.
        let shoal = try #require(
            try JSONSerialization.jsonObject(with: Data(MonitoringStack.shoalDashboard().utf8)) as? [String: Any])
        let shoalExpressions = (shoal["panels"] as? [[String: Any]] ?? []).flatMap { panel in
            (panel["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String }
        }.map {
            $0.replacingOccurrences(of: "$__rate_interval", with: "1m").replacingOccurrences(of: "$job", with: ".+")
        }
        #expect(shoalExpressions.count >= 10)
        let expressions =
            [Dashboard.clusterOverview("lab"), Dashboard.nodes("lab")].flatMap(\.expressions) + shoalExpressions
        #expect(expressions.count >= 20)
        // Each query as a recording rule, so that promtool parses it.
        let rules: YAML = [
            "groups": [
                [
                    "name": "dashboards",
                    "rules": .list(
                        expressions.enumerated().map {
                            ["record": .string("shoal:query\($0.offset)"), "expr": .string($0.element)]
                        }
                    ),
                ]
            ]
        ]
        try SecureFile.write(rules.body(), to: "\(directory)/rules.yml")
        let result = try await runner.run("promtool", ["check", "rules", "\(directory)/rules.yml"])
        #expect(result.succeeded, "promtool:\n\(result.standardOutput)\n\(result.standardError)")
    }

    @Test func applicationsMatchTheArgoCDApplicationCRDSchema() async throws {
        guard await Tools.pythonModules(["jsonschema", "yaml"], install: Self.pipInstall) else { return }
        let schema = "\(packageRoot)/../shared/fixtures/argocd/application-crd-v3.5.1-openAPIV3Schema.min.json"
        guard FileManager.default.fileExists(atPath: schema) else {
            Tools.missing("the Application CRD schema fixture is missing at \(schema)")
            return
        }
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let apps = ArgoApplications.appOfApps(
            repoURL: "http://192.168.1.20:8418/lab",
            components: [
                (name: "monitoring", path: "monitoring", namespace: "monitoring"),
                (name: "extras", path: "extras/base", namespace: "extras"),
            ])
        var single = ApplicationSpec(
            name: "monitoring", repoURL: "https://git.example.com/me/gitops.git", path: "monitoring",
            destinationNamespace: "monitoring")
        single.targetRevision = "main"
        let files =
            [apps.root] + apps.children + [
                ManifestFile(path: "single.yaml", contents: ArgoApplications.application(single))
            ]
        let paths = try writeFiles(files, into: directory)
        try SecureFile.write(Self.schemaScript, to: "\(directory)/check.py")
        let result = try await runner.run("python3", ["\(directory)/check.py", schema] + paths)
        #expect(result.succeeded, "schema:\n\(result.standardOutput)\n\(result.standardError)")
        #expect(result.standardOutput.contains("checked 4 documents"), "\(result.standardOutput)")

        // A misspelt field fails the (strict) schema check, so the pass above means something.
        let broken = ArgoApplications.application(single).replacingOccurrences(of: "selfHeal", with: "selfheal")
        try SecureFile.write(broken, to: "\(directory)/broken.yaml")
        let rejected = try await runner.run("python3", ["\(directory)/check.py", schema, "\(directory)/broken.yaml"])
        #expect(!rejected.succeeded)
    }

    /// Validates each document against the CRD's openAPIV3Schema, rejecting unknown fields the way the API server's
    /// strict field validation does (objects that list their properties allow no others).
    static let schemaScript = #"""
        import json
        import sys

        import jsonschema
        import yaml


        def strict(node):
            if isinstance(node, dict):
                if (node.get("type") == "object" and "properties" in node
                        and "additionalProperties" not in node
                        and not node.get("x-kubernetes-preserve-unknown-fields")):
                    node["additionalProperties"] = False
                for child in node.values():
                    strict(child)
            elif isinstance(node, list):
                for child in node:
                    strict(child)


        with open(sys.argv[1]) as handle:
            schema = json.load(handle)
        strict(schema)
        validator = jsonschema.Draft7Validator(schema)
        failures = 0
        checked = 0
        for path in sys.argv[2:]:
            with open(path) as handle:
                for document in yaml.safe_load_all(handle):
                    if document is None:
                        continue
                    checked += 1
                    if document.get("apiVersion") != "argoproj.io/v1alpha1" or document.get("kind") != "Application":
                        print(f"{path}: not an Application")
                        failures += 1
                    for error in validator.iter_errors(document):
                        where = "/".join(str(part) for part in error.absolute_path)
                        print(f"{path}: {where}: {error.message}")
                        failures += 1
        print(f"checked {checked} documents")
        sys.exit(1 if failures or not checked else 0)
        """#
}
