import CCrewShims
public import CrewQueue
import FoundationEssentials
import GRDB
import GRDBSQLite
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

extension SQLiteBroker {
    /// Stores the jobs in one transaction, all or none.
    public func enqueue(_ jobs: [NewJob]) async throws {
        // The primary key refuses an id taken twice (SQLITE_CONSTRAINT: duplicateJob, and the transaction rolls back).
        try JobRules.validate(jobs, duplicates: false)
        let now = clock()
        try await write { db in
            // Many rows per statement: binding and stepping once per 256 jobs, not once per job.
            var start = 0
            while start < jobs.count {
                let rows = jobs[start..<min(start + 256, jobs.count)]
                start += rows.count
                let statement = try db.cachedStatement(sql: Self.insertSQL(rows: rows.count))
                // Bound straight through SQLite's C API: 11 values a row, 256 rows a statement, none boxed.
                let handle = statement.sqliteStatement
                sqlite3_reset(handle)
                var index: Int32 = 0
                func bind(_ text: String) {
                    index += 1
                    var text = text
                    text.withUTF8 { bytes in
                        bytes.withMemoryRebound(to: CChar.self) { chars in
                            // An empty text still needs a non-null pointer (null binds NULL).
                            _ = sqlite3_bind_text(
                                handle, index, chars.baseAddress ?? Self.empty, Int32(chars.count), Self.transient)
                        }
                    }
                }
                func bind(_ number: Double?) {
                    index += 1
                    if let number {
                        sqlite3_bind_double(handle, index, number)
                    } else {
                        sqlite3_bind_null(handle, index)
                    }
                }
                func bind(_ number: Int) {
                    index += 1
                    sqlite3_bind_int64(handle, index, Int64(number))
                }
                let created = now.timeIntervalSince1970
                for job in rows {
                    let state: JobState = (job.runAt.map { $0 > now } ?? false) ? .scheduled : .available
                    bind(job.id.rawValue)
                    bind(job.name)
                    bind(job.arguments)
                    bind(job.queue)
                    bind(job.priority)
                    bind(state.rawValue)
                    bind(job.maxAttempts)
                    bind((job.runAt ?? now).timeIntervalSince1970)
                    bind(job.expiresAt?.timeIntervalSince1970)
                    bind(created)
                    bind(job.resultTTL.map { JobRules.seconds($0) })
                }
                let code = sqlite3_step(handle)
                let extended = sqlite3_extended_errcode(db.sqliteConnection)
                let message = String(cString: sqlite3_errmsg(db.sqliteConnection))
                sqlite3_reset(handle)
                sqlite3_clear_bindings(handle)
                guard code == SQLITE_DONE else {
                    throw DatabaseError(
                        resultCode: ResultCode(rawValue: extended), message: message, sql: statement.sql)
                }
            }
        }
        wake.signal(.jobs)
    }

    /// SQLite's `SQLITE_TRANSIENT`: it copies a bound text before the call returns.
    static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    /// A pointer to an empty C string, for binding an empty text.
    nonisolated(unsafe) private static let empty: UnsafePointer<CChar> = {
        let byte = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        byte.initialize(to: 0)
        return UnsafePointer(byte)
    }()

    /// An insert of `rows` jobs.
    static func insertSQL(rows: Int) -> String {
        let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        return """
            INSERT INTO crew_jobs (id, name, arguments, queue, priority, state, max_attempts, run_at, expires_at, created_at, result_ttl)
            VALUES \(Array(repeating: row, count: rows).joined(separator: ", "))
            """
    }
}
