import Foundation
import ShoalSupport
import Testing

extension EndToEndCommands {
    /// Argo CD managing itself and user applications, in demo mode, through the commands a user types.
    @Suite struct FleetTests {
        func git(_ repository: String, _ arguments: [String]) async throws {
            let identity = [
                "-c", "user.name=tester", "-c", "user.email=tester@shoal.invalid", "-c", "commit.gpgsign=false",
            ]
            let result = try await ProcessRunner().run("git", identity + ["-C", repository] + arguments)
            #expect(result.succeeded, "git \(arguments): \(result.standardError)")
        }

        func state(_ output: String, _ workflow: String) throws -> [String: Any] {
            let path = "\(output)/kubeconfigs/\(workflow)/simulated-cluster.json"
            return try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        }

        @Test func examplesAppAddAndAnArgoCDVersionBumpAllLandThroughGit() async throws {
            let output = Shoal.temporaryDirectory() + "/out"
            let created = try await Shoal.run(["create", "-n", "1", "-d", output, "--examples"], timeout: .seconds(120))
            #expect(created.status == 0, "\(created.standardOutput)\(created.standardError)")
            let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
            #expect(created.standardOutput.contains("root, monitoring, argocd, web, postgres, valkey"))
            #expect(created.standardOutput.contains("Health: score 100/100 (healthy)"), "\(created.standardOutput)")
            let repository = "\(output)/gitops/\(workflow)"
            #expect(FileManager.default.fileExists(atPath: "\(repository)/argocd/kustomization.yaml"))
            #expect(SecureFile.mode(of: "\(output)/kubeconfigs/\(workflow)/postgres-password") == 0o600)

            // A new application: a directory committed with it, then `shoal app add`.
            let web = try String(contentsOfFile: "\(repository)/examples/web/web.yaml", encoding: .utf8)
            try SecureFile.write(
                web.replacingOccurrences(of: "namespace: web", with: "namespace: shop"),
                to: "\(repository)/shop/web.yaml")
            let added = try await Shoal.run(["app", "add", workflow, "shop", "shop", "-d", output])
            #expect(added.status == 0, "\(added.standardOutput)\(added.standardError)")
            #expect(added.standardOutput.contains("refresh requested"), "\(added.standardOutput)")
            #expect(added.standardOutput.contains("application shop: Synced/Healthy"), "\(added.standardOutput)")
            let validated = try await Shoal.run(["validate", workflow, "-d", output])
            #expect(validated.standardOutput.contains("7 Applications Synced and Healthy"), "\(validated.standardOutput)")

            // Refused inputs: a clear line and a non-zero exit.
            for arguments in [
                ["app", "add", workflow, "shop", "shop"], ["app", "add", workflow, "x", "missing-dir"],
                ["app", "add", workflow, "argocd", "shop"], ["app", "add", workflow, "y", "https://u:p@h/r.git//p"],
                ["app", "remove", workflow, "nothere"],
            ] {
                let refused = try await Shoal.run(arguments + ["-d", output])
                #expect(refused.status != 0, "\(arguments)")
                #expect(!refused.standardError.isEmpty && !refused.standardError.contains("Fatal error"))
            }

            // Argo CD upgrades itself: a commit that changes the pinned version, pushed.
            let kustomization = "\(repository)/argocd/kustomization.yaml"
            let text = try String(contentsOfFile: kustomization, encoding: .utf8)
            #expect(text.contains("/argo-cd/v3.5.1/manifests/install.yaml"))
            try SecureFile.write(text.replacingOccurrences(of: "v3.5.1", with: "v3.6.0"), to: kustomization)
            try await git(repository, ["commit", "-q", "-am", "Argo CD v3.6.0"])
            let pushed = try await Shoal.run(["gitops", "push", workflow, "-d", output])
            #expect(pushed.status == 0, "\(pushed.standardError)")
            #expect(try state(output, workflow)["argoCDVersion"] as? String == "v3.6.0")
            let upgraded = try await Shoal.run(["validate", workflow, "-d", output])
            #expect(upgraded.standardOutput.contains("Health: score 100/100"), "\(upgraded.standardOutput)")

            // Removing the application prunes its resources.
            let removed = try await Shoal.run(["app", "remove", workflow, "shop", "-d", output])
            #expect(removed.status == 0, "\(removed.standardError)")
            let objects = try #require(try state(output, workflow)["objects"] as? [String: Any])
            #expect(!objects.keys.contains("Deployment/shop/web"))

            // A chart from a registry at an exact version, its values in git; an unknown version fails, naming the file.
            let chart = try await Shoal.run(
                ["app", "add", workflow, "podinfo", "helm:https://stefanprodan.github.io/podinfo//podinfo@6.7.1", "-d", output])
            #expect(chart.standardOutput.contains("application podinfo: Synced/Healthy"), "\(chart.standardOutput)")
            #expect(FileManager.default.fileExists(atPath: "\(repository)/values/podinfo.yaml"))
            let unknown = try await Shoal.run(
                ["app", "add", workflow, "certs", "helm:https://charts.jetstack.io//cert-manager@v0.0.1", "-d", output])
            #expect(unknown.standardOutput.contains("version v0.0.1 not found"), "\(unknown.standardOutput)")
            let failed = try await Shoal.run(["validate", workflow, "-d", output])
            #expect(failed.standardOutput.contains("Fix apps/certs.yaml"), "\(failed.standardOutput)")
            _ = try await Shoal.run(["app", "remove", workflow, "certs", "-d", output])

            // A broken kustomization fails the sync of Argo CD's own Application and names the file.
            try SecureFile.write(text + "  - missing.yaml\n", to: kustomization)
            try await git(repository, ["commit", "-q", "-am", "broken"])
            _ = try await Shoal.run(["gitops", "push", workflow, "-d", output])
            let broken = try await Shoal.run(["validate", workflow, "-d", output])
            #expect(broken.status == 1)
            #expect(broken.standardOutput.contains("argocd/kustomization.yaml"), "\(broken.standardOutput)")
            #expect(broken.standardOutput.contains("Health: score 80/100"), "\(broken.standardOutput)")
        }

