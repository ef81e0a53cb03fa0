import Foundation
import ShoalSupport
import Testing

extension EndToEndCommands {
    /// Two demo clusters in one fleet, through the commands a user types.
    @Suite struct FleetJoinTests {
        @Test func aSecondClusterJoinsTheFleetAndTheApplicationSetsDeployToBoth() async throws {
            let output = Shoal.temporaryDirectory() + "/out"
            let first = try await Shoal.run(["create", "-o", output, "--examples"], timeout: .seconds(120))
            #expect(first.status == 0, "\(first.standardOutput)\(first.standardError)")
            let fleet = try #require(Shoal.workflowID(in: first.standardOutput))

            // Bad values: one line, nothing started.
            for (value, status) in [("Bad_ID", 64), ("-x", 64), ("k3s-dev-000000", 1)] {
                let refused = try await Shoal.run(["create", "-o", output, "--join-fleet=\(value)"])
                #expect(refused.status == Int32(status), "\(value): \(refused.standardError)")
                let lines = refused.standardError.split(separator: "\n").filter { !$0.hasPrefix("Usage") && !$0.hasPrefix("  See") }
                #expect(lines.count == 1, "\(value): \(refused.standardError)")
            }
            let withApps = try await Shoal.run(["create", "-o", output, "--join-fleet", fleet, "--examples"])
            #expect(withApps.status == 64, "\(withApps.standardError)")

            let second = try await Shoal.run(["create", "-o", output, "--join-fleet", fleet], timeout: .seconds(120))
            #expect(second.status == 0, "\(second.standardOutput)\(second.standardError)")
            let member = try #require(Shoal.workflowID(in: second.standardOutput))
            #expect(member != fleet)
            #expect(second.standardOutput.contains("registered \(member)"), "\(second.standardOutput)")
            for app in ["monitoring-\(fleet)", "monitoring-\(member)", "web-\(member)", "postgres-\(member)", "valkey-\(member)"] {
                #expect(second.standardOutput.contains("application \(app): Synced/Healthy"), "\(app): \(second.standardOutput)")
            }

            // The fleet's Argo CD: one monitoring Application per cluster, and members x applications.
            let path = "\(output)/kubeconfigs/\(fleet)/simulated-cluster.json"
            let state = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
            let objects = try #require(state["objects"] as? [String: Any])
            let applications = objects.keys.filter { $0.hasPrefix("Application/argocd/") }
            #expect(applications.filter { $0.hasPrefix("Application/argocd/monitoring-") }.count == 2, "\(applications)")
            #expect(applications.filter { $0.hasSuffix("-\(member)") && !$0.contains("monitoring") }.count == 3)
            #expect(objects["Secret/argocd/cluster-\(member)"] != nil)
            #expect(SecureFile.mode(of: path) == 0o600)

            let validated = try await Shoal.run(["validate", fleet, "-o", output])
            #expect(validated.status == 0, "\(validated.standardOutput)\(validated.standardError)")
            #expect(validated.standardOutput.contains("Fleet \(fleet): 2 clusters"), "\(validated.standardOutput)")
            #expect(validated.standardOutput.contains("\(member)"), "\(validated.standardOutput)")
            #expect(validated.standardOutput.contains("Fleet: score 100/100 (healthy)"), "\(validated.standardOutput)")
            let json = try await Shoal.run(["validate", fleet, "-o", output, "--json"])
            let report = try #require(
                try JSONSerialization.jsonObject(with: Data(json.standardOutput.utf8)) as? [String: Any])
            let clusters = try #require((report["fleet"] as? [String: Any])?["clusters"] as? [[String: Any]])
            #expect(clusters.map { $0["name"] as? String } == [fleet, member])

            // The credentials never reach git: not in the repository, not in its history.
            let kubeconfig = try String(contentsOfFile: "\(output)/kubeconfigs/\(member)/kubeconfig", encoding: .utf8)
            let token = try #require(
                kubeconfig.split(separator: "\n").first { $0.contains("token:") }?.split(separator: " ").last.map(String.init))
            #expect(token.count >= 20)
            let repository = "\(output)/gitops/\(fleet)"
            let history = try await ProcessRunner().run("git", ["-C", repository, "log", "-p", "--all"])
            #expect(history.succeeded && history.standardOutput.contains("fleet-monitoring"))
            #expect(!history.standardOutput.contains(token))
            let grep = try await ProcessRunner().run("grep", ["-r", "-l", token, repository])
            #expect(grep.status == 1, "\(grep.standardOutput)")

            // A broken manifest lowers the member's score and names the file.
            let web = "\(repository)/examples/web/web.yaml"
            try SecureFile.write("kind: [unclosed\n", to: web)
            let commit = try await ProcessRunner().run(
                "git", ["-c", "user.name=t", "-c", "user.email=t@shoal.invalid", "-C", repository, "commit", "-qam", "break"])
            #expect(commit.succeeded)
            _ = try await Shoal.run(["gitops", "push", fleet, "-o", output])
            let broken = try await Shoal.run(["validate", fleet, "-o", output])
            #expect(broken.status == 1)
            #expect(broken.standardOutput.contains("FAIL fleet-applications"), "\(broken.standardOutput)")
            #expect(broken.standardOutput.contains("examples/web/web.yaml"), "\(broken.standardOutput)")
        }
    }
}
