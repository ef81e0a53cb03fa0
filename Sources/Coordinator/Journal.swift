import Foundation
import GRDB
import Protocol
import ShoalSupport

/// The coordinator's durable record (SQLite): workflows, steps, attempts,
/// results, artifacts and agents. Every state change is written here before
/// the coordinator acts on it, so a restarted coordinator can resume.
/// Sensitive artifacts are stored encrypted (`JournalCipher`) with a key
/// kept beside the journal in `<path>.key` (0600).
public struct Journal: Sendable {
    private let queue: DatabaseQueue
    private let cipher: JournalCipher
    public let path: String
    /// The file holding the key of the sensitive rows.
    public var keyPath: String { cipher.keyPath }

    /// Opens (creating if needed) the journal at `path` and its key at
    /// `<path>.key`; both files are 0600.
    /// - Throws: `ShoalError(.io)` when the file cannot be created or is not
    ///   a shoal journal, `ShoalError(.forbidden)` when its key file is
    ///   readable by others.
    public init(path: String) throws {
        self.path = path
        let directory = (path as NSString).deletingLastPathComponent
        try SecureFile.createDirectory(directory.isEmpty ? "." : directory)
        cipher = try JournalCipher(keyPath: path + ".key")
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw ShoalError(.io, "cannot open journal \(path)", cause: String(cString: strerror(errno)))
        }
        fchmod(fd, 0o600)
        close(fd)
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(5)
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
            try Journal.migrator.migrate(queue)
        } catch {
            throw ShoalError(.io, "cannot use journal \(path)", cause: "\(error)")
        }
        // SQLite creates the WAL and shared-memory files with the database's mode.
        for suffix in ["-wal", "-shm"] { chmod(path + suffix, 0o600) }
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE workflows (
                        id TEXT PRIMARY KEY, submitID TEXT UNIQUE, state TEXT NOT NULL,
                        createdAt INTEGER NOT NULL, snapshot BLOB NOT NULL);
                    CREATE TABLE steps (
                        workflow TEXT NOT NULL, name TEXT NOT NULL, position INTEGER NOT NULL,
                        state TEXT NOT NULL, snapshot BLOB NOT NULL, PRIMARY KEY (workflow, name));
                    CREATE TABLE attempts (
                        workflow TEXT NOT NULL, step TEXT NOT NULL, attempt INTEGER NOT NULL,
                        agent TEXT NOT NULL, assignedAt INTEGER NOT NULL, ackedAt INTEGER,
                        finishedAt INTEGER, outcome TEXT, PRIMARY KEY (workflow, step, attempt));
                    CREATE TABLE results (
                        workflow TEXT NOT NULL, step TEXT NOT NULL, attempt INTEGER NOT NULL,
                        result BLOB NOT NULL, PRIMARY KEY (workflow, step, attempt));
                    CREATE TABLE artifacts (
                        workflow TEXT NOT NULL, step TEXT NOT NULL, name TEXT NOT NULL, path TEXT,
                        mode INTEGER NOT NULL, sensitive INTEGER NOT NULL, data BLOB NOT NULL,
                        PRIMARY KEY (workflow, step, name));
                    CREATE TABLE agents (
                        id TEXT PRIMARY KEY, role TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
                        firstSeen INTEGER NOT NULL, lastSeen INTEGER NOT NULL);
                    """)
        }
        return migrator
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    private func write<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try queue.write(body)
        } catch let error as ShoalError {
            throw error
        } catch {
            throw ShoalError(.io, "journal write failed (\(path))", cause: "\(error)")
        }
    }

    private func read<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try queue.read(body)
        } catch let error as ShoalError {
            throw error
        } catch {
            throw ShoalError(.io, "journal read failed (\(path))", cause: "\(error)")
        }
    }

    // MARK: Workflows and steps

    /// Records a new workflow and its first steps in one transaction.
    public func insert(_ workflow: WorkflowSnapshot, submitID: String?) throws {
        try write { db in
            try db.execute(
                sql: "INSERT INTO workflows (id, submitID, state, createdAt, snapshot) VALUES (?, ?, ?, ?, ?)",
                arguments: [workflow.id, submitID, workflow.state.rawValue, workflow.createdAt, try header(workflow)])
            for (position, step) in workflow.steps.enumerated() {
                try Journal.save(step, workflow: workflow.id, position: position, db: db)
            }
        }
    }

    /// Saves a workflow's own fields and the given steps in one transaction.
    public func save(_ workflow: WorkflowSnapshot, steps: [StepSnapshot] = []) throws {
        try write { db in
            try db.execute(
                sql: "UPDATE workflows SET state = ?, snapshot = ? WHERE id = ?",
                arguments: [workflow.state.rawValue, try header(workflow), workflow.id])
            for step in steps {
                let position = workflow.steps.firstIndex { $0.name == step.name } ?? workflow.steps.count
                try Journal.save(step, workflow: workflow.id, position: position, db: db)
            }
        }
    }

    private static func save(_ step: StepSnapshot, workflow: String, position: Int, db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO steps (workflow, name, position, state, snapshot) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (workflow, name) DO UPDATE SET state = excluded.state, snapshot = excluded.snapshot
                """,
            arguments: [workflow, step.name, position, step.state.rawValue, try encoder.encode(step)])
    }

    private func header(_ workflow: WorkflowSnapshot) throws -> Data {
        var copy = workflow
        copy.steps = []
        return try Journal.encoder.encode(copy)
    }

    /// The workflow created for a submit message, so a resent submit creates nothing new.
    public func workflowID(forSubmit submitID: String) throws -> String? {
        try read { db in
            try String.fetchOne(db, sql: "SELECT id FROM workflows WHERE submitID = ?", arguments: [submitID])
        }
    }

    /// Loads workflows with their steps, oldest first.
    /// - Parameter unfinishedOnly: only those still running (for resume).
    public func workflows(unfinishedOnly: Bool = false) throws -> [WorkflowSnapshot] {
        try read { db in
            let sql = "SELECT id, snapshot FROM workflows" + (unfinishedOnly ? " WHERE state = 'running'" : "")
                + " ORDER BY createdAt, id"
            return try Row.fetchAll(db, sql: sql).map { row in try Journal.load(row, db: db) }
        }
    }

    /// Loads one workflow, or nil.
    public func workflow(_ id: String) throws -> WorkflowSnapshot? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT id, snapshot FROM workflows WHERE id = ?", arguments: [id])
                .map { try Journal.load($0, db: db) }
        }
    }

    private static func load(_ row: Row, db: Database) throws -> WorkflowSnapshot {
        let decoder = JSONDecoder()
        var workflow = try decoder.decode(WorkflowSnapshot.self, from: row["snapshot"] as Data)
        let id: String = row["id"]
        workflow.steps = try Data.fetchAll(
            db, sql: "SELECT snapshot FROM steps WHERE workflow = ? ORDER BY position", arguments: [id]
        ).map { try decoder.decode(StepSnapshot.self, from: $0) }
        return workflow
    }

    // MARK: Attempts, results, artifacts

    public func recordAssignment(_ key: StepKey, agent: String, at time: Int64) throws {
        try write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO attempts (workflow, step, attempt, agent, assignedAt) VALUES (?, ?, ?, ?, ?)",
                arguments: [key.workflow, key.step, key.attempt, agent, time])
        }
    }

    public func recordAck(_ key: StepKey, at time: Int64) throws {
        try write { db in
            try db.execute(
                sql: "UPDATE attempts SET ackedAt = COALESCE(ackedAt, ?) WHERE workflow = ? AND step = ? AND attempt = ?",
                arguments: [time, key.workflow, key.step, key.attempt])
        }
    }

    /// The agent an attempt was given to, or nil when it never was.
    public func assignee(of key: StepKey) throws -> String? {
        try read { db in
            try String.fetchOne(
                db, sql: "SELECT agent FROM attempts WHERE workflow = ? AND step = ? AND attempt = ?",
                arguments: [key.workflow, key.step, key.attempt])
        }
    }

    /// Stores a result, its artifacts and the step's new state atomically.
    public func recordResult(_ key: StepKey, _ result: StepResult, workflow: WorkflowSnapshot, step: StepSnapshot, at time: Int64)
        throws
    {
        try write { db in
            var stored = result
            stored.output.artifacts = []
            try db.execute(
                sql: "INSERT OR REPLACE INTO results (workflow, step, attempt, result) VALUES (?, ?, ?, ?)",
                arguments: [key.workflow, key.step, key.attempt, try Journal.encoder.encode(stored)])
            try db.execute(
                sql: "UPDATE attempts SET finishedAt = ?, outcome = ? WHERE workflow = ? AND step = ? AND attempt = ?",
                arguments: [time, result.outcome.rawValue, key.workflow, key.step, key.attempt])
            for artifact in result.output.artifacts {
                let data =
                    artifact.sensitive
                    ? try cipher.seal(artifact.data, row: [key.workflow, key.step, artifact.name]) : artifact.data
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO artifacts (workflow, step, name, path, mode, sensitive, data)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        key.workflow, key.step, artifact.name, artifact.path, artifact.mode, artifact.sensitive, data,
                    ])
            }
            let position = workflow.steps.firstIndex { $0.name == step.name } ?? workflow.steps.count
            try Journal.save(step, workflow: workflow.id, position: position, db: db)
            try db.execute(
                sql: "UPDATE workflows SET state = ?, snapshot = ? WHERE id = ?",
                arguments: [workflow.state.rawValue, try header(workflow), workflow.id])
        }
    }

    /// The stored result of a step's attempt.
    public func result(_ key: StepKey) throws -> StepResult? {
        try read { db in
            try Data.fetchOne(
                db, sql: "SELECT result FROM results WHERE workflow = ? AND step = ? AND attempt = ?",
                arguments: [key.workflow, key.step, key.attempt]
            ).map { try JSONDecoder().decode(StepResult.self, from: $0) }
        }
    }

    /// Artifacts of the given steps, in the order of `steps`.
    public func artifacts(workflow: String, steps: [String]) throws -> [(step: String, artifact: Artifact)] {
        try read { db in
            var found: [(String, Artifact)] = []
            for step in steps {
                let rows = try Row.fetchAll(
                    db, sql: "SELECT name, path, mode, sensitive, data FROM artifacts WHERE workflow = ? AND step = ? ORDER BY name",
                    arguments: [workflow, step])
                for row in rows {
                    let name: String = row["name"]
                    let sensitive: Bool = row["sensitive"]
                    let stored: Data = row["data"]
                    let data = sensitive ? try cipher.open(stored, row: [workflow, step, name]) : stored
                    let artifact = Artifact(
                        name: name, path: row["path"], mode: row["mode"], sensitive: sensitive, data: data)
                    found.append((step, artifact))
                }
            }
            return found
        }
    }

    /// How many attempts of a step were ever recorded (for tests and figures).
    public func attemptCount(workflow: String, step: String) throws -> Int {
        try read { db in
            try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM attempts WHERE workflow = ? AND step = ?", arguments: [workflow, step]) ?? 0
        }
    }

    // MARK: Agents

    public func recordAgent(_ hello: Hello, at time: Int64) throws {
        try write { db in
            try db.execute(
                sql: """
                    INSERT INTO agents (id, role, host, pid, firstSeen, lastSeen) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET role = excluded.role, host = excluded.host, pid = excluded.pid,
                    lastSeen = excluded.lastSeen
                    """,
                arguments: [hello.agent, hello.role.rawValue, hello.host, hello.pid, time, time])
        }
    }
}