        @Test func theMonitoringStackFromAKustomizeOverlayOfTheEnvironment() async throws {
            let output = Shoal.temporaryDirectory() + "/out"
            let created = try await Shoal.run(
                ["create", "-e", "production", "-n", "3", "-d", output, "--monitoring-source", "kustomize"],
                timeout: .seconds(120))
            #expect(created.status == 0, "\(created.standardOutput)\(created.standardError)")
            let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
            #expect(created.standardOutput.contains("Health: score 100/100 (healthy)"), "\(created.standardOutput)")
            let app = try String(contentsOfFile: "\(output)/argocd-apps/\(workflow)/monitoring-app.yaml", encoding: .utf8)
            #expect(app.contains("path: monitoring/overlays/production"))
            let objects = try #require(try state(output, workflow)["objects"] as? [String: Any])
            let headlamp = try #require(objects["Deployment/monitoring/headlamp"] as? [String: Any])
            #expect(value(headlamp, "body", "spec", "replicas") as? Int == 2)
        }

        @Test func theMonitoringStackFromPinnedHelmChartsAndAnUnknownVersionNamesItsFile() async throws {
            let output = Shoal.temporaryDirectory() + "/out"
            let created = try await Shoal.run(
                ["create", "-e", "production", "-n", "3", "-d", output, "--monitoring-source", "helm"],
                timeout: .seconds(120))
            #expect(created.status == 0, "\(created.standardOutput)\(created.standardError)")
            let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
            #expect(created.standardOutput.contains("Health: score 100/100 (healthy)"), "\(created.standardOutput)")
            let repository = "\(output)/gitops/\(workflow)"
            #expect(!FileManager.default.fileExists(atPath: "\(repository)/apps/monitoring.yaml"))
            for values in ["prometheus", "grafana", "headlamp"] {
                #expect(FileManager.default.fileExists(atPath: "\(repository)/monitoring/helm/\(values)-values.yaml"))
            }
            let objects = try #require(try state(output, workflow)["objects"] as? [String: Any])
            for key in [
                "Service/monitoring/prometheus", "Service/monitoring/grafana", "Deployment/monitoring/headlamp",
                "DaemonSet/monitoring/node-exporter", "Deployment/monitoring/kube-state-metrics",
            ] {
                #expect(objects.keys.contains(key), "\(key)")
            }
            // The model follows the values: the production environment's retention, resources and replicas.
            let prometheus = try #require(objects["Deployment/monitoring/prometheus"] as? [String: Any])
            let containers = try #require(value(prometheus, "body", "spec", "template", "spec", "containers") as? [Any])
            let arguments = try #require(value(containers.first, "args") as? [String])
            #expect(arguments.contains("--storage.tsdb.retention.time=30d"), "\(arguments)")
            #expect(value(containers.first, "resources", "requests", "cpu") as? String == "500m")
            let headlamp = try #require(objects["Deployment/monitoring/headlamp"] as? [String: Any])
            #expect(value(headlamp, "body", "spec", "replicas") as? Int == 2)

            let join = try await Shoal.run(["create", "-d", output, "--join-fleet", workflow])
            #expect(join.status != 0 && join.standardError.contains("not available yet"), "\(join.standardError)")

            // A chart version shoal does not know, committed and pushed: a failed sync that names the file.
            let file = "\(repository)/apps/monitoring-grafana.yaml"
            let text = try String(contentsOfFile: file, encoding: .utf8)
            #expect(text.contains("targetRevision: \"11.1.7\""), "\(text)")
            try SecureFile.write(text.replacingOccurrences(of: "\"11.1.7\"", with: "\"99.0.0\""), to: file)
            try await git(repository, ["commit", "-q", "-am", "grafana chart 99.0.0"])
            let pushed = try await Shoal.run(["gitops", "push", workflow, "-d", output])
            #expect(pushed.status == 0, "\(pushed.standardError)")
            let failed = try await Shoal.run(["validate", workflow, "-d", output])
            #expect(failed.status == 1, "\(failed.standardOutput)")
            #expect(failed.standardOutput.contains("apps/monitoring-grafana.yaml"), "\(failed.standardOutput)")
            #expect(failed.standardOutput.contains("version 99.0.0 not found"), "\(failed.standardOutput)")
            #expect(!failed.standardOutput.contains("Health: score 100/100"), "\(failed.standardOutput)")
        }

        func value(_ object: Any?, _ path: String...) -> Any? {
            path.reduce(object) { ($0 as? [String: Any])?[$1] }
        }

        @Test func createRefusesBadApplicationsBeforeAnythingRuns() async throws {
            let output = Shoal.temporaryDirectory() + "/out"
            for arguments in [
                ["--app", "web"], ["--app", "web=../etc"], ["--app", "monitoring=https://h/r.git//p"],
                ["--app", "mine=mydir"], ["--examples", "--app", "web=https://h/r.git//p"],
                ["--examples", "--no-argocd"], ["--monitoring-source", "helm", "--no-argocd"],
                ["--monitoring-source", "x;id"],
                ["--app", "c=helm:https://charts.jetstack.io//cert-manager@^1.0"],
                ["--monitoring-source", "kustomize", "--no-argocd"],
            ] {
                let refused = try await Shoal.run(["create", "-d", output] + arguments)
                #expect(refused.status == 64, "\(arguments): \(refused.standardError)")
                #expect(!FileManager.default.fileExists(atPath: "\(output)/.shoal/journal.sqlite"), "\(arguments)")
            }
        }
    }
}
