import Foundation
import Testing

@testable import Coordinator
@testable import Protocol

/// A journal written before `v4` (steps, attempts and results as tables with a row id and a key index) keeps
/// every row when it opens, in tables that keep rows in their key's B-tree.
@Suite struct JournalMigrationTests {
    private static let tables = ["steps", "attempts", "results"]

    @Test func aJournalOfTablesWithRowIDsKeepsEveryRowWhenTheyAreRebuilt() throws {
        guard let sqlite = SQLiteShell() else { return }
        let directory = NSTemporaryDirectory() + "shoal-migrate-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/journal.sqlite"
        let key = StepKey(workflow: "k3s-dev-000001", step: "provision", attempt: 1)
        let workflow = WorkflowSnapshot(
            id: key.workflow, state: .succeeded, request: WorkflowRequest(), createdAt: 1, finishedAt: 2,
            steps: [StepSnapshot(name: "provision", role: .infra, needs: [], critical: true)], error: nil, revision: 1)
        let result = StepResult(
            outcome: .succeeded, output: StepOutput(summary: "provisioned"), error: nil, agent: "infra-1",
            host: "h", pid: 1, startedAt: 1, finishedAt: 2)
        do {
            let journal = try Journal(path: path)
            try journal.insert(workflow, submitID: nil)
            try journal.recordAssignment(key, agent: "infra-1", at: 1)
            try journal.recordResult(key, result, workflow: workflow, step: workflow.steps[0], at: 2)
        }
        #expect(try schema(sqlite, path).allSatisfy { $0.contains("WITHOUT ROWID") })

        // Back to the shape of v1-v3, as a journal of an earlier coordinator is.
        var script = ""
        for table in Journal.clusteredTables {
            script += """
                CREATE TABLE \(table.name)_old (\(table.columns), PRIMARY KEY (\(table.key)));
                INSERT INTO \(table.name)_old SELECT * FROM \(table.name);
                DROP TABLE \(table.name);
                ALTER TABLE \(table.name)_old RENAME TO \(table.name);

                """
        }
        script += "DELETE FROM grdb_migrations WHERE identifier = 'v4';"
        try sqlite.run(path, script)
        #expect(try schema(sqlite, path).allSatisfy { !$0.contains("WITHOUT ROWID") }, "the old shape")

        let reopened = try Journal(path: path)
        #expect(try schema(sqlite, path).allSatisfy { $0.contains("WITHOUT ROWID") })
        #expect(try reopened.workflow(key.workflow)?.steps.map(\.name) == ["provision"])
        #expect(try reopened.result(key)?.output.summary == "provisioned")
        #expect(try reopened.attemptCount(workflow: key.workflow, step: key.step) == 1)
    }

    /// The `CREATE TABLE` statements of the three tables.
    private func schema(_ sqlite: SQLiteShell, _ path: String) throws -> [String] {
        let names = Self.tables.map { "'\($0)'" }.joined(separator: ",")
        let text = try sqlite.run(path, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name IN (\(names))")
        let statements = text.split(separator: "\n").map(String.init)
        #expect(statements.count == Self.tables.count)
        return statements
    }
}
