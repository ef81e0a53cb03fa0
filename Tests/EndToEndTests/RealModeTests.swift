import Foundation
import ShoalSupport
import Testing

/// The end-to-end tests of real mode, validate and destroy, one at a time: each runs `shoal create`, whose
/// processes would otherwise compete for the machine with each other and with the other suites.
@Suite(.serialized) enum EndToEndCommands {}

/// A private copy of the stand-in programs (Tests/Fixtures/standins) with the recorded Prometheus and Grafana answers.
struct StandInDirectory {
    let path: String

    init() throws {
        path = Shoal.temporaryDirectory() + "/bin"
        let source = Shoal.packageRoot + "/Tests/Fixtures/standins"
        let recorded = (Shoal.packageRoot as NSString).deletingLastPathComponent + "/shared/fixtures"
        try SecureFile.createDirectory(path, mode: 0o700)
        for name in try FileManager.default.contentsOfDirectory(atPath: source) {
            let data = try Data(contentsOf: URL(fileURLWithPath: source + "/" + name))
            let executable = ["kubectl", "terraform", "sudo", "curl"].contains(name)
            try SecureFile.write(data, to: path + "/" + name, mode: executable ? 0o755 : 0o644)
        }
        for (file, fixture) in [
            ("raw-ready.out", "prometheus/ready-200.txt"),
            ("raw-targets.json", "prometheus/api-v1-targets-openapi-golden-example.json"),
            ("raw-health.json", "grafana/api-health-200-docs-example.json"),
        ] {
            guard let data = FileManager.default.contents(atPath: recorded + "/" + fixture) else {
                throw ShoalError(.notFound, "recorded fixture \(fixture) is missing in \(recorded)")
            }
            try SecureFile.write(data, to: path + "/" + file)
        }
    }

    func lines(_ file: String) -> [String] {
        ((try? String(contentsOfFile: path + "/" + file, encoding: .utf8)) ?? "").split(separator: "\n").map(
            String.init)
    }

    /// PATH with the stand-ins first.
    var searchPath: String { path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin") }
}

extension EndToEndCommands {
    @Suite struct RealModeTests {
        @Test func aRealDeploymentWithoutTerraformOrKubectlFailsFastNamingThem() async throws {
            guard let git = ProcessRunner.locate("git") else {
                Issue.record("git is needed by the monitoring agent")
                return
            }
            // A PATH with git only: no terraform, no kubectl.
            let directory = Shoal.temporaryDirectory()
            try SecureFile.createDirectory(directory + "/bin")
            try FileManager.default.createSymbolicLink(atPath: directory + "/bin/git", withDestinationPath: git)
            let output = directory + "/out"
            let started = ContinuousClock.now
            let result = try await Shoal.run(
                ["create", "--real-deployment", "--target", "local", "-d", output], timeout: .seconds(30),
                environment: ["PATH": directory + "/bin"])
            let elapsed = ContinuousClock.now - started
            #expect(result.status != 0)
            #expect(elapsed < .seconds(15), "took \(elapsed)")
            let text = result.standardOutput + result.standardError
            #expect(text.contains("preflight failed for the infra agent"))
            #expect(text.contains("missing terraform"))
            #expect(
                text.contains("kubectl (waits until the nodes are Ready; install: kubectl from https://kubernetes.io"))
            #expect(text.contains("https://developer.hashicorp.com/terraform/install"))
            #expect(text.contains("preflight failed for the validation agent"))
            // Nothing was changed: provision never ran, so there is no Terraform state and no kubeconfig.
            let workflow = try #require(Shoal.workflowID(in: result.standardOutput))
            #expect(!FileManager.default.fileExists(atPath: "\(output)/terraform/\(workflow)"))
            #expect(!FileManager.default.fileExists(atPath: "\(output)/kubeconfigs/\(workflow)/kubeconfig"))
            let status = try await Shoal.run(["status", workflow, "-d", output])
            #expect(status.standardOutput.contains("workflow \(workflow): failed"))
            #expect(status.standardOutput.contains("provision") && status.standardOutput.contains("skipped"))
        }

