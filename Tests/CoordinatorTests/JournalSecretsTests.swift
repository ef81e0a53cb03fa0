import Foundation
import ShoalSupport
import Testing

@testable import Coordinator
@testable import Protocol

@Suite struct JournalSecretsTests {
    let directory = NSTemporaryDirectory() + "shoal-journal-\(UUID().uuidString)"
    var path: String { directory + "/journal.sqlite" }

    /// Records a result with one sensitive and one plain artifact.
    private func record(_ journal: Journal, secret: String) throws -> StepKey {
        var step = StepSnapshot(name: "provision", role: .infra, needs: [], critical: true)
        step.state = .running
        let workflow = WorkflowSnapshot(
            id: "k3s-dev-00beef", state: .running, request: WorkflowRequest(), createdAt: 1, finishedAt: nil,
            steps: [step], error: nil, revision: 1)
        try journal.insert(workflow, submitID: "submit-1")
        let key = StepKey(workflow: workflow.id, step: "provision", attempt: 1)
        try journal.recordAssignment(key, agent: "infra-1", at: 2)
        let result = StepResult(
            outcome: .succeeded,
            output: StepOutput(
                summary: "done",
                artifacts: [
                    Artifact(name: "k3s-token", path: nil, sensitive: true, text: secret),
                    Artifact(name: "notes", path: "docs/k3s-dev-00beef/notes.md", text: "public notes"),
                ]),
            error: nil, agent: "infra-1", host: "test", pid: 1, startedAt: 2, finishedAt: 3)
        try journal.recordResult(key, result, workflow: workflow, step: step, at: 3)
        return key
    }

    /// Every byte SQLite wrote: the database and its write-ahead log.
    private func rawBytes() -> Data {
        var data = Data()
        for suffix in ["", "-wal"] {
            data.append(FileManager.default.contents(atPath: path + suffix) ?? Data())
        }
        return data
    }

    @Test func sensitiveArtifactsAreSealedOnDiskAndOpenForTheCoordinator() throws {
        let secret = "K10-token-\(UUID().uuidString)"
        let journal = try Journal(path: path)
        let key = try record(journal, secret: secret)
        let raw = rawBytes()
        #expect(raw.range(of: Data(secret.utf8)) == nil, "the token is not in the journal's files in clear")
        #expect(raw.range(of: JournalCipher.magic) != nil, "it is there sealed")
        #expect(raw.range(of: Data("public notes".utf8)) != nil, "plain artifacts stay plain")
        let artifacts = try journal.artifacts(workflow: key.workflow, steps: [key.step])
        #expect(artifacts.first { $0.artifact.name == "k3s-token" }?.artifact.text == secret)
        #expect(SecureFile.mode(of: path) == 0o600)
        #expect(SecureFile.mode(of: journal.keyPath) == 0o600)
        #expect(journal.keyPath == path + ".key")
        // Reopened (a restarted coordinator): the same key opens it.
        let reopened = try Journal(path: path)
        #expect(try reopened.artifacts(workflow: key.workflow, steps: [key.step]).count == 2)
    }

    @Test func aJournalWithAnotherKeyCannotOpenTheSecrets() throws {
        let journal = try Journal(path: path)
        let key = try record(journal, secret: "a-secret-of-some-length")
        try SecureFile.write(Data(repeating: 7, count: 32), to: journal.keyPath, mode: 0o600)
        let other = try Journal(path: path)
        let error = #expect(throws: ShoalError.self) { try other.artifacts(workflow: key.workflow, steps: [key.step]) }
        #expect(error?.code == .forbidden)
    }

    @Test func aJournalKeyReadableByOthersIsRefused() throws {
        let journal = try Journal(path: path)
        chmod(journal.keyPath, 0o644)
        let error = #expect(throws: ShoalError.self) { try Journal(path: path) }
        #expect(error?.code == .forbidden)
        #expect(error?.message.contains("chmod 600") == true)
    }

    @Test func secretsOfAResultAreCutFromItsLogValuesAndSummary() {
        let password = "Zx8cVb7nM6qW5eR4tY3u"
        let kubeconfig = "apiVersion: v1\nusers:\n- name: a\n  user:\n    token: tok-1234567890abcdef\n"
        let result = StepResult(
            outcome: .failed,
            output: StepOutput(
                summary: "set password \(password)",
                values: ["nested": ["list": [.string("token tok-1234567890abcdef")]], "count": 3],
                artifacts: [
                    Artifact(name: "password", path: nil, sensitive: true, text: password + "\n"),
                    Artifact(name: "kubeconfig", path: nil, sensitive: true, text: kubeconfig),
                    Artifact(name: "plain", path: nil, text: "not-a-secret-at-all"),
                ],
                log: ["echo \(password)", "fine", "not-a-secret-at-all"]),
            error: "failed with \(password)", agent: "a", host: "h", pid: 1, startedAt: 0, finishedAt: 0)
        let (clean, count) = Redaction.redact(result)
        #expect(count == 4)
        #expect(clean.output.summary == "set password [redacted]")
        #expect(clean.output.log == ["echo [redacted]", "fine", "not-a-secret-at-all"])
        #expect(clean.output.values["nested"] == ["list": [.string("token [redacted]")]])
        #expect(clean.output.values["count"] == 3)
        #expect(clean.error == "failed with [redacted]")
        #expect(clean.output.artifacts == result.output.artifacts, "the artifacts themselves are untouched")
    }
}
