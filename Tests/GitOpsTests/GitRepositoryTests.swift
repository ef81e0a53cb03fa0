import Foundation
import ShoalSupport
import Testing

@testable import GitOps

@Suite struct GitRepositoryTests {
    /// A repository in a fresh HOME with no git configuration at all.
    func withRepository(_ body: (GitRepository, String) async throws -> Void) async throws {
        guard Tools.available("git", install: "apt-get install -y git") else { return }
        let home = try makeTemporaryDirectory()
        defer { removeDirectory(home) }
        let repository = GitRepository(path: "\(home)/gitops/wf-1", runner: isolatedRunner(home: home))
        try await body(repository, home)
    }

    @Test func initializesOnMainAndCommitsWithoutAnyGitConfiguration() async throws {
        try await withRepository { repository, _ in
            #expect(try await repository.head() == nil)
            try await repository.initialize()
            #expect(repository.exists)
            #expect(try await repository.head() == nil)
            try repository.write(MonitoringStack.render(MonitoringStackSpec(instance: "lab")))
            let first = try await repository.commitAll(message: "Monitoring stack")
            #expect(first.created)
            #expect(first.sha.count == 40)
            #expect(try await repository.head() == first.sha)
            let branch = try await repository.git(["symbolic-ref", "--short", "HEAD"]).standardOutput
            #expect(branch.trimmingCharacters(in: .whitespacesAndNewlines) == "main")
            let author = try await repository.git(["log", "-1", "--format=%an <%ae>"]).standardOutput
            #expect(author.trimmingCharacters(in: .whitespacesAndNewlines) == "shoal <shoal@localhost>")
        }
    }

    @Test func committingTwiceWithoutChangeMakesNoCommitAndKeepsHistory() async throws {
        try await withRepository { repository, _ in
            try await repository.initialize()
            try repository.write(MonitoringStack.render(MonitoringStackSpec(instance: "lab")))
            let first = try await repository.commitAll(message: "first")
            // The same content again, as a second run of the same workflow writes it.
            try await repository.initialize()
            try repository.write(MonitoringStack.render(MonitoringStackSpec(instance: "lab")))
            let again = try await repository.commitAll(message: "second")
            #expect(again == CommitOutcome(sha: first.sha, created: false))
            // A change makes a new commit on top of the first one.
            try repository.write(MonitoringStack.render(MonitoringStackSpec(instance: "lab2")))
            let changed = try await repository.commitAll(message: "third")
            #expect(changed.created && changed.sha != first.sha)
            let log = try await repository.git(["rev-list", "HEAD"]).standardOutput.split(separator: "\n")
            #expect(log == [Substring(changed.sha), Substring(first.sha)])
        }
    }