        @Test func aRealDeploymentRunsThroughStandInsThenValidatesAndIsDestroyedTwice() async throws {
            let standIns = try StandInDirectory()
            let directory = Shoal.temporaryDirectory()
            let output = directory + "/out"
            let kubeconfig = directory + "/home/kubeconfig"
            // The user's own kubeconfig, which merge and destroy must leave as it is.
            try SecureFile.write(
                """
                apiVersion: v1
                kind: Config
                clusters:
                - name: prod
                  cluster: {server: "https://prod.example.com:6443"}
                contexts:
                - name: prod
                  context: {cluster: prod, user: alice}
                current-context: prod
                users:
                - name: alice
                  user: {token: not-a-real-token}

                """, to: kubeconfig, mode: 0o600)
            let userOriginal = try #require(FileManager.default.contents(atPath: kubeconfig))
            let environment = ["PATH": standIns.searchPath, "KUBECONFIG": kubeconfig, "HOME": directory + "/home"]
            // The in-cluster git server's NodePort is stood in for by `shoal gitops serve` with the same password.
            let gitServer = try await GitServerStandIn(standIns: standIns, directory: directory)
            defer { gitServer.stop() }
            let result = try await Shoal.run(
                [
                    "create", "--real-deployment", "--target", "local", "-d", output, "--wait-timeout", "5s",
                    "--gitops-push-url", gitServer.url, "--merge-kubeconfig",
                ], timeout: .seconds(60), environment: environment)
            #expect(result.status == 0, "stdout: \(result.standardOutput)\nstderr: \(result.standardError)")
            let workflow = try #require(Shoal.workflowID(in: result.standardOutput))
            #expect(result.standardOutput.contains("Health: score 100/100 (healthy)"))
            #expect(result.standardOutput.contains("ok    preflight/infra"))
            #expect(result.standardOutput.contains("context shoal-\(workflow) merged into \(kubeconfig)"))

            let terraform = standIns.lines("terraform-calls.log")
            #expect(terraform.map { String($0.prefix { $0 != " " }) } == ["init", "validate", "plan", "apply"])
            let kubectl = standIns.lines("calls.log")
            #expect(
                kubectl.contains {
                    $0.contains(
                        "apply --server-side --force-conflicts -n argocd -f "
                            + "https://raw.githubusercontent.com/argoproj/argo-cd/v3.5.1/manifests/install.yaml")
                })
            #expect(
                kubectl.contains { $0.contains("rollout status statefulset/argocd-application-controller -n argocd") })
            #expect(kubectl.contains { $0.contains("get applications.argoproj.io --namespace argocd") })
            #expect(SecureFile.mode(of: "\(output)/kubeconfigs/\(workflow)/kubeconfig") == 0o600)
            let password = "\(output)/kubeconfigs/\(workflow)/argocd-admin-password"
            #expect((try? String(contentsOfFile: password, encoding: .utf8)) == "stand-in-admin-password\n")
            let merged = try String(contentsOfFile: kubeconfig, encoding: .utf8)
            #expect(merged.contains("name: shoal-\(workflow)") && merged.contains("name: prod"))
            #expect(merged.contains("current-context: prod"))

            try await checkClusterAccess(
                workflow: workflow, output: output, kubeconfig: kubeconfig, environment: environment)
            let withLab = try String(contentsOfFile: kubeconfig, encoding: .utf8)

            let validated = try await Shoal.run(["validate", workflow, "-d", output], environment: environment)
            #expect(validated.status == 0, "\(validated.standardOutput)\(validated.standardError)")
            #expect(validated.standardOutput.contains("(real cluster)"))
            #expect(validated.standardOutput.contains("Health: score 100/100 (healthy)"))

