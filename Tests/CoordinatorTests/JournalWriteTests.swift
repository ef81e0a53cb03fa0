import Foundation
import GRDB
import Testing

@testable import Coordinator
@testable import Protocol

/// A commit's rows, bound straight to SQLite (`JournalStatement`), read back as they were written; a statement
/// that fails takes the whole turn's transaction with it.
@Suite struct JournalWriteTests {
    private static let workflowID = "k3s-dev-0000aa"

    private static func workflow() -> WorkflowSnapshot {
        WorkflowSnapshot(
            id: workflowID, state: .running, request: WorkflowRequest(), createdAt: 1, finishedAt: nil,
            steps: [
                StepSnapshot(name: "provision", role: .infra, needs: [], critical: true),
                StepSnapshot(name: "docs", role: .docs, needs: ["provision"], critical: false),
            ],
            error: nil, revision: 1)
    }

    private static func result(_ summary: String, artifacts: [Artifact] = []) -> StepResult {
        StepResult(
            outcome: .succeeded, output: StepOutput(summary: summary, artifacts: artifacts), error: nil,
            agent: "infra-1", host: "h", pid: 1, startedAt: 1, finishedAt: 2)
    }

    @Test func attemptsResultsAndArtifactsReadBackAsWritten() throws {
        guard let sqlite = SQLiteShell() else { return }
        let directory = NSTemporaryDirectory() + "shoal-journal-write-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/journal.sqlite"
        let journal = try Journal(path: path)
        try journal.insert(Self.workflow(), submitID: "submit-1")
        let provision = StepKey(workflow: Self.workflowID, step: "provision", attempt: 1)
        let docs = StepKey(workflow: Self.workflowID, step: "docs", attempt: 2)

        var batch = JournalBatch()
        batch.assigned(provision, agent: "infra-1", at: 10)
        batch.assigned(docs, agent: "docs-1", at: 11)
        try journal.commit(batch)

        // Acknowledged at 12, then its result; and a result that stood for its ack. Artifacts with no bytes, no
        // path, a sensitive one, and a name with characters beyond ASCII.
        let artifacts = [
            Artifact(name: "empty", path: nil, data: Data()),
            Artifact(name: "kubeconfig", path: "kubeconfigs/\(Self.workflowID)/kubeconfig", sensitive: true, text: "k"),
            Artifact(name: "notes-ü", path: "docs/\(Self.workflowID)/notes.md", mode: 0o640, text: "# ü\n"),
        ]
        batch = JournalBatch()
        batch.result(provision, Self.result("provisioned", artifacts: artifacts), at: 20, ackedAt: 12)
        batch.result(docs, Self.result("written"), at: 21)
        var step = Self.workflow().steps[0]
        step.state = .succeeded
        step.summary = "provisioned"
        batch.save(step, workflow: Self.workflowID, position: 0)
        try journal.commit(batch)

        let attempts = try sqlite.run(
            path,
            "SELECT step, attempt, agent, assignedAt, quote(ackedAt), finishedAt, outcome FROM attempts ORDER BY step")
        #expect(attempts == "docs|2|docs-1|11|NULL|21|succeeded\nprovision|1|infra-1|10|12|20|succeeded\n")
        #expect(try journal.result(provision)?.output.summary == "provisioned")
        #expect(try journal.result(docs)?.output.summary == "written")
        #expect(try journal.workflow(Self.workflowID)?.steps.map(\.state) == [.succeeded, .pending])
        #expect(try journal.workflowID(forSubmit: "submit-1") == Self.workflowID)

        let stored = try journal.artifacts(workflow: Self.workflowID, steps: ["provision"]).map(\.artifact)
        #expect(stored == artifacts.sorted { $0.name < $1.name })
        #expect(try sqlite.run(path, "SELECT typeof(data) FROM artifacts WHERE name = 'empty'") == "blob\n")
        #expect(try journal.artifactData(digest: Journal.digest(Data())) == Data())
        // The sealed one is not stored as it came.
        #expect(try sqlite.run(path, "SELECT data = X'6b' FROM artifacts WHERE name = 'kubeconfig'") == "0\n")
    }

    @Test func aStatementThatFailsLeavesNothingOfItsTurn() throws {
        guard let sqlite = SQLiteShell() else { return }
        let directory = NSTemporaryDirectory() + "shoal-journal-write-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/journal.sqlite"
        let key = StepKey(workflow: Self.workflowID, step: "provision", attempt: 1)
        do {
            let journal = try Journal(path: path)
            try journal.insert(Self.workflow(), submitID: nil)
            try journal.recordAssignment(key, agent: "infra-1", at: 10)
        }
        // The results table refuses every row, as a full disk would refuse the turn's writes.
        try sqlite.run(path, "CREATE TRIGGER refuse BEFORE INSERT ON results BEGIN SELECT RAISE(ABORT, 'refused'); END;")
        let journal = try Journal(path: path)

        var batch = JournalBatch()
        batch.result(key, Self.result("provisioned"), at: 20, ackedAt: 12)
        var step = Self.workflow().steps[0]
        step.state = .succeeded
        batch.save(step, workflow: Self.workflowID, position: 0)
        #expect {
            try journal.commit(batch)
        } throws: { error in
            "\(error)".contains("refused")
        }
        #expect(try journal.result(key) == nil)
        #expect(try journal.workflow(Self.workflowID)?.steps.first?.state == .pending)
        #expect(try sqlite.run(path, "SELECT quote(ackedAt), quote(finishedAt) FROM attempts") == "NULL|NULL\n")

        // The statements are usable again: the next turn commits.
        try sqlite.run(path, "DROP TRIGGER refuse;")
        try journal.commit(batch)
        #expect(try journal.result(key)?.output.summary == "provisioned")
        #expect(try sqlite.run(path, "SELECT ackedAt, finishedAt, outcome FROM attempts") == "12|20|succeeded\n")
    }

    /// A statement with a parameter left unbound, or bound past its last one, is refused before it runs (SQLite
    /// would take a missing value as NULL); its bindings are cleared, so the next use starts from the first.
    @Test func aStatementWithTheWrongNumberOfValuesIsRefusedAndUsableAgain() throws {
        let queue = try DatabaseQueue()
        let insert = "INSERT INTO t (a, b, c) VALUES (?, ?, ?)"
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE t (a TEXT NOT NULL, b BLOB, c INTEGER)")
            var short = try JournalStatement(db, insert)
            short.text("only a")
            short.blob(Data([1]))
            #expect {
                try short.run()
            } throws: { error in
                (error as? DatabaseError)?.resultCode == .SQLITE_RANGE && "\(error)".contains("2 of 3 parameters bound")
            }
            var long = try JournalStatement(db, insert)
            long.text("a")
            long.blob(Data())
            long.integer(3)
            long.integer(4)
            #expect(throws: DatabaseError.self) { try long.run() }
            #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t") == 0)

            // Empty text and an empty blob are values, not NULL; a nil integer is NULL.
            var right = try JournalStatement(db, insert)
            right.text("")
            right.blob(Data())
            right.integer(nil as Int64?)
            try right.run()
            let row = try #require(try Row.fetchOne(db, sql: "SELECT quote(a), quote(b), quote(c) FROM t"))
            #expect(row[0] as String == "''" && row[1] as String == "X''" && row[2] as String == "NULL")
        }
    }
}
