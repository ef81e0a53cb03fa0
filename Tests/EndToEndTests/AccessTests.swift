import Foundation
import ShoalSupport
import Testing

extension EndToEndCommands {
    /// `shoal kubeconfig`, `shoal credentials` and `create --dry-run`, as a user runs them.
    @Suite struct AccessTests {
        /// A user's kubeconfig as kubectl writes it, which merge and destroy must leave as it is.
        static let userKubeconfig = """
            apiVersion: v1
            clusters:
            - cluster:
                server: https://prod.example.com:6443
              name: prod
            contexts:
            - context:
                cluster: prod
                user: alice
              name: prod
            current-context: prod
            kind: Config
            preferences: {}
            users:
            - name: alice
              user:
                token: not-a-real-token

            """

        @Test func aDemoRunsKubeconfigAndCredentialsThenDestroyTakesOutExactlyItsEntries() async throws {
            let directory = Shoal.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let output = directory + "/out"
            let kubeconfig = directory + "/home/.kube/config"
            try SecureFile.write(Self.userKubeconfig, to: kubeconfig, mode: 0o600)
            let original = try #require(FileManager.default.contents(atPath: kubeconfig))
            let environment = ["KUBECONFIG": kubeconfig, "HOME": directory + "/home"]
            let created = try await Shoal.run(
                ["create", "-d", output], timeout: .seconds(120), environment: environment)
            #expect(created.status == 0, "\(created.standardError)")
            let workflow = try #require(Shoal.workflowID(in: created.standardOutput))

            let path = try await Shoal.run(["kubeconfig", workflow, "-d", output], environment: environment)
            #expect(path.standardOutput == "\(output)/kubeconfigs/\(workflow)/kubeconfig\n", "\(path.standardError)")
            #expect(SecureFile.mode(of: "\(output)/kubeconfigs/\(workflow)/kubeconfig") == 0o600)

            // Default name, then a second one; the current context stays the user's.
            for name in [nil, "lab"] as [String?] {
                let merged = try await Shoal.run(
                    ["kubeconfig", workflow, "-d", output, "--merge"] + (name.map { ["--context", $0] } ?? []),
                    environment: environment)
                #expect(merged.status == 0, "\(merged.standardError)")
                let context = name ?? "shoal-\(workflow)"
                #expect(merged.standardOutput.contains("context \(context) merged into \(kubeconfig)"))
            }
            let backups = try FileManager.default.contentsOfDirectory(atPath: directory + "/home/.kube")
                .filter { $0.hasPrefix("config.shoal-backup-") }
            #expect(backups.count == 2, "\(backups)")
            for backup in backups {
                #expect(SecureFile.mode(of: directory + "/home/.kube/" + backup) == 0o600)
            }
            let text = try String(contentsOfFile: kubeconfig, encoding: .utf8)
            #expect(text.contains("current-context: prod\n"))
            #expect(text.contains("name: shoal-\(workflow)") && text.contains("name: lab"))

            let bad = try await Shoal.run(
                ["kubeconfig", workflow, "-d", output, "--merge", "--context", "Bad Name"], environment: environment)
            #expect(bad.status == 64 && bad.standardError.contains("--context must be"), "\(bad.standardError)")
            let refused = try await Shoal.run(
                ["kubeconfig", workflow, "-d", output, "--merge", "--context", "prod"], environment: environment)
            #expect(refused.status == 1)
            #expect(refused.standardError.contains("that shoal did not write"), "\(refused.standardError)")

            let credentials = try await Shoal.run(["credentials", workflow, "-d", output], environment: environment)
            #expect(credentials.status == 0, "\(credentials.standardError)")
            let lines = credentials.standardOutput.split(separator: "\n").map(String.init)
            #expect(lines.first?.hasPrefix("SERVICE") == true)
            let argocd = try #require(lines.first { $0.hasPrefix("argocd ") })
            let grafana = try #require(lines.first { $0.hasPrefix("grafana ") })
            #expect(lines.contains { $0.hasPrefix("headlamp ") && $0.contains("demo mode") })
            var secrets: [String] = []
            for line in [argocd, grafana] {
                let file = try #require(line.split(separator: " ").last.map(String.init))
                #expect(file.hasPrefix("/") && file.hasPrefix(output + "/kubeconfigs/\(workflow)/"), "\(line)")
                #expect(SecureFile.mode(of: file) == 0o600, "\(file)")
                let secret = try String(contentsOfFile: file, encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(!secret.isEmpty)
                secrets.append(secret)
            }
            for secret in secrets {
                #expect(!credentials.standardOutput.contains(secret), "no secret without --show")
                #expect(!created.standardOutput.contains(secret), "nor in create's output")
            }
            let shown = try await Shoal.run(
                ["credentials", workflow, "grafana", "--show", "-d", output], environment: environment)
            #expect(shown.status == 0)
            #expect(shown.standardOutput.contains(secrets[1]) && !shown.standardError.contains(secrets[1]))
            #expect(!shown.standardOutput.contains(secrets[0]), "only the service asked for")

            // A demo run is destroyed without a question, and both merges come out.
            let destroyed = try await Shoal.run(["destroy", workflow, "-d", output], environment: environment)
            #expect(destroyed.status == 0, "\(destroyed.standardError)")
            #expect(destroyed.standardOutput.contains("context lab removed from \(kubeconfig)"))
            #expect(FileManager.default.contents(atPath: kubeconfig) == original, "byte-identical after destroy")
        }

        @Test func aDemoDryRunWritesThePlanTerraformAndManifestsAndStartsNothing() async throws {
            let standIns = try StandInDirectory()
            let directory = Shoal.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let output = directory + "/out"
            let result = try await Shoal.run(
                ["create", "--dry-run", "-n", "3", "-d", output, "--coordinator-metrics", "coordinator.lab:9464"],
                environment: ["PATH": standIns.searchPath])
            #expect(result.status == 0, "\(result.standardOutput)\(result.standardError)")
            let workflow = try #require(
                result.standardOutput.split(separator: "\n").first { $0.hasPrefix("dry run of workflow ") }
                    .map { String($0.split(separator: " ")[4]) })
            let tree = "\(output)/dry-run/\(workflow)"
            #expect(result.standardOutput.contains("  plan         \(tree)/plan.json"))
            #expect(result.standardOutput.contains("terraform plan: 3 to add, 0 to change, 0 to destroy"))
            let plan = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tree + "/plan.json")))
                    as? [String: Any])
            let steps = (plan["steps"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            #expect(steps.contains("provision") && steps.contains("monitoring") && steps.contains("docs"))
            #expect(FileManager.default.fileExists(atPath: tree + "/terraform/main.tf"))
            #expect(FileManager.default.fileExists(atPath: tree + "/terraform-plan.txt"))
            // The repository the run would commit: the monitoring stack and the Applications that sync it.
            let prometheus = try String(contentsOfFile: tree + "/gitops/monitoring/10-prometheus.yaml", encoding: .utf8)
            #expect(prometheus.contains("job_name: shoal-coordinator") && prometheus.contains("coordinator.lab:9464"))
            let grafana = try String(contentsOfFile: tree + "/gitops/monitoring/20-grafana.yaml", encoding: .utf8)
            #expect(grafana.contains("shoal.json:"))
            let root = try String(contentsOfFile: tree + "/gitops/root-app.yaml", encoding: .utf8)
            #expect(root.contains("kind: Application") && root.contains("path: apps"), "\(root)")
            let monitoringApp = try String(contentsOfFile: tree + "/gitops/apps/monitoring.yaml", encoding: .utf8)
            #expect(monitoringApp.contains("shoal-git.shoal-gitops.svc.cluster.local/shoal/\(workflow).git"))
            #expect(FileManager.default.fileExists(atPath: tree + "/gitops/apps/argocd.yaml"))
            #expect(result.standardOutput.contains("  gitops       \(tree)/gitops/"), "\(result.standardOutput)")
            #expect(
                standIns.lines("terraform-calls.log").map { String($0.prefix { $0 != " " }) }
                    == ["init", "validate", "plan"])
            // Nothing started: no journal, no kubeconfig, no repository, no kubectl.
            for absent in [".shoal/journal.sqlite", "kubeconfigs", "gitops", "terraform"] {
                #expect(!FileManager.default.fileExists(atPath: "\(output)/\(absent)"), "\(absent)")
            }
            #expect(standIns.lines("calls.log").isEmpty)

            // Without terraform it says so, and still writes the files.
            guard let git = ProcessRunner.locate("git") else { return }
            try SecureFile.createDirectory(directory + "/bare")
            try FileManager.default.createSymbolicLink(atPath: directory + "/bare/git", withDestinationPath: git)
            let bare = try await Shoal.run(
                ["create", "--dry-run", "-d", output], environment: ["PATH": directory + "/bare"])
            #expect(bare.status == 0, "\(bare.standardError)")
            #expect(bare.standardOutput.contains("terraform: not installed, so no plan"), "\(bare.standardOutput)")

            // Without Argo CD the stack would be applied directly: its manifests, no repository.
            let direct = try await Shoal.run(
                ["create", "--dry-run", "--no-argocd", "-d", output], environment: ["PATH": standIns.searchPath])
            #expect(direct.status == 0, "\(direct.standardError)")
            let id = try #require(
                direct.standardOutput.split(separator: "\n").first { $0.hasPrefix("dry run of workflow ") }
                    .map { String($0.split(separator: " ")[4]) })
            #expect(FileManager.default.fileExists(atPath: "\(output)/dry-run/\(id)/manifests/monitoring/10-prometheus.yaml"))
            #expect(!FileManager.default.fileExists(atPath: "\(output)/dry-run/\(id)/gitops"))
        }

        @Test func aRealDryRunPlansWithTerraformAndAppliesNothing() async throws {
            let standIns = try StandInDirectory()
            let directory = Shoal.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let output = directory + "/out"
            let result = try await Shoal.run(
                ["create", "--real-deployment", "--target", "local", "--dry-run", "-d", output],
                environment: ["PATH": standIns.searchPath, "KUBECONFIG": directory + "/kubeconfig"])
            #expect(result.status == 0, "\(result.standardOutput)\(result.standardError)")
            #expect(result.standardOutput.contains("(real deployment): nothing is applied"))
            #expect(result.standardOutput.contains("preflight/infra"), "the real plan's steps are shown")
            let calls = standIns.lines("terraform-calls.log").map { String($0.prefix { $0 != " " }) }
            #expect(calls == ["init", "validate", "plan"], "no terraform apply: \(calls)")
            #expect(standIns.lines("calls.log").isEmpty, "no kubectl at all")
            #expect(!FileManager.default.fileExists(atPath: directory + "/kubeconfig"))
            #expect(!FileManager.default.fileExists(atPath: "\(output)/kubeconfigs"))
            #expect(!FileManager.default.fileExists(atPath: "\(output)/.shoal/journal.sqlite"))

            let refused = try await Shoal.run(
                ["create", "--dry-run", "--coordinator", "tcp://127.0.0.1:9", "--insecure"],
                environment: ["PATH": standIns.searchPath])
            #expect(refused.status == 64 && refused.standardError.contains("--dry-run renders on this host"))
        }
    }
}