            // Without a terminal to ask on and without --yes, a real cluster stays.
            let refused = try await Shoal.run(["destroy", workflow, "-d", output], environment: environment)
            #expect(refused.status == 1, "\(refused.standardOutput)\(refused.standardError)")
            #expect(
                refused.standardError.hasPrefix("error: workflow \(workflow) is a real deployment (")
                    && refused.standardError.contains("no terminal to confirm on: pass --yes"),
                "\(refused.standardError)")
            #expect(refused.standardError.split(separator: "\n").count == 1)
            #expect(!standIns.lines("terraform-calls.log").contains { $0.hasPrefix("destroy") })
            #expect(FileManager.default.fileExists(atPath: "\(output)/kubeconfigs/\(workflow)/kubeconfig"))
            #expect(try String(contentsOfFile: kubeconfig, encoding: .utf8) == withLab, "the kubeconfig is untouched")
            // On a terminal (script(1) gives it one) the question is asked; "n" leaves the cluster.
            if let script = ProcessRunner.locate("script") {
                let command = [Shoal.executable, "destroy", workflow, "-d", output].map { "'\($0)'" }
                    .joined(separator: " ")
                let asked = try await ProcessRunner().run(
                    script, ["-qec", command, "/dev/null"], environment: environment, input: Data("n\n".utf8),
                    timeout: .seconds(30))
                let text = asked.standardOutput + asked.standardError
                #expect(asked.status == 1, "\(text)")
                #expect(text.contains("destroy cluster \(workflow) on ") && text.contains("? [y/N]"), "\(text)")
                #expect(text.contains("destroy of \(workflow) cancelled; nothing was changed"), "\(text)")
                #expect(!standIns.lines("terraform-calls.log").contains { $0.hasPrefix("destroy") })
            } else if ProcessInfo.processInfo.environment["CI"] != nil {
                Issue.record("script (util-linux) is not installed but CI is set")
            } else {
                print("SKIPPED the terminal question: script (util-linux) is not installed")
            }

            for round in 1...2 {
                let destroyed = try await Shoal.run(
                    ["destroy", workflow, "-d", output, "--yes"], environment: environment)
                #expect(destroyed.status == 0, "round \(round): \(destroyed.standardOutput)\(destroyed.standardError)")
            }
            let destroys = standIns.lines("terraform-calls.log").filter { $0.hasPrefix("destroy") }
            #expect(destroys.count == 1, "terraform destroy ran once: \(destroys)")
            #expect(destroys.first?.hasSuffix("token=set") == true, "with the join token kept in the journal")
            #expect(!FileManager.default.fileExists(atPath: "\(output)/kubeconfigs/\(workflow)/kubeconfig"))
            let after = try String(contentsOfFile: kubeconfig, encoding: .utf8)
            #expect(!after.contains("shoal-\(workflow)") && !after.contains("name: lab"), "\(after)")
            #expect(
                FileManager.default.contents(atPath: kubeconfig) == userOriginal,
                "destroy took out exactly shoal's entries: the user's file is byte for byte as it was: \(after)")
            #expect(
                after.contains("name: prod") && after.contains("not-a-real-token")
                    && after.contains("current-context: prod"))
            let listed = try await Shoal.run(["list", "-d", output])
            #expect(listed.standardOutput.contains("destroyed"))
        }
    }
}

extension EndToEndCommands.RealModeTests {
    /// `shoal kubeconfig` and `shoal credentials` on a real run: absolute paths, secrets in 0600 files and on
    /// standard output only when asked, a merge under another name that keeps the user's entries, a foreign name
    /// refused.
    func checkClusterAccess(
        workflow: String, output: String, kubeconfig: String, environment: [String: String]
    ) async throws {
        let path = try await Shoal.run(["kubeconfig", workflow, "-d", output], environment: environment)
        #expect(path.status == 0, "\(path.standardError)")
        #expect(path.standardOutput == "\(output)/kubeconfigs/\(workflow)/kubeconfig\n")
        let printed = try await Shoal.run(["kubeconfig", workflow, "-d", output, "-p"], environment: environment)
        #expect(printed.status == 0)
        #expect(
            Data(printed.standardOutput.utf8)
                == FileManager.default.contents(atPath: "\(output)/kubeconfigs/\(workflow)/kubeconfig"))

        let before = try #require(FileManager.default.contents(atPath: kubeconfig))
        let foreign = try await Shoal.run(
            ["kubeconfig", workflow, "-d", output, "--merge", "--context", "prod"], environment: environment)
        #expect(foreign.status == 1)
        #expect(
            foreign.standardError.contains("a cluster named 'prod' that shoal did not write"),
            "\(foreign.standardError)")
        #expect(foreign.standardError.split(separator: "\n").count == 1)
        #expect(FileManager.default.contents(atPath: kubeconfig) == before, "a refused merge changes nothing")

        let lab = try await Shoal.run(
            ["kubeconfig", workflow, "-d", output, "--merge", "--context", "lab"], environment: environment)
        #expect(lab.status == 0, "\(lab.standardError)")
        #expect(lab.standardOutput.contains("kubeconfig: context lab merged into \(kubeconfig)"))
        let backupLine = try #require(lab.standardOutput.split(separator: "\n").first { $0.hasPrefix("backup: ") })
        let backup = String(backupLine.dropFirst("backup: ".count))
        #expect(backup.hasPrefix(kubeconfig + ".shoal-backup-"))
        #expect(SecureFile.mode(of: backup) == 0o600)
        #expect(FileManager.default.contents(atPath: backup) == before)
        let merged = try String(contentsOfFile: kubeconfig, encoding: .utf8)
        #expect(merged.contains("current-context: prod") && merged.contains("name: lab"))

        let credentials = try await Shoal.run(["credentials", workflow, "-d", output], environment: environment)
        #expect(credentials.status == 0, "\(credentials.standardError)")
        let rows = credentials.standardOutput.split(separator: "\n").dropFirst()
        #expect(rows.map { String($0.prefix { $0 != " " }) } == ["argocd", "grafana", "headlamp"], "\(rows)")
        for row in rows {
            let file = try #require(row.split(separator: " ").last.map(String.init))
            #expect(file.hasPrefix(output + "/kubeconfigs/\(workflow)/"), "\(row)")
            #expect(SecureFile.mode(of: file) == 0o600, "\(file)")
        }
        #expect(!credentials.standardOutput.contains("stand-in-admin-password"), "no secret without --show")
        #expect(!credentials.standardOutput.contains("stand-in-token-for"), "no token without --show")
        let token = try String(
            contentsOfFile: "\(output)/kubeconfigs/\(workflow)/headlamp-token", encoding: .utf8)
        #expect(token == "stand-in-token-for-headlamp-admin\n")
        let shown = try await Shoal.run(
            ["credentials", workflow, "argocd", "--show", "-d", output], environment: environment)
        #expect(shown.status == 0)
        #expect(shown.standardOutput.contains("stand-in-admin-password"), "\(shown.standardOutput)")
        #expect(!shown.standardError.contains("stand-in-admin-password"))
    }
}

