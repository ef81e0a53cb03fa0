import Foundation
import ShoalSupport
import Testing

extension EndToEndCommands {
    /// Two demo clusters in one fleet, through the commands a user types.
    @Suite struct FleetJoinTests {
        @Test func createsHelpDescribesJoinFleet() async throws {
            let help = try await Shoal.run(["create", "--help"])
            #expect(help.status == 0)
            #expect(help.standardOutput.contains("--join-fleet <fleet>"), "\(help.standardOutput)")
            #expect(help.standardOutput.contains("Argo CD of the"), "\(help.standardOutput)")
        }

        @Test func aSecondClusterJoinsTheFleetAndTheApplicationSetsDeployToBoth() async throws {
            let output = Shoal.temporaryDirectory() + "/out"
            let first = try await Shoal.run(["create", "-d", output, "--examples"], timeout: .seconds(120))
            #expect(first.status == 0, "\(first.standardOutput)\(first.standardError)")
            let fleet = try #require(Shoal.workflowID(in: first.standardOutput))

            // Bad values: one line, nothing started.
            for (value, status) in [("Bad_ID", 64), ("-x", 64), ("k3s-dev-000000", 1)] {
                let refused = try await Shoal.run(["create", "-d", output, "--join-fleet=\(value)"])
                #expect(refused.status == Int32(status), "\(value): \(refused.standardError)")
                let lines = refused.standardError.split(separator: "\n").filter {
                    !$0.hasPrefix("Usage") && !$0.hasPrefix("  See")
                }
                #expect(lines.count == 1, "\(value): \(refused.standardError)")
            }
            let withApps = try await Shoal.run(["create", "-d", output, "--join-fleet", fleet, "--examples"])
            #expect(withApps.status == 64, "\(withApps.standardError)")

            let second = try await Shoal.run(["create", "-d", output, "--join-fleet", fleet], timeout: .seconds(120))
            #expect(second.status == 0, "\(second.standardOutput)\(second.standardError)")
            let member = try #require(Shoal.workflowID(in: second.standardOutput))
            #expect(member != fleet)
            #expect(second.standardOutput.contains("registered \(member)"), "\(second.standardOutput)")
            for app in [
                "monitoring-\(fleet)", "monitoring-\(member)", "web-\(member)", "postgres-\(member)",
                "valkey-\(member)",
            ] {
                #expect(
                    second.standardOutput.contains("application \(app): Synced/Healthy"),
                    "\(app): \(second.standardOutput)")
            }

            // The fleet's Argo CD: one monitoring Application per cluster, and members x applications.
            let path = "\(output)/kubeconfigs/\(fleet)/simulated-cluster.json"
            let state = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
            let objects = try #require(state["objects"] as? [String: Any])
            let applications = objects.keys.filter { $0.hasPrefix("Application/argocd/") }
            #expect(
                applications.filter { $0.hasPrefix("Application/argocd/monitoring-") }.count == 2, "\(applications)")
            #expect(applications.filter { $0.hasSuffix("-\(member)") && !$0.contains("monitoring") }.count == 3)
            #expect(objects["Secret/argocd/cluster-\(member)"] != nil)
            #expect(SecureFile.mode(of: path) == 0o600)