    @Test func filesAtACommitAreWhatWasCommittedThenNotWhatIsOnDiskNow() async throws {
        try await withRepository { repository, _ in
            try await repository.initialize()
            let files = MonitoringStack.render(MonitoringStackSpec(instance: "lab"))
            try repository.write(files + [ManifestFile(path: "apps/nested/a b.yaml", contents: "é: 1\n")])
            let first = try await repository.commitAll(message: "first")
            try repository.write([ManifestFile(path: "apps/nested/a b.yaml", contents: "changed\n")])
            _ = try await repository.commitAll(message: "second")
            let read = try await repository.files(at: first.sha)
            #expect(read.map(\.path) == (files.map(\.path) + ["apps/nested/a b.yaml"]).sorted())
            #expect(read.first { $0.path == "apps/nested/a b.yaml" }?.contents == "é: 1\n")
            for file in files { #expect(read.first { $0.path == file.path }?.contents == file.contents) }
            await #expect(throws: ShoalError.self) { try await repository.files(at: "--output=x") }
            await #expect(throws: ShoalError.self) { try await repository.files(at: String(repeating: "0", count: 40)) }
        }
    }

    @Test func anEmptyRepositoryWithNothingToCommitIsAnError() async throws {
        try await withRepository { repository, _ in
            try await repository.initialize()
            await #expect(throws: ShoalError.self) { try await repository.commitAll(message: "nothing") }
        }
    }

    @Test func writeRefusesPathsOutsideTheRepository() async throws {
        try await withRepository { repository, home in
            try await repository.initialize()
            for bad in [
                "/etc/passwd", "../escape.yaml", "monitoring/../../x.yaml", "", "a//b", "./a", ".git/config", "a\\b",
            ] {
                #expect(throws: ShoalError.self, "\(bad)") {
                    try repository.write([ManifestFile(path: bad, contents: "x")])
                }
            }
            #expect(!FileManager.default.fileExists(atPath: "\(home)/gitops/escape.yaml"))
            // Nothing is written when one path of the batch is bad.
            #expect(throws: ShoalError.self) {
                try repository.write([
                    ManifestFile(path: "ok.yaml", contents: "x"), ManifestFile(path: "../x", contents: ""),
                ])
            }
            #expect(!FileManager.default.fileExists(atPath: "\(repository.path)/ok.yaml"))
        }
    }

    @Test func aComponentNoLongerRenderedLeavesTheRepository() async throws {
        try await withRepository { repository, _ in
            try await repository.initialize()
            try repository.write(
                MonitoringStack.render(MonitoringStackSpec(instance: "lab")), removingOthersIn: ["monitoring"])
            _ = try await repository.commitAll(message: "with headlamp")
            let without = MonitoringStack.render(MonitoringStackSpec(instance: "lab", headlamp: false))
            try repository.write(without, removingOthersIn: ["monitoring"])
            let outcome = try await repository.commitAll(message: "without headlamp")
            #expect(outcome.created)
            let tracked = try await repository.git(["ls-files"]).standardOutput.split(separator: "\n").map(String.init)
            #expect(tracked == without.map(\.path))
        }
    }

    @Test func noSecretOrPasswordIsEverCommitted() async throws {
        try await withRepository { repository, _ in
            try await repository.initialize()
            let password = "Zq8-unique-grafana-password-41"
            let spec = MonitoringStackSpec(instance: "lab")
            // The Secret is produced for the cluster, next to the files for the repository, but never among them.
            let secret = MonitoringStack.grafanaAdminSecret(spec, password: password)
            #expect(secret.contains(password))
            let (files, _) = gitOpsFiles()
            try repository.write(files)
            _ = try await repository.commitAll(message: "one")
            try repository.write(
                MonitoringStack.render(MonitoringStackSpec(instance: "lab", headlamp: false)),
                removingOthersIn: ["monitoring"])
            _ = try await repository.commitAll(message: "two")
            let history = try await repository.git(["log", "-p", "--all", "--format=%H %s"]).standardOutput
            #expect(!history.contains(password))
            #expect(!history.contains("kind: Secret"))
            #expect(!history.contains("stringData"))
            for file in try await repository.git(["ls-files"]).standardOutput.split(separator: "\n") {
                let text = try String(contentsOfFile: "\(repository.path)/\(file)", encoding: .utf8)
                for doc in try yamlDocuments(text) { #expect(kind(doc) != "Secret", "\(file)") }
            }
        }
    }

    @Test func pushesToARemoteTheUserOwns() async throws {
        try await withRepository { repository, home in
            let remote = "\(home)/remote.git"
            _ = try await isolatedRunner(home: home).run("git", ["init", "-q", "--bare", remote])
            try await repository.initialize()
            try repository.write(gitOpsFiles().files)
            let outcome = try await repository.commitAll(message: "Monitoring stack")
            try await repository.push(to: remote)
            let remoteHead = try await isolatedRunner(home: home).run(
                "git", ["--git-dir", remote, "rev-parse", "main"])
            #expect(remoteHead.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == outcome.sha)
            await #expect(throws: ShoalError.self) { try await repository.push(to: "--upload-pack=evil") }
            await #expect(throws: ShoalError.self) { try await repository.push(to: "\(home)/missing.git") }
        }
    }
}
