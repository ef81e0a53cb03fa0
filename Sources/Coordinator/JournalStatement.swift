import Foundation
import GRDB
import GRDBSQLite

/// Runs one of the journal's write statements with its values bound straight to SQLite.
///
/// A commit runs a few statements per step on the coordinator's loop thread. GRDB's `execute(arguments:)` boxes
/// every value into `StatementArguments` and reports each statement to its observation machinery, which the journal
/// does not use; together that cost about as much CPU as SQLite's own work on those rows. The commit's writes
/// need neither: they run between a `BEGIN IMMEDIATE` and a `COMMIT` of their own (`Journal.transaction`), on the
/// connection GRDB serializes, and their statements come from GRDB's cache (`Database.cachedStatement`), which
/// owns and finalizes them.
struct JournalStatement {
    private let statement: Statement
    private let handle: OpaquePointer
    private var index: Int32 = 0
    private var failure: Int32 = SQLITE_OK

    /// `sql` from the connection's statement cache, ready to bind from its first parameter.
    init(_ db: Database, _ sql: String) throws {
        statement = try db.cachedStatement(sql: sql)
        handle = statement.sqliteStatement
        sqlite3_reset(handle)
    }

    /// SQLite copies every value at once (`SQLITE_TRANSIENT`): nothing bound needs to outlive the call.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    mutating func text(_ value: String) {
        index += 1
        var value = value
        let code = value.withUTF8 { bytes in
            // An empty buffer may have no address, and a null address would bind NULL instead of ''.
            bytes.isEmpty
                ? sqlite3_bind_text(handle, index, "", 0, JournalStatement.transient)
                : sqlite3_bind_text(handle, index, bytes.baseAddress, Int32(bytes.count), JournalStatement.transient)
        }
        note(code)
    }

    mutating func text(_ value: String?) {
        guard let value else { return null() }
        text(value)
    }

    mutating func blob(_ value: Data) {
        index += 1
        let code = value.withUnsafeBytes { bytes in
            bytes.isEmpty
                ? sqlite3_bind_zeroblob(handle, index, 0)
                : sqlite3_bind_blob(handle, index, bytes.baseAddress, Int32(bytes.count), JournalStatement.transient)
        }
        note(code)
    }

    mutating func integer(_ value: Int64) {
        index += 1
        note(sqlite3_bind_int64(handle, index, value))
    }

    mutating func integer(_ value: Int) { integer(Int64(value)) }

    mutating func integer(_ value: Int64?) {
        guard let value else { return null() }
        integer(value)
    }

    private mutating func null() {
        index += 1
        note(sqlite3_bind_null(handle, index))
    }

    mutating func boolean(_ value: Bool) { integer(value ? 1 : 0) }

    private mutating func note(_ code: Int32) {
        if failure == SQLITE_OK && code != SQLITE_OK { failure = code }
    }

    /// Steps the statement to its end and resets it.
    /// - Throws: `DatabaseError` with SQLite's code and message when a value could not be bound, a parameter is
    ///   left unbound, or the statement fails (a constraint, a full disk); the transaction is then rolled back by
    ///   `Journal.transaction`.
    func run() throws {
        defer {
            sqlite3_reset(handle)
            sqlite3_clear_bindings(handle)
        }
        let database = sqlite3_db_handle(handle)
        guard failure == SQLITE_OK else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: failure), message: String(cString: sqlite3_errstr(failure)),
                sql: statement.sql)
        }
        guard index == sqlite3_bind_parameter_count(handle) else {
            throw DatabaseError(
                resultCode: .SQLITE_RANGE,
                message: "\(index) of \(sqlite3_bind_parameter_count(handle)) parameters bound", sql: statement.sql)
        }
        let code = sqlite3_step(handle)
        guard code == SQLITE_DONE else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(database)),
                sql: statement.sql)
        }
    }
}
