import Crypto
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
    /// How hard a commit waits for the disk (`PRAGMA synchronous`).
    public enum Sync: String, Sendable, CaseIterable {
        /// WAL with `synchronous=NORMAL` (the default): a commit is in the
        /// write-ahead log when it returns, so a crash of the process loses
        /// nothing; the log is synced to disk at checkpoints, so a power
        /// loss or a kernel crash may lose the last commits (never corrupt
        /// the journal).
        case normal
        /// `synchronous=FULL`: every commit is synced to disk before it
        /// returns; nothing committed is lost on power loss, at the cost of
        /// an fsync per loop turn.
        case full
    }

    private let queue: DatabaseQueue
    private let cipher: JournalCipher
    /// Checkpoints the write-ahead log off the writer's thread (`backgroundCheckpoints`), else nil.
    let checkpointer: WALCheckpointer?
    public let path: String
    /// The file holding the key of the sensitive rows.
    public var keyPath: String { cipher.keyPath }
    /// The key file did not exist and was created by this open.
    public let keyCreated: Bool
    /// The journal file was empty (0 bytes) when opened.
    public let wasEmpty: Bool

    /// Opens (creating if needed) the journal at `path` and its key at
    /// `<path>.key`; both files are 0600.
    /// - Throws: `ShoalError(.io)` when the file cannot be created or is not
    ///   a shoal journal, `ShoalError(.forbidden)` when its key file is
    ///   readable by others.
    /// - Parameter backgroundCheckpoints: copy the write-ahead log into the database on a thread of its own
    ///   (the coordinator), so a commit never waits for a checkpoint and its fsyncs; otherwise SQLite checkpoints
    ///   in the commit that fills the log past 1000 pages.
    public init(path: String, sync: Sync = .normal, backgroundCheckpoints: Bool = false) throws {
        self.path = path
        let directory = (path as NSString).deletingLastPathComponent
        try SecureFile.createDirectory(directory.isEmpty ? "." : directory)
        keyCreated = SecureFile.mode(of: path + ".key") == nil
        cipher = try JournalCipher(keyPath: path + ".key")
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw ShoalError(.io, "cannot open journal \(path)", cause: String(cString: strerror(errno)))
        }
        var status = stat()
        wasEmpty = fstat(fd, &status) == 0 && status.st_size == 0
        fchmod(fd, 0o600)
        close(fd)
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(5)
        let pragma = "PRAGMA synchronous = \(sync == .full ? "FULL" : "NORMAL")"
        configuration.prepareDatabase { db in try db.execute(sql: pragma) }
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
            // The steps, attempts and results of a large running workflow stay in the writer's page cache (8 MiB,
            // filled only as pages are used) instead of being read back from the file at each commit.
            try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA cache_size = -8192") }
            try Journal.migrator.migrate(queue)
            try Journal.addDigests(queue, cipher: cipher)
            if backgroundCheckpoints {
                try queue.writeWithoutTransaction { db in
                    try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
                    // A log that grew during a burst is cut back to this when it starts over.
                    try db.execute(sql: "PRAGMA journal_size_limit = \(WALCheckpointer.writerCheckpointBytes)")
                }
                checkpointer = try WALCheckpointer(path: path, configuration: configuration)
            } else {
                checkpointer = nil
            }
        } catch {
            throw ShoalError(.io, "cannot use journal \(path)", cause: "\(error)")
        }
        // SQLite creates the WAL and shared-memory files with the database's mode.
        for suffix in ["-wal", "-shm"] { chmod(path + suffix, 0o600) }
    }

    /// Checks that the key opens the sealed rows, before a coordinator
    /// relies on them: a lost or replaced key would otherwise surface as a
    /// workflow that hangs when a step needs a secret.
    /// - Throws: `ShoalError(.forbidden)` naming the key file when sealed rows
    ///   exist and the key was just created (the old one is missing) or does
    ///   not open them. A key created by this open is removed again then, so
    ///   putting the right one back is enough.
    public func checkKey() throws {
        let sealed = try read { db in
            try Row.fetchOne(
                db, sql: "SELECT workflow, step, name, data FROM artifacts WHERE sensitive = 1 LIMIT 1")
        }
        guard let sealed else { return }
        let row: [String] = [sealed["workflow"], sealed["step"], sealed["name"]]
        if keyCreated {
            unlink(keyPath)
            throw ShoalError(
                .forbidden,
                "the journal key '\(keyPath)' is missing, but \(path) holds sealed rows: restore that file "
                    + "(from the backup of this journal) and start again")
        }
        do {
            _ = try cipher.open(sealed["data"], row: row)
        } catch {
            throw ShoalError(
                .forbidden,
                "the journal key '\(keyPath)' does not open the sealed rows of \(path): it was replaced; "
                    + "restore the key this journal was written with")
        }
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
        // When a workflow finished, for `--retain`; the order of `list`.
        migrator.registerMigration("v2") { db in
            try db.execute(
                sql: """
                    ALTER TABLE workflows ADD COLUMN finishedAt INTEGER;
                    CREATE INDEX workflows_finished ON workflows (finishedAt) WHERE finishedAt IS NOT NULL;
                    CREATE INDEX workflows_order ON workflows (createdAt, id);
                    """)
        }
        // Artifacts are named by digest in step assignments and fetched by it (`fetch`).
        migrator.registerMigration("v3") { db in
            try db.execute(
                sql: """
                    ALTER TABLE artifacts ADD COLUMN digest TEXT;
                    ALTER TABLE artifacts ADD COLUMN size INTEGER;
                    CREATE INDEX artifacts_digest ON artifacts (digest);
                    """)
        }
        // The rows written at every step are kept in their primary key's B-tree (`WITHOUT ROWID`): a row and its
        // key are one page, not a table page plus an index page, so a commit writes about half the pages.
        migrator.registerMigration("v4") { db in
            for table in Journal.clusteredTables {
                try db.execute(
                    sql: """
                        CREATE TABLE \(table.name)_v4 (\(table.columns), PRIMARY KEY (\(table.key))) WITHOUT ROWID;
                        INSERT INTO \(table.name)_v4 SELECT * FROM \(table.name);
                        DROP TABLE \(table.name);
                        ALTER TABLE \(table.name)_v4 RENAME TO \(table.name);
                        """)
            }
        }
        return migrator
    }

    /// The tables that `v4` keeps in their primary key's B-tree, with their columns in the order of `v1`.
    static let clusteredTables: [(name: String, columns: String, key: String)] = [
        (
            "steps",
            "workflow TEXT NOT NULL, name TEXT NOT NULL, position INTEGER NOT NULL, state TEXT NOT NULL, "
                + "snapshot BLOB NOT NULL",
            "workflow, name"
        ),
        (
            "attempts",
            "workflow TEXT NOT NULL, step TEXT NOT NULL, attempt INTEGER NOT NULL, agent TEXT NOT NULL, "
                + "assignedAt INTEGER NOT NULL, ackedAt INTEGER, finishedAt INTEGER, outcome TEXT",
            "workflow, step, attempt"
        ),
        (
            "results",
            "workflow TEXT NOT NULL, step TEXT NOT NULL, attempt INTEGER NOT NULL, result BLOB NOT NULL",
            "workflow, step, attempt"
        ),
    ]

    /// Fills in the digest and size of rows written before v3 (the digest is of the plain bytes).
    private static func addDigests(_ queue: DatabaseQueue, cipher: JournalCipher) throws {
        try queue.write { db in
            let rows = try Row.fetchAll(
                db, sql: "SELECT workflow, step, name, sensitive, data FROM artifacts WHERE digest IS NULL")
            for row in rows {
                let key: [String] = [row["workflow"], row["step"], row["name"]]
                let stored: Data = row["data"]
                let sensitive: Bool = row["sensitive"]
                let data = sensitive ? try cipher.open(stored, row: key) : stored
                try db.execute(
                    sql: "UPDATE artifacts SET digest = ?, size = ? WHERE workflow = ? AND step = ? AND name = ?",
                    arguments: [digest(data), data.count, key[0], key[1], key[2]])
            }
        }
    }

    /// The SHA-256 of an artifact's bytes, 64 lowercase hex digits, as `ArtifactRef.digest` carries it.
    public static func digest(_ data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    /// What a step assignment carries for an artifact: everything but its bytes.
    public static func reference(_ artifact: Artifact) -> ArtifactRef {
        ArtifactRef(
            name: artifact.name, path: artifact.path, mode: artifact.mode, sensitive: artifact.sensitive,
            size: artifact.data.count, digest: digest(artifact.data))
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    private func write<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            defer { checkpointer?.wrote() }
            return try queue.write(body)
        } catch let error as ShoalError {
            throw error
        } catch {
            throw ShoalError(.io, "journal write failed (\(path))", cause: "\(error)")
        }
    }

    /// The transaction of a commit, begun and ended through cached statements (`JournalStatement`): GRDB's
    /// `write` prepares its `BEGIN` and `COMMIT` anew each time, which cost a turn of the coordinator's loop more
    /// than its rows. `IMMEDIATE`: the journal has one writer, and a transaction that means to write takes the
    /// lock at once rather than on its first write.
    private func transaction(_ body: (Database) throws -> Void) throws {
        do {
            defer { checkpointer?.wrote() }
            try queue.writeWithoutTransaction { db in
                try JournalStatement(db, "BEGIN IMMEDIATE").run()
                do {
                    try body(db)
                    try JournalStatement(db, "COMMIT").run()
                } catch {
                    // A failed statement or COMMIT (busy, disk full) leaves the transaction open, unless SQLite
                    // already rolled it back.
                    if db.isInsideTransaction { try? JournalStatement(db, "ROLLBACK").run() }
                    throw error
                }
            }
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

    // MARK: Group commit

    /// Writes every change of a batch in one transaction: the coordinator
    /// calls it once per loop turn, before that turn's messages are sent.
    /// - Throws: `ShoalError(.io)` when the journal cannot be written (disk
    ///   full, locked by another process for longer than 5 s, ...).
    public func commit(_ batch: JournalBatch) throws {
        guard !batch.isEmpty else { return }
        checkpointer?.committed(queue)
        try transaction { db in
            for operation in batch.operations {
                try apply(operation, db: db)
            }
            let stepSQL = """
                INSERT INTO steps (workflow, name, position, state, snapshot) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (workflow, name) DO UPDATE SET state = excluded.state, snapshot = excluded.snapshot
                """
            for row in batch.steps.values {
                var step = try JournalStatement(db, stepSQL)
                step.text(row.workflow)
                step.text(row.name)
                step.integer(row.position)
                step.text(row.state)
                step.blob(row.snapshot)
                try step.run()
            }
            for (id, row) in batch.headers {
                var header = try JournalStatement(
                    db, "UPDATE workflows SET state = ?, snapshot = ?, finishedAt = ? WHERE id = ?")
                header.text(row.state)
                header.blob(row.snapshot)
                header.integer(row.finishedAt)
                header.text(id)
                try header.run()
            }
        }
    }

    /// One operation of a commit, its values bound straight to SQLite (`JournalStatement`): a commit runs several
    /// per step on the coordinator's loop thread.
    private func apply(_ operation: JournalBatch.Operation, db: Database) throws {
        switch operation {
        case .insertWorkflow(let id, let submitID, let state, let createdAt, let snapshot):
            try db.cachedStatement(
                sql: "INSERT INTO workflows (id, submitID, state, createdAt, snapshot) VALUES (?, ?, ?, ?, ?)"
            ).execute(arguments: [id, submitID, state, createdAt, snapshot])
        case .assigned(let key, let agent, let time):
            var statement = try JournalStatement(
                db, "INSERT OR REPLACE INTO attempts (workflow, step, attempt, agent, assignedAt) VALUES (?, ?, ?, ?, ?)")
            statement.text(key.workflow)
            statement.text(key.step)
            statement.integer(key.attempt)
            statement.text(agent)
            statement.integer(time)
            try statement.run()
        case .attemptEnded(let key, let outcome, let time, let ackedAt):
            var statement = try JournalStatement(
                db,
                """
                UPDATE attempts SET ackedAt = COALESCE(ackedAt, ?), finishedAt = ?, outcome = ?
                WHERE workflow = ? AND step = ? AND attempt = ?
                """)
            statement.integer(ackedAt)
            statement.integer(time)
            statement.text(outcome)
            statement.text(key.workflow)
            statement.text(key.step)
            statement.integer(key.attempt)
            try statement.run()
        case .result(let key, let result):
            var stored = result
            stored.output.artifacts = []
            var statement = try JournalStatement(
                db, "INSERT OR REPLACE INTO results (workflow, step, attempt, result) VALUES (?, ?, ?, ?)")
            statement.text(key.workflow)
            statement.text(key.step)
            statement.integer(key.attempt)
            statement.blob(Data(stored.compactJSON))
            try statement.run()
            for artifact in result.output.artifacts {
                let data =
                    artifact.sensitive
                    ? try cipher.seal(artifact.data, row: [key.workflow, key.step, artifact.name]) : artifact.data
                var row = try JournalStatement(
                    db,
                    """
                    INSERT OR REPLACE INTO artifacts (workflow, step, name, path, mode, sensitive, data, digest, size)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                row.text(key.workflow)
                row.text(key.step)
                row.text(artifact.name)
                row.text(artifact.path)
                row.integer(Int64(artifact.mode))
                row.boolean(artifact.sensitive)
                row.blob(data)
                row.text(Journal.digest(artifact.data))
                row.integer(artifact.data.count)
                try row.run()
            }
        case .delete(let id):
            for table in ["steps", "attempts", "results", "artifacts"] {
                try db.cachedStatement(sql: "DELETE FROM \(table) WHERE workflow = ?").execute(arguments: [id])
            }
            try db.cachedStatement(sql: "DELETE FROM workflows WHERE id = ?").execute(arguments: [id])
        }
    }

    // MARK: Workflows and steps

    /// Records a new workflow and its first steps in one transaction.
    public func insert(_ workflow: WorkflowSnapshot, submitID: String?) throws {
        var batch = JournalBatch()
        batch.insert(workflow, submitID: submitID)
        for (position, step) in workflow.steps.enumerated() { batch.save(step, workflow: workflow.id, position: position) }
        try commit(batch)
    }

    /// Saves a workflow's own fields and the given steps in one transaction.
    public func save(_ workflow: WorkflowSnapshot, steps: [StepSnapshot] = []) throws {
        var batch = JournalBatch()
        batch.saveHeader(of: workflow)
        for step in steps {
            let position = workflow.steps.firstIndex { $0.name == step.name } ?? workflow.steps.count
            batch.save(step, workflow: workflow.id, position: position)
        }
        try commit(batch)
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

    /// Every workflow without its steps, oldest first (what `list` shows).
    public func summaries() throws -> [WorkflowSnapshot] {
        try read { db in
            let decoder = JSONDecoder()
            return try Data.fetchAll(db, sql: "SELECT snapshot FROM workflows ORDER BY createdAt, id").map {
                try decoder.decode(WorkflowSnapshot.self, from: $0)
            }
        }
    }

    /// How many workflows the journal holds.
    public func workflowCount() throws -> Int {
        try read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM workflows") ?? 0 }
    }

    /// How many workflows the journal holds in each state: one scan, for the metrics at start and after a prune.
    public func workflowCounts() throws -> [WorkflowSnapshot.State: Int] {
        try read { db in
            var counts: [WorkflowSnapshot.State: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM workflows GROUP BY state") {
                if let state = WorkflowSnapshot.State(rawValue: row["state"]) { counts[state] = row["n"] }
            }
            return counts
        }
    }

    /// Loads one workflow, or nil.
    public func workflow(_ id: String) throws -> WorkflowSnapshot? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT id, snapshot FROM workflows WHERE id = ?", arguments: [id])
                .map { try Journal.load($0, db: db) }
        }
    }

    /// Whether a workflow exists, and one of its steps (nil when it has none of that name).
    public func step(workflow: String, name: String) throws -> (exists: Bool, step: StepSnapshot?) {
        try read { db in
            guard try Int.fetchOne(db, sql: "SELECT 1 FROM workflows WHERE id = ?", arguments: [workflow]) != nil
            else { return (false, nil) }
            let data = try Data.fetchOne(
                db, sql: "SELECT snapshot FROM steps WHERE workflow = ? AND name = ?", arguments: [workflow, name])
            return (true, try data.map { try Journal.decodeStep($0) })
        }
    }

    /// Finished workflows that finished before `time`, oldest first, at most `limit`.
    public func finished(before time: Int64, limit: Int) throws -> [String] {
        try read { db in
            try String.fetchAll(
                db,
                sql: """
                    SELECT id FROM workflows WHERE finishedAt IS NOT NULL AND finishedAt < ? AND state != 'running'
                    ORDER BY finishedAt LIMIT ?
                    """, arguments: [time, limit])
        }
    }

    /// The steps of a workflow that produced artifacts.
    public func stepsWithArtifacts(workflow: String) throws -> Set<String> {
        try read { db in
            Set(try String.fetchAll(db, sql: "SELECT DISTINCT step FROM artifacts WHERE workflow = ?", arguments: [workflow]))
        }
    }

    private static func load(_ row: Row, db: Database) throws -> WorkflowSnapshot {
        let decoder = JSONDecoder()
        var workflow = try decoder.decode(WorkflowSnapshot.self, from: row["snapshot"] as Data)
        let id: String = row["id"]
        workflow.steps = try Data.fetchAll(
            db, sql: "SELECT snapshot FROM steps WHERE workflow = ? ORDER BY position", arguments: [id]
        ).map { try decodeStep($0) }
        return workflow
    }

    /// Decodes a step row; rows written before steps had `params` kept them in `values`.
    private static func decodeStep(_ data: Data) throws -> StepSnapshot {
        try JSONDecoder().decode(StepSnapshot.self, from: data).movingLegacyParams()
    }

    // MARK: Attempts, results, artifacts

    public func recordAssignment(_ key: StepKey, agent: String, at time: Int64) throws {
        var batch = JournalBatch()
        batch.assigned(key, agent: agent, at: time)
        try commit(batch)
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
    public func recordResult(
        _ key: StepKey, _ result: StepResult, workflow: WorkflowSnapshot, step: StepSnapshot, at time: Int64
    ) throws {
        var batch = JournalBatch()
        batch.result(key, result, at: time)
        let position = workflow.steps.firstIndex { $0.name == step.name } ?? workflow.steps.count
        batch.save(step, workflow: workflow.id, position: position)
        batch.saveHeader(of: workflow)
        try commit(batch)
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

    /// References to the artifacts of the given steps (no bytes read), in the order of `steps`.
    public func artifactRefs(workflow: String, steps: [String]) throws -> [(step: String, ref: ArtifactRef)] {
        try read { db in
            var found: [(String, ArtifactRef)] = []
            let statement = try db.cachedStatement(
                sql: """
                    SELECT name, path, mode, sensitive, size, digest FROM artifacts
                    WHERE workflow = ? AND step = ? ORDER BY name
                    """)
            for step in steps {
                for row in try Row.fetchAll(statement, arguments: [workflow, step]) {
                    let ref = ArtifactRef(
                        name: row["name"], path: row["path"], mode: row["mode"], sensitive: row["sensitive"],
                        size: row["size"], digest: row["digest"])
                    found.append((step, ref))
                }
            }
            return found
        }
    }

    /// The bytes of an artifact by digest (through the `artifacts_digest` index), nil when no artifact of
    /// the journal has it.
    public func artifactData(digest: String) throws -> Data? {
        try read { db in
            guard
                let row = try Row.fetchOne(
                    db.cachedStatement(
                        sql: "SELECT workflow, step, name, sensitive, data FROM artifacts WHERE digest = ? LIMIT 1"),
                    arguments: [digest])
            else { return nil }
            let stored: Data = row["data"]
            let sensitive: Bool = row["sensitive"]
            return sensitive ? try cipher.open(stored, row: [row["workflow"], row["step"], row["name"]]) : stored
        }
    }

    /// Artifacts of the given steps, in the order of `steps`.
    public func artifacts(workflow: String, steps: [String]) throws -> [(step: String, artifact: Artifact)] {
        try read { db in
            var found: [(String, Artifact)] = []
            let statement = try db.cachedStatement(
                sql: "SELECT name, path, mode, sensitive, data FROM artifacts WHERE workflow = ? AND step = ? ORDER BY name")
            for step in steps {
                let rows = try Row.fetchAll(statement, arguments: [workflow, step])
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

    /// The highest attempt number of any step (for tests and figures).
    public func highestAttempt(workflow: String) throws -> Int {
        try read { db in
            try Int.fetchOne(db, sql: "SELECT MAX(attempt) FROM attempts WHERE workflow = ?", arguments: [workflow]) ?? 0
        }
    }

    // MARK: Agents

    public func recordAgent(_ hello: Hello, at time: Int64) throws {
        try write { db in
            try db.cachedStatement(
                sql: """
                    INSERT INTO agents (id, role, host, pid, firstSeen, lastSeen) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET role = excluded.role, host = excluded.host, pid = excluded.pid,
                    lastSeen = excluded.lastSeen
                    """
            ).execute(arguments: [hello.agent, hello.role.rawValue, hello.host, hello.pid, time, time])
        }
    }
}

/// The changes of one loop turn, for `Journal.commit`: one row per change
/// (a step's new state, an attempt, a result), a step or workflow changed
/// twice in the turn written once.
public struct JournalBatch: Sendable {
    enum Operation: Sendable {
        case insertWorkflow(id: String, submitID: String?, state: String, createdAt: Int64, snapshot: Data)
        case assigned(StepKey, agent: String, at: Int64)
        case attemptEnded(StepKey, outcome: String, at: Int64, ackedAt: Int64?)
        case result(StepKey, StepResult)
        case delete(String)
    }

    struct StepRow: Sendable {
        var workflow: String
        var name: String
        var position: Int
        var state: String
        var snapshot: Data
    }

    struct HeaderRow: Sendable {
        var state: String
        var snapshot: Data
        var finishedAt: Int64?
    }

    struct StepID: Hashable, Sendable {
        var workflow: String
        var name: String
    }

    private(set) var operations: [Operation] = []
    private(set) var steps: [StepID: StepRow] = [:]
    private(set) var headers: [String: HeaderRow] = [:]

    public init() {}

    public var isEmpty: Bool { operations.isEmpty && steps.isEmpty && headers.isEmpty }

    /// A new workflow (its steps are saved with `save`).
    /// - Parameter request: the workflow's request as JSON when the caller holds it, else encoded here.
    public mutating func insert(_ workflow: WorkflowSnapshot, submitID: String?, request: [UInt8]? = nil) {
        operations.append(
            .insertWorkflow(
                id: workflow.id, submitID: submitID, state: workflow.state.rawValue, createdAt: workflow.createdAt,
                snapshot: JournalBatch.encodeHeader(workflow, request: request)))
    }

    /// A workflow's own fields (its steps are left out of the row).
    public mutating func saveHeader(of workflow: WorkflowSnapshot) {
        headers[workflow.id] = HeaderRow(
            state: workflow.state.rawValue, snapshot: JournalBatch.encodeHeader(workflow),
            finishedAt: workflow.finishedAt)
    }

    /// A step's row from its encoded snapshot.
    mutating func save(encoded: Data, state: StepSnapshot.State, name: String, workflow: String, position: Int) {
        steps[StepID(workflow: workflow, name: name)] = StepRow(
            workflow: workflow, name: name, position: position, state: state.rawValue, snapshot: encoded)
    }

    /// A workflow's row from its encoded header (no steps).
    mutating func saveHeader(id: String, state: WorkflowSnapshot.State, finishedAt: Int64?, snapshot: Data) {
        headers[id] = HeaderRow(state: state.rawValue, snapshot: snapshot, finishedAt: finishedAt)
    }

    public mutating func save(_ step: StepSnapshot, workflow: String, position: Int) {
        let snapshot = Data(step.compactJSON)
        steps[StepID(workflow: workflow, name: step.name)] = StepRow(
            workflow: workflow, name: step.name, position: position, state: step.state.rawValue, snapshot: snapshot)
    }

    public mutating func assigned(_ key: StepKey, agent: String, at time: Int64) {
        operations.append(.assigned(key, agent: agent, at: time))
    }

    /// An attempt that ended without a result: `requeued` (its agent died;
    /// not charged), `timed-out`, `no-ack`.
    /// - Parameter ackedAt: when its agent acknowledged it, if it did. An ack is journaled in the step's row (its
    ///   `running` state and `startedAt`) in its own turn; the attempt's row gets the time with its end, which
    ///   spares every step a statement.
    public mutating func attemptEnded(_ key: StepKey, outcome: String, at time: Int64, ackedAt: Int64? = nil) {
        operations.append(.attemptEnded(key, outcome: outcome, at: time, ackedAt: ackedAt))
    }

    /// A result and its artifacts; the attempt ends with the result's outcome.
    /// - Parameter ackedAt: as for `attemptEnded`; nil for a result that stood for its ack.
    public mutating func result(_ key: StepKey, _ result: StepResult, at time: Int64, ackedAt: Int64? = nil) {
        operations.append(.result(key, result))
        operations.append(.attemptEnded(key, outcome: result.outcome.rawValue, at: time, ackedAt: ackedAt))
    }

    /// Every row of a finished workflow (`--retain`).
    public mutating func delete(workflow id: String) {
        operations.append(.delete(id))
    }

    /// The header row: the workflow without its steps (they have rows of their own), written without copying
    /// them.
    private static func encodeHeader(_ workflow: WorkflowSnapshot, request: [UInt8]? = nil) -> Data {
        guard let request else {
            do {
                return Data(workflow.headerCompactJSON(request: Array(try Journal.encoder.encode(workflow.request))))
            } catch {
                preconditionFailure("a workflow request always encodes: \(error)")
            }
        }
        return Data(workflow.headerCompactJSON(request: request))
    }
}

/// Copies the write-ahead log into the database on a thread of its own, through a connection of its own:
/// a passive checkpoint never blocks the writer, so the coordinator's commits never wait for one (nor for its
/// fsyncs). It runs at most every 50 ms, and only after a commit: an idle coordinator never wakes it. The log starts over only when a commit finds it all copied, which a steady
/// stream of commits (a long chain) rarely allows: once the log passes 16 MiB, the writer finishes the copy
/// itself (what the thread left, a fraction of the log), at most once every 256 commits.
final class WALCheckpointer: @unchecked Sendable {  // `commits` is used by the writer's thread only
    private final class State: @unchecked Sendable {  // guarded by `condition`
        let condition = NSCondition()
        var stopped = false
        /// A commit came since the last pass.
        var dirty = false
        /// The thread waits for a commit (not between two passes), and is to be signalled for one.
        var idle = false
        /// Passes made so far.
        var passes = 0
    }

    private let state = State()
    private let walPath: String
    private var commits = 0
    static let interval: TimeInterval = 0.05
    static let writerCheckpointBytes = 16 << 20

    init(path: String, configuration: Configuration) throws {
        walPath = path + "-wal"
        let connection = try DatabaseQueue(path: path, configuration: configuration)
        let state = state
        let thread = Thread {
            while true {
                // Asleep while nothing is committed (an idle coordinator wakes it never), then at most one pass per
                // interval while commits come.
                let stopped = state.condition.withLock {
                    while !state.stopped && !state.dirty {
                        state.idle = true
                        state.condition.wait()
                        state.idle = false
                    }
                    if !state.stopped { _ = state.condition.wait(until: Date(timeIntervalSinceNow: WALCheckpointer.interval)) }
                    state.dirty = false
                    return state.stopped
                }
                if stopped { break }
                // Busy (the writer's own checkpoint) just means "next time".
                _ = try? connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
                state.condition.withLock { state.passes += 1 }
            }
        }
        thread.name = "shoal-checkpoint"
        thread.start()
    }

    deinit {
        state.condition.withLock {
            state.stopped = true
            state.condition.signal()
        }
    }

    /// The passes made so far, and whether the thread now sleeps until a commit.
    var progress: (passes: Int, waitingForCommit: Bool) {
        state.condition.withLock { (state.passes, state.idle) }
    }

    /// Called after each commit, on the writer's thread: the thread's next pass has something to copy.
    func wrote() {
        state.condition.withLock {
            guard !state.dirty else { return }
            state.dirty = true
            if state.idle { state.condition.signal() }
        }
    }

    /// Called before each commit, on the writer's thread: every 256 commits, a log past 16 MiB is checkpointed
    /// by the writer.
    func committed(_ queue: DatabaseQueue) {
        commits &+= 1
        guard commits % 256 == 0 else { return }
        var status = stat()
        guard stat(walPath, &status) == 0, Int(status.st_size) > WALCheckpointer.writerCheckpointBytes else { return }
        _ = try? queue.writeWithoutTransaction { db in try db.checkpoint(.passive) }
    }
}
