import Foundation
import ShoalSupport
import Testing
import Yams

@testable import GitOps

/// `--monitoring-source helm`: Applications of pinned charts, their values in the repository.
@Suite struct MonitoringHelmTests {
    let runner = ProcessRunner(defaultTimeout: .seconds(180))

    func layout(headlamp: Bool = true, environment: String = "production") throws -> RepositoryLayout {
        var spec = MonitoringStackSpec(instance: "lab", headlamp: headlamp)
        spec.coordinatorMetrics = "192.168.56.1:9464"
        let helm = MonitoringHelm.render(spec, environment: environment, repoURL: FleetLayoutTests.repoURL)
        return try RepositoryLayout.render(
            repoURL: FleetLayoutTests.repoURL, monitoring: helm.values, monitoringNamespace: "monitoring",
            argoCDVersion: "v3.5.1", monitoringApplications: helm.applications)
    }

    @Test func eachChartIsAnApplicationWithAnExactVersionAndItsValuesFromTheRepository() throws {
        let layout = try layout()
        #expect(
            layout.applicationNames == [
                "root", "monitoring-prometheus", "monitoring-grafana", "monitoring-headlamp", "argocd",
            ])
        for chart in MonitoringHelm.charts {
            let file = try #require(layout.children.first { $0.path == chart.applicationPath })
            let app = try #require(try Yams.load(yaml: file.contents) as? [String: Any])
            let sources = try #require((app["spec"] as? [String: Any])?["sources"] as? [[String: Any]])
            #expect(sources.count == 2)
            #expect(sources[0]["chart"] as? String == chart.chart)
            #expect(sources[0]["repoURL"] as? String == chart.repository)
            #expect(sources[0]["targetRevision"] as? String == chart.version)
            #expect(AppSource.isExactVersion(chart.version))
            let helm = try #require(sources[0]["helm"] as? [String: Any])
            #expect(helm["valueFiles"] as? [String] == ["$values/monitoring/helm/\(chart.component)-values.yaml"])
            #expect(sources[1]["ref"] as? String == "values")
            #expect(sources[1]["repoURL"] as? String == FleetLayoutTests.repoURL)
            #expect(layout.files.contains { $0.path == chart.valuesPath })
        }
        #expect(try self.layout(headlamp: false).applicationNames.contains("monitoring-headlamp") == false)
        #expect(throws: ShoalError.self) { try UserApplication.parse("monitoring-grafana=examples/web") }
    }

    func values(_ layout: RepositoryLayout, _ component: String) throws -> [String: Any] {
        let file = try #require(layout.files.first { $0.path == "monitoring/helm/\(component)-values.yaml" })
        return try #require(try Yams.load(yaml: file.contents) as? [String: Any])
    }

    func value(_ object: Any?, _ path: String...) -> Any? {
        path.reduce(object) { ($0 as? [String: Any])?[$1] }
    }

    @Test func theValuesParseAndKeepShoalsNodePortsNamesSecretAndDashboards() throws {
        let layout = try layout()
        let prometheus = try values(layout, "prometheus")
        #expect(value(prometheus, "server", "service", "nodePort") as? Int == 30090)
        #expect(value(prometheus, "server", "service", "servicePort") as? Int == 9090)
        #expect(value(prometheus, "server", "fullnameOverride") as? String == "prometheus")
        #expect(value(prometheus, "server", "retention") as? String == "30d")
        #expect(value(prometheus, "prometheus-node-exporter", "fullnameOverride") as? String == "node-exporter")
        #expect(value(prometheus, "kube-state-metrics", "fullnameOverride") as? String == "kube-state-metrics")
        let extra = try #require(prometheus["extraScrapeConfigs"] as? String)
        let jobs = try #require(try Yams.load(yaml: extra) as? [[String: Any]])
        #expect(jobs.first?["job_name"] as? String == "shoal-coordinator")

        let grafana = try values(layout, "grafana")
        #expect(value(grafana, "service", "nodePort") as? Int == 30300)
        #expect(value(grafana, "fullnameOverride") as? String == "grafana")
        #expect(value(grafana, "admin", "existingSecret") as? String == "grafana-admin")
        let datasources = try #require(
            value(grafana, "datasources", "datasources.yaml", "datasources") as? [[String: Any]])
        #expect(datasources.first?["url"] as? String == "http://prometheus.monitoring.svc:9090")
        let dashboards = try #require(value(grafana, "dashboards", "shoal") as? [String: Any])
        #expect(Set(dashboards.keys) == ["cluster-overview", "nodes", "shoal"])
        for (name, dashboard) in dashboards {
            let json = try #require(value(dashboard, "json") as? String, "\(name)")
            #expect(try JSONSerialization.jsonObject(with: Data(json.utf8)) is [String: Any], "\(name)")
        }

        let headlamp = try values(layout, "headlamp")
        #expect(value(headlamp, "service", "nodePort") as? Int == 30466)
        #expect(value(headlamp, "serviceAccount", "name") as? String == "headlamp-admin")
        #expect(value(headlamp, "replicaCount") as? Int == 2)
        #expect(value(try values(try self.layout(environment: "development"), "headlamp"), "replicaCount") as? Int == 1)
    }

    @Test func everyHelmApplicationMatchesTheArgoCDApplicationCRDSchema() async throws {
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
        #expect(result.standardOutput.contains("checked 5 documents"), "\(result.standardOutput)")
    }
}