extension EndToEndCommands {
    @Suite struct ValidateAndDestroyTests {
        /// Commits files to the workflow's GitOps repository, as a user would.
        func commit(_ repository: String, _ files: [String: String], remove: [String] = [], message: String)
            async throws
        {
            for (name, text) in files { try SecureFile.write(text, to: repository + "/" + name) }
            let runner = ProcessRunner()
            for name in remove { _ = try await runner.run("git", ["-C", repository, "rm", "-q", name]) }
            let identity = [
                "-c", "user.name=tester", "-c", "user.email=tester@shoal.invalid", "-c", "commit.gpgsign=false",
            ]
            let added = try await runner.run("git", ["-C", repository, "add", "-A"])
            let committed = try await runner.run("git", identity + ["-C", repository, "commit", "-q", "-m", message])
            #expect(added.succeeded && committed.succeeded, "\(committed.standardError)")
        }

        @Test func validateScoresADemoRunAndNamesTheFileABrokenCommitBroke() async throws {
            let output = Shoal.temporaryDirectory() + "/out"
            let created = try await Shoal.run(["create", "-n", "2", "-d", output])
            #expect(created.status == 0, "\(created.standardError)")
            let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
            // The repository's URL is the in-cluster git server's, which outlives create.
            let application = try String(
                contentsOfFile: "\(output)/argocd-apps/\(workflow)/monitoring-app.yaml", encoding: .utf8)
            #expect(application.contains("repoURL: http://shoal-git.shoal-gitops.svc.cluster.local/shoal/"))

            let healthy = try await Shoal.run(["validate", workflow, "-d", output])
            #expect(healthy.status == 0, "\(healthy.standardOutput)\(healthy.standardError)")
            #expect(healthy.standardOutput.contains("Health: score 100/100 (healthy)"))

            let repository = "\(output)/gitops/\(workflow)"
            try await commit(
                repository,
                ["monitoring/40-extra.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra\ndata: [\n"],
                message: "a manifest that does not parse")
            let pushed = try await Shoal.run(["gitops", "push", workflow, "-d", output])
            #expect(pushed.status == 0, "\(pushed.standardError)")
            let broken = try await Shoal.run(["validate", workflow, "-d", output])
            #expect(broken.status == 1)
            #expect(broken.standardOutput.contains("Health: score 80/100 (degraded)"), "\(broken.standardOutput)")
            #expect(broken.standardOutput.contains("OutOfSync"))
            #expect(broken.standardOutput.contains("remedy: Fix monitoring/40-extra.yaml"))

            let deployment = """
                apiVersion: apps/v1
                kind: Deployment
                metadata: {name: reporter, namespace: monitoring}
                spec:
                  selector: {matchLabels: {app.kubernetes.io/name: reporter}}
                  template:
                    metadata: {labels: {app.kubernetes.io/name: reporter}}
                    spec:
                      containers:
                      - name: reporter
                        image: docker.io/library/busybox:1.37.0
                        env:
                        - name: API_TOKEN
                          valueFrom: {secretKeyRef: {name: reporter-token, key: token}}

                """
            try await commit(
                repository, ["monitoring/45-reporter.yaml": deployment], remove: ["monitoring/40-extra.yaml"],
                message: "a Deployment whose Secret does not exist")
            #expect(try await Shoal.run(["gitops", "push", workflow, "-d", output]).status == 0)
            let degraded = try await Shoal.run(["validate", workflow, "-d", output, "--json"])
            #expect(degraded.status == 1)
            let report = try #require(
                try JSONSerialization.jsonObject(with: Data(degraded.standardOutput.utf8)) as? [String: Any])
            #expect((report["score"] as? Int ?? 100) < 100)
            let checks = report["checks"] as? [[String: Any]] ?? []
            let applications = try #require(checks.first { $0["name"] as? String == "applications" })
            #expect(applications["passed"] as? Bool == false)
            #expect((applications["message"] as? String)?.contains("monitoring Synced/Degraded") == true)
            #expect((applications["remedy"] as? String)?.contains("monitoring/45-reporter.yaml") == true)
            #expect(
                (applications["details"] as? [String])?.contains { $0.contains(#"Secret "reporter-token" not found"#) }
                    == true)
        }