            let validated = try await Shoal.run(["validate", fleet, "-d", output])
            #expect(validated.status == 0, "\(validated.standardOutput)\(validated.standardError)")
            #expect(validated.standardOutput.contains("Fleet \(fleet): 2 clusters"), "\(validated.standardOutput)")
            #expect(validated.standardOutput.contains("\(member)"), "\(validated.standardOutput)")
            #expect(validated.standardOutput.contains("Fleet: score 100/100 (healthy)"), "\(validated.standardOutput)")
            let json = try await Shoal.run(["validate", fleet, "-d", output, "--json"])
            let report = try #require(
                try JSONSerialization.jsonObject(with: Data(json.standardOutput.utf8)) as? [String: Any])
            let clusters = try #require((report["fleet"] as? [String: Any])?["clusters"] as? [[String: Any]])
            #expect(clusters.map { $0["name"] as? String } == [fleet, member])

            // The credentials never reach git: not in the repository, not in its history.
            let kubeconfig = try String(contentsOfFile: "\(output)/kubeconfigs/\(member)/kubeconfig", encoding: .utf8)
            let token = try #require(
                kubeconfig.split(separator: "\n").first { $0.contains("token:") }?.split(separator: " ").last.map(
                    String.init))
            #expect(token.count >= 20)
            let repository = "\(output)/gitops/\(fleet)"
            let history = try await ProcessRunner().run("git", ["-C", repository, "log", "-p", "--all"])
            #expect(history.succeeded && history.standardOutput.contains("fleet-monitoring"))
            #expect(!history.standardOutput.contains(token))
            let grep = try await ProcessRunner().run("grep", ["-r", "-l", token, repository])
            #expect(grep.status == 1, "\(grep.standardOutput)")

            // A new application of the fleet reaches the member too: the matrix's list follows apps/.
            let added = try await Shoal.run(["app", "add", fleet, "shop", "examples/web", "-d", output])
            #expect(added.status == 0, "\(added.standardOutput)\(added.standardError)")
            let set = try String(contentsOfFile: "\(repository)/apps/fleet-applications.yaml", encoding: .utf8)
            #expect(set.contains("app: shop"), "\(set)")
            let afterAdd = try await Shoal.run(["validate", fleet, "-d", output, "--json"])
            let afterReport = try #require(
                try JSONSerialization.jsonObject(with: Data(afterAdd.standardOutput.utf8)) as? [String: Any])
            let memberChecks = try #require(
                ((afterReport["fleet"] as? [String: Any])?["clusters"] as? [[String: Any]])?.last?["checks"]
                    as? [[String: Any]])
            let details = memberChecks.first { $0["name"] as? String == "fleet-applications" }?["details"] as? [String]
            #expect(details?.contains { $0.hasPrefix("shop-\(member): Synced/Healthy") } == true, "\(details ?? [])")
            let gone = try await Shoal.run(["app", "remove", fleet, "shop", "-d", output])
            #expect(gone.status == 0, "\(gone.standardError)")
            #expect(
                !(try String(contentsOfFile: "\(repository)/apps/fleet-applications.yaml", encoding: .utf8))
                    .contains("app: shop"))

            // A broken manifest lowers the member's score and names the file.
            let web = "\(repository)/examples/web/web.yaml"
            try SecureFile.write("kind: [unclosed\n", to: web)
            let commit = try await ProcessRunner().run(
                "git",
                ["-c", "user.name=t", "-c", "user.email=t@shoal.invalid", "-C", repository, "commit", "-qam", "break"])
            #expect(commit.succeeded)
            _ = try await Shoal.run(["gitops", "push", fleet, "-d", output])
            let broken = try await Shoal.run(["validate", fleet, "-d", output])
            #expect(broken.status == 1)
            #expect(broken.standardOutput.contains("FAIL fleet-applications"), "\(broken.standardOutput)")
            #expect(broken.standardOutput.contains("examples/web/web.yaml"), "\(broken.standardOutput)")
        }
    }
}