        @Test func destroyTwiceExitsZeroAndMarksTheWorkflow() async throws {
            let output = Shoal.temporaryDirectory() + "/out"
            let created = try await Shoal.run(["create", "-n", "1", "-d", output])
            #expect(created.status == 0, "\(created.standardError)")
            let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
            let first = try await Shoal.run(["destroy", workflow, "-d", output])
            #expect(first.status == 0, "\(first.standardError)")
            #expect(first.standardOutput.contains("workflow \(workflow) destroyed"))
            let second = try await Shoal.run(["destroy", workflow, "-d", output])
            #expect(second.status == 0, "\(second.standardError)")
            #expect(second.standardOutput.contains("already destroyed"))
            let status = try await Shoal.run(["status", workflow, "-d", output])
            #expect(status.standardOutput.contains("workflow \(workflow): destroyed"))
            #expect(!FileManager.default.fileExists(atPath: "\(output)/kubeconfigs/\(workflow)/simulated-cluster.json"))
            #expect(
                FileManager.default.fileExists(atPath: "\(output)/gitops/\(workflow)/.git"), "the repository is kept")
            let validate = try await Shoal.run(["validate", workflow, "-d", output])
            #expect(validate.status == 1)
            #expect(validate.standardError.contains("was destroyed"))
            let unknown = try await Shoal.run(["destroy", "no-such-workflow", "-d", output])
            #expect(unknown.status == 1)
            #expect(unknown.standardError.contains("no workflow 'no-such-workflow'"))
        }

        @Test func withoutArgoCDTheStackIsAppliedDirectlyAndStillValidates() async throws {
            let output = Shoal.temporaryDirectory() + "/out"
            let created = try await Shoal.run(["create", "-n", "1", "--no-argocd", "-d", output])
            #expect(created.status == 0, "\(created.standardError)")
            let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
            #expect(created.standardOutput.contains("applied with kubectl apply --server-side (Argo CD off)"))
            #expect(!created.standardOutput.contains("gitops-engine"))
            let validated = try await Shoal.run(["validate", workflow, "-d", output])
            #expect(validated.status == 0, "\(validated.standardOutput)")
            #expect(!validated.standardOutput.contains("applications"))
        }

        @Test func aGitOpsRemoteReceivesTheCommitAndTheApplicationsPointThere() async throws {
            let directory = Shoal.temporaryDirectory()
            let remote = directory + "/remote.git"
            let initialized = try await ProcessRunner().run("git", ["init", "-q", "--bare", "-b", "main", remote])
            #expect(initialized.succeeded)
            let output = directory + "/out"
            let created = try await Shoal.run(["create", "-n", "1", "--gitops-remote", remote, "-d", output])
            #expect(created.status == 0, "\(created.standardOutput)\(created.standardError)")
            let workflow = try #require(Shoal.workflowID(in: created.standardOutput))
            let root = try String(contentsOfFile: "\(output)/argocd-apps/\(workflow)/root-app.yaml", encoding: .utf8)
            #expect(root.contains("repoURL: \(remote)"))
            let local = try await ProcessRunner().run(
                "git", ["-C", "\(output)/gitops/\(workflow)", "rev-parse", "HEAD"])
            let pushed = try await ProcessRunner().run("git", ["-C", remote, "rev-parse", "main"])
            #expect(pushed.succeeded && pushed.standardOutput == local.standardOutput)
            #expect(created.standardOutput.contains("Health: score 100/100"))
        }

        @Test func helpDescribesValidateAndDestroy() async throws {
            let validate = try await Shoal.run(["validate", "--help"])
            #expect(validate.standardOutput.contains("--output") && validate.standardOutput.contains("--json"))
            let destroy = try await Shoal.run(["destroy", "--help"])
            #expect(destroy.standardOutput.contains("terraform destroy") && destroy.standardOutput.contains("--force"))
        }
    }
}