extension EndToEndCommands.FleetJoinTests {
    @Test func aRealClusterJoinsThroughTheFleetsKubeconfigAndItsCredentialsStayOutOfGit() async throws {
        let standIns = try StandInDirectory()
        let directory = Shoal.temporaryDirectory()
        let output = directory + "/out"
        let environment = ["PATH": standIns.searchPath, "HOME": directory + "/home"]
        let gitServer = try await GitServerStandIn(standIns: standIns, directory: directory)
        defer { gitServer.stop() }
        let common = ["--real-deployment", "--target", "local", "-d", output, "--wait-timeout", "5s"]
        let first = try await Shoal.run(
            ["create"] + common + ["--gitops-push-url", gitServer.url], timeout: .seconds(60), environment: environment)
        #expect(first.status == 0, "\(first.standardOutput)\(first.standardError)")
        let fleet = try #require(Shoal.workflowID(in: first.standardOutput))

        let unreachable = try await Shoal.run(["create", "--join-fleet", fleet] + common, environment: environment)
        #expect(unreachable.status == 64, "\(unreachable.standardError)")
        #expect(unreachable.standardError.contains("--advertise-address"), "\(unreachable.standardError)")

        // The stand-in's kubeconfig names 127.0.0.1, which the fleet's Argo CD could not reach: refused after the run.
        let loopback = try await Shoal.run(
            ["create", "--join-fleet", fleet, "--advertise-address", "10.0.0.5"] + common, timeout: .seconds(60),
            environment: environment)
        #expect(loopback.status == 1)
        #expect(loopback.standardError.contains("names its own host only"), "\(loopback.standardError)")

        let kubeconfig = standIns.path + "/kubeconfig.yaml"
        let text = try String(contentsOfFile: kubeconfig, encoding: .utf8)
        try SecureFile.write(text.replacingOccurrences(of: "127.0.0.1", with: "10.0.0.5"), to: kubeconfig)
        let joined = try await Shoal.run(
            ["create", "--join-fleet", fleet, "--advertise-address", "10.0.0.5"] + common, timeout: .seconds(60),
            environment: environment)
        #expect(joined.status == 0, "\(joined.standardOutput)\(joined.standardError)")
        #expect(joined.standardOutput.contains("registered"), "\(joined.standardOutput)")
        let member = try #require(Shoal.workflowID(in: joined.standardOutput))

        // The cluster Secret went to kubectl on standard input, with the client certificate; git never saw it.
        let applied = try String(contentsOfFile: standIns.path + "/applied.yaml", encoding: .utf8)
        let certificate = "c2hvYWwgc3RhbmQtaW4gY2xpZW50IGNlcnRpZmljYXRl"
        #expect(applied.contains("name: cluster-\(member)") && applied.contains(certificate))
        #expect(
            applied.contains("server: \"https://10.0.0.5:6443\"") || applied.contains("server: https://10.0.0.5:6443"))
        let repository = "\(output)/gitops/\(fleet)"
        let history = try await ProcessRunner().run("git", ["-C", repository, "log", "-p", "--all"])
        #expect(history.standardOutput.contains("fleet-applications"), "\(history.standardOutput.prefix(400))")
        #expect(
            !history.standardOutput.contains(certificate)
                && !history.standardOutput.contains("c2hvYWwgc3RhbmQtaW4gY2xpZW50IGtleQ"))
        let served = try await ProcessRunner().run(
            "git", ["ls-remote", "\(gitServer.url)/shoal/\(fleet).git", "HEAD"])
        let head = try await ProcessRunner().run("git", ["-C", repository, "rev-parse", "HEAD"])
        #expect(
            served.standardOutput.hasPrefix(head.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)),
            "the join's commit was pushed: \(served.standardOutput) \(served.standardError)")

        // validate reads the fleet's cluster Secrets and checks the member with its own kubeconfig; the stand-in
        // cluster answers as the fleet's Argo CD would once the ApplicationSet generated the member's Application.
        func secret(_ name: String, _ server: String, _ role: String) -> String {
            let data = ["name": name, "server": server, "config": "{}"].mapValues {
                Data($0.utf8).base64EncodedString()
            }
            let labels = [
                "argocd.argoproj.io/secret-type": "cluster", "shoal.dev/fleet": fleet, "shoal.dev/fleet-role": role,
            ]
            let object: [String: Any] = [
                "apiVersion": "v1", "kind": "Secret", "data": data,
                "metadata": ["name": "cluster-\(name)", "namespace": "argocd", "labels": labels],
            ]
            return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        }
        try SecureFile.write(
            #"{"apiVersion": "v1", "kind": "List", "items": ["#
                + secret(member, "https://10.0.0.5:6443", "member") + "]}",
            to: standIns.path + "/secrets-argocd.json")
        let noApplication = try await Shoal.run(["validate", fleet, "-d", output], environment: environment)
        #expect(noApplication.status == 1, "\(noApplication.standardOutput)")
        #expect(noApplication.standardOutput.contains("Fleet \(fleet): 2 clusters"), "\(noApplication.standardOutput)")
        #expect(noApplication.standardOutput.contains("no Application of the fleet deploys to https://10.0.0.5:6443"))
        let applications = standIns.path + "/applications.json"
        var list = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: applications)))
                as? [String: Any])
        var items = try #require(list["items"] as? [[String: Any]])
        var generated = try #require(
            items.first { ($0["metadata"] as? [String: Any])?["name"] as? String == "monitoring" })
        var metadata = try #require(generated["metadata"] as? [String: Any])
        metadata["name"] = "monitoring-\(member)"
        generated["metadata"] = metadata
        var spec = try #require(generated["spec"] as? [String: Any])
        spec["destination"] = ["namespace": "monitoring", "server": "https://10.0.0.5:6443"]
        generated["spec"] = spec
        items.append(generated)
        list["items"] = items
        try JSONSerialization.data(withJSONObject: list).write(to: URL(fileURLWithPath: applications))
        let validated = try await Shoal.run(["validate", fleet, "-d", output], environment: environment)
        #expect(validated.status == 0, "\(validated.standardOutput)\(validated.standardError)")
        #expect(validated.standardOutput.contains("Fleet: score 100/100 (healthy)"), "\(validated.standardOutput)")
        let calls = standIns.lines("calls.log")
        #expect(calls.contains { $0.contains("kubeconfigs/\(member)/kubeconfig") && $0.contains("get nodes") })
    }
}
