import CCrewShims
public import CrewQueue
public import FoundationEssentials
import GRDB
import GRDBSQLite
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The embedded broker: one SQLite file in WAL mode (`sqlite:///path/to/crew.db`), through GRDB.
///
/// Claiming is one short `BEGIN IMMEDIATE` transaction, so several worker processes can share the file. The
/// file (and the WAL beside it) is created owner-only (0600). Times are stored as Unix seconds; arguments,
/// results and errors as JSON text, readable with the `sqlite3` tool.
public final class SQLiteBroker: QueueBroker {
    /// The schema version this code writes and reads.
    public static let schemaVersion = 2

    private let pool: DatabasePool
    /// Writes of this process under way (see ``write(_:)``).
    private let writes = Atomic<Int>(0)
    private let wake: WakeFile
    private let clock: @Sendable () -> Date
    /// The database file.
    public let path: String

    /// Opens (creating if needed) the broker database at `path`.
    ///
    /// - Parameters:
    ///   - path: The database file.
    ///   - busyTimeout: How long a statement waits for another program's lock before it fails with `storage`.
    ///   - maxPages: A quota: the most pages the database may grow to (SQLite's `max_page_count`); a write that
    ///     would pass it fails with `storage`, as on a full disk. No quota when nil.
    ///   - readOnly: Opens an existing database for reading only (to inspect it): every write fails with
    ///     `storage`, as it does on a file this process may not write.
    ///   - clock: Tells the broker the time (tests move it).
    /// - Throws: ``BrokerError`` `incompatibleSchema` if the file is not a Crew database or comes from a newer
    ///   Crew; `storage` if it cannot be opened (a directory, no permission, locked, not SQLite).
    public init(
        path: String,
        busyTimeout: Duration = .seconds(10),
        maxPages: Int? = nil,
        readOnly: Bool = false,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        self.path = path
        self.clock = clock
        self.wake = WakeFile(databasePath: path)
        if !readOnly {
            // Owner-only from the start: SQLite gives the WAL and shared-memory files the database file's mode.
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            if fd >= 0 { close(fd) }
        }
        var configuration = Configuration()
        configuration.readonly = readOnly
        // SQLite's own busy timeout, except on a thread that tries a write without waiting (see write(_:)).
        let timeout = JobRules.seconds(busyTimeout)
        configuration.busyMode = .callback { tries in
            if crew_thread_flag() != 0 { return false }
            return Self.waitBusy(tries: tries, timeout: timeout)
        }
        configuration.label = "crew"
        configuration.prepareDatabase { db in
            // WAL with synchronous=NORMAL: a process that dies (the chaos test kills workers at random) loses no
            // committed job; a power cut may lose the last commits, never corrupt the file. (FULL would add an
            // fsync to every claim and result.)
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            if let maxPages { try db.execute(sql: "PRAGMA max_page_count = \(maxPages)") }
        }
        do {
            pool = try Self.openPool(path: path, configuration: configuration, readOnly: readOnly, timeout: timeout)
        } catch let error as BrokerError {
            throw error
        } catch let error as DatabaseError {
            throw Self.brokerError(error, path: path)
        } catch {
            throw BrokerError(.storage, "cannot open \(path): \(error)")
        }
    }

    /// Opens the file and migrates (or checks) its schema. Two programs that open a new file together race to set
    /// it up: switching it to WAL and GRDB's first write there run in transactions SQLite fails with `SQLITE_BUSY`
    /// at once rather than wait, so the whole opening is tried again, for up to `timeout` seconds.
    private static func openPool(
        path: String,
        configuration: Configuration,
        readOnly: Bool,
        timeout: Double
    ) throws -> DatabasePool {
        var tries = 0
        while true {
            do {
                let pool = try DatabasePool(path: path, configuration: configuration)
                if readOnly {
                    try pool.read { db in try Self.checkSchema(db) }
                } else {
                    try pool.write { db in try Self.migrate(db) }
                }
                return pool
            } catch let error as DatabaseError
                where [.SQLITE_BUSY, .SQLITE_LOCKED].contains(error.resultCode)
                && waitBusy(tries: tries, timeout: timeout)
            {
                tries += 1
            }
        }
    }

    private static func brokerError(_ error: DatabaseError, path: String) -> BrokerError {
        switch error.resultCode {
        case .SQLITE_NOTADB: BrokerError(.incompatibleSchema, "\(path) is not an SQLite database")
        case .SQLITE_FULL: BrokerError(.storage, "the disk is full: nothing was written (\(path))")
        case .SQLITE_READONLY: BrokerError(.storage, "\(path) is read-only")
        case .SQLITE_BUSY, .SQLITE_LOCKED: BrokerError(.storage, "\(path) is locked by another program")
        case .SQLITE_CONSTRAINT: BrokerError(.duplicateJob, "a job with that id already exists")
        default: BrokerError(.storage, "\(path): \(error.message ?? "\(error)")")
        }
    }

    /// Creates the schema, or checks that the file's is one this code knows and brings it up to date.
    private static func migrate(_ db: Database) throws {
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
        var version = 0
        if tables.contains("crew_schema") {
            version = try Int.fetchOne(db, sql: "SELECT version FROM crew_schema") ?? 0
            guard version <= schemaVersion else {
                throw BrokerError(
                    .incompatibleSchema,
                    "the database has schema version \(version), newer than this Crew's \(schemaVersion): upgrade Crew"
                )
            }
        } else if !tables.isEmpty {
            throw BrokerError(
                .incompatibleSchema,
                "the database has tables of its own (\(tables.sorted().joined(separator: ", "))) and no Crew schema: not a Crew database"
            )
        }
        // Each step takes the schema from version i to i + 1, all in the open transaction.
        for step in migrations.dropFirst(version) { try db.execute(sql: step) }
        if version < schemaVersion {
            try db.execute(sql: "UPDATE crew_schema SET version = ?", arguments: [schemaVersion])
        }
    }

    /// Checks, without writing, that the file holds a schema this code reads (a read-only broker's check).
    private static func checkSchema(_ db: Database) throws {
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
        guard tables.contains("crew_schema") else {
            throw BrokerError(
                .incompatibleSchema,
                "no Crew schema in the database (tables: \(tables.sorted().joined(separator: ", ")))")
        }
        let version = try Int.fetchOne(db, sql: "SELECT version FROM crew_schema") ?? 0
        guard version == schemaVersion else {
            throw BrokerError(
                .incompatibleSchema,
                "the database has schema version \(version) and this Crew reads \(schemaVersion)"
                    + (version < schemaVersion ? ": open it once for writing to migrate it" : ": upgrade Crew")
            )
        }
    }

    /// The schema's history: step i brings version i to i + 1.
    static let migrations = [
        // 1: the jobs and the periodic schedules.
        """
        CREATE TABLE crew_schema (version INTEGER NOT NULL);
        INSERT INTO crew_schema (version) VALUES (1);
        CREATE TABLE crew_jobs (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            arguments TEXT NOT NULL,
            queue TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL CHECK (state IN
                ('scheduled', 'available', 'running', 'succeeded', 'retrying', 'failed', 'cancelled', 'expired')),
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL DEFAULT 1,
            run_at REAL NOT NULL,
            expires_at REAL,
            lease_until REAL,
            worker TEXT,
            result TEXT,
            errors TEXT NOT NULL DEFAULT '[]',
            created_at REAL NOT NULL,
            finished_at REAL,
            result_ttl REAL
        );
        CREATE TABLE crew_schedules (name TEXT PRIMARY KEY, next_run REAL NOT NULL);
        CREATE INDEX crew_jobs_claim ON crew_jobs (state, queue, priority DESC, run_at);
        CREATE INDEX crew_jobs_lease ON crew_jobs (state, lease_until);
        CREATE INDEX crew_jobs_expiry ON crew_jobs (expires_at) WHERE expires_at IS NOT NULL;
        CREATE INDEX crew_jobs_due ON crew_jobs (state, run_at);
        """,
        // 2: partial indexes, each holding only the jobs its statement looks for (available jobs for a claim,
        // waiting ones for their time, running ones for their lease, ended ones with a TTL): a claim no longer
        // reads past ended jobs, and an enqueue writes two indexes instead of four.
        """
        DROP INDEX crew_jobs_claim;
        DROP INDEX crew_jobs_lease;
        DROP INDEX crew_jobs_expiry;
        DROP INDEX crew_jobs_due;
        CREATE INDEX crew_jobs_available ON crew_jobs (queue, priority DESC, run_at) WHERE state = 'available';
        CREATE INDEX crew_jobs_waiting ON crew_jobs (run_at) WHERE state IN ('scheduled', 'retrying');
        CREATE INDEX crew_jobs_leases ON crew_jobs (lease_until) WHERE state = 'running';
        CREATE INDEX crew_jobs_waiting_expiry ON crew_jobs (expires_at)
            WHERE expires_at IS NOT NULL AND state IN ('scheduled', 'available', 'retrying');
        CREATE INDEX crew_jobs_ttl ON crew_jobs (finished_at + result_ttl)
            WHERE result_ttl IS NOT NULL AND finished_at IS NOT NULL;
        """,
    ]

    // MARK: Running statements

    /// Waits before another try at a lock held by another connection, as SQLite's busy timeout does; false once
    /// `timeout` seconds have passed.
    private static func waitBusy(tries: Int, timeout: Double) -> Bool {
        let delays: [Double] = [0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.025, 0.025, 0.05, 0.05, 0.1]
        let waited =
            tries < delays.count
            ? delays.prefix(tries).reduce(0, +)
            : delays.reduce(0, +) + Double(tries - delays.count) * 0.1
        guard waited < timeout else { return false }
        let delay = min(delays[min(tries, delays.count - 1)], timeout - waited)
        usleep(useconds_t(delay * 1_000_000))
        return true
    }

    /// Runs `body` in a `BEGIN IMMEDIATE` transaction.
    ///
    /// When no other write of this process is under way, it first tries on the calling thread, giving up at once
    /// if another process holds the file's write lock: a short write then costs no thread switch. Otherwise (or
    /// if the lock was taken) it runs on GRDB's writer queue, waiting up to the busy timeout.
    private func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            // Alone: no other write of this process to wait behind on the writer queue.
            let alone = writes.wrappingAdd(1, ordering: .acquiringAndReleasing).oldValue == 0
            defer { writes.wrappingSubtract(1, ordering: .acquiringAndReleasing) }
            if alone, let value = try writeOnThisThread(body) { return value }
            return try await pool.writeWithoutTransaction { db in
                var value: T?
                try db.inTransaction(.immediate) {
                    value = try body(db)
                    return .commit
                }
                return value!
            }
        } catch let error as BrokerError {
            throw error
        } catch let error as DatabaseError {
            throw Self.brokerError(error, path: path)
        }
    }

    /// The write on this thread; nil if it met another process's lock anywhere (it was rolled back then; nothing
    /// was written). The busy handler gives up at once on this thread, so a caller's thread never sleeps on a lock.
    private func writeOnThisThread<T>(_ body: (Database) throws -> T) throws -> T? {
        try pool.writeWithoutTransaction { db -> T? in
            crew_set_thread_flag(1)
            defer { crew_set_thread_flag(0) }
            do {
                try db.beginTransaction(.immediate)
            } catch let error as DatabaseError where Self.isBusy(error) {
                return nil
            }
            do {
                let value = try body(db)
                try db.commit()
                return value
            } catch let error as DatabaseError where Self.isBusy(error) {
                if db.isInsideTransaction { try? db.rollback() }
                return nil
            } catch {
                if db.isInsideTransaction { try? db.rollback() }
                throw error
            }
        }
    }

    private static func isBusy(_ error: DatabaseError) -> Bool {
        error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED
    }

    /// Runs a read. First on the calling thread (in WAL mode a read does not wait for a writer, and is shorter than
    /// the two thread switches an asynchronous read costs); if it meets a lock anyway (another process recovering
    /// the WAL after a crash), on GRDB's reader queue, which waits up to the busy timeout off the caller's thread.
    private func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            if let value = try readOnThisThread(body) { return value }
            return try await pool.read(body)
        } catch let error as DatabaseError {
            throw Self.brokerError(error, path: path)
        }
    }

    private func readOnThisThread<T>(_ body: (Database) throws -> T) throws -> T? {
        crew_set_thread_flag(1)
        defer { crew_set_thread_flag(0) }
        do {
            return try pool.read(body)
        } catch let error as DatabaseError where Self.isBusy(error) {
            return nil
        }
    }

    private static let columns =
        "id, name, arguments, queue, priority, state, attempts, max_attempts, run_at, expires_at, lease_until, worker, result, errors, created_at, finished_at"

    /// A job from a row of ``columns`` (read by position: by name, GRDB compares names case-insensitively).
    private static func record(_ row: Row) -> JobRecord? {
        guard let state = JobState(rawValue: row[5]) else { return nil }
        let errorsJSON: String = row[13]
        let errors =
            errorsJSON == "[]"
            ? [] : (try? JSONDecoder().decode([AttemptError].self, from: Data(errorsJSON.utf8))) ?? []
        func date(_ column: Int) -> Date? {
            (row[column] as Double?).map { Date(timeIntervalSince1970: $0) }
        }
        return JobRecord(
            id: JobID(row[0] as String),
            name: row[1],
            arguments: row[2],
            queue: row[3],
            priority: row[4],
            state: state,
            attempts: row[6],
            maxAttempts: row[7],
            runAt: date(8) ?? Date(timeIntervalSince1970: 0),
            expiresAt: date(9),
            leaseUntil: date(10),
            worker: row[11],
            result: row[12],
            errors: errors,
            createdAt: date(14) ?? Date(timeIntervalSince1970: 0),
            finishedAt: date(15)
        )
    }

    /// Runs a statement, prepared once per connection.
    private static func run(_ db: Database, _ sql: String, _ arguments: StatementArguments = StatementArguments())
        throws
    {
        try db.cachedStatement(sql: sql).execute(arguments: arguments)
    }

    /// The rows of a statement, prepared once per connection.
    private static func rows(_ db: Database, _ sql: String, _ arguments: StatementArguments = StatementArguments())
        throws -> [Row]
    {
        try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
    }

    private static func json(_ errors: [AttemptError]) -> String {
        let data = (try? JSONEncoder().encode(errors)) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    // MARK: Broker

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
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
    /// A pointer to an empty C string, for binding an empty text.
    nonisolated(unsafe) private static let empty: UnsafePointer<CChar> = {
        let byte = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        byte.initialize(to: 0)
        return UnsafePointer(byte)
    }()

    /// An insert of `rows` jobs.
    private static func insertSQL(rows: Int) -> String {
        let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        return """
            INSERT INTO crew_jobs (id, name, arguments, queue, priority, state, max_attempts, run_at, expires_at, created_at, result_ttl)
            VALUES \(Array(repeating: row, count: rows).joined(separator: ", "))
            """
    }

    /// Wake-ups of `signal` so far, counted in the wake file that every process using this database shares.
    public func signalMark(_ signal: BrokerSignal) -> UInt64 {
        wake.mark(Self.word(signal))
    }

    /// Returns once a process using this database raised `signal` after `mark`, or after `timeout`.
    public func awaitSignal(_ signal: BrokerSignal, after mark: UInt64, timeout: Duration) async {
        await wake.wait(Self.word(signal), after: mark, timeout: timeout)
    }

    private static func word(_ signal: BrokerSignal) -> WakeFile.Word {
        switch signal {
        case .jobs: .jobs
        case .results: .results
        }
    }

    /// Claims up to `limit` available jobs in one `BEGIN IMMEDIATE` transaction.
    public func claim(queues: [String], limit: Int, worker: String, lease: Duration) async throws -> [JobRecord] {
        guard limit > 0, !queues.isEmpty else { return [] }
        let now = clock().timeIntervalSince1970
        let until = now + JobRules.seconds(lease)
        return try await write { db in
            try Self.run(
                db,
                """
                UPDATE crew_jobs INDEXED BY crew_jobs_waiting_expiry SET state = 'expired', finished_at = ?
                WHERE expires_at IS NOT NULL AND expires_at <= ? AND state IN ('scheduled', 'available', 'retrying')
                """, [now, now])
            try Self.run(
                db,
                """
                UPDATE crew_jobs SET state = 'available' WHERE state IN ('scheduled', 'retrying') AND run_at <= ?
                """, [now])
            let marks = Array(repeating: "?", count: queues.count).joined(separator: ", ")
            var values: [(any DatabaseValueConvertible)?] = [until, worker]
            values += queues.map { $0 as (any DatabaseValueConvertible)? }
            values.append(limit)
            let arguments = StatementArguments(values)
            let rows = try Self.rows(
                db,
                """
                UPDATE crew_jobs SET state = 'running', attempts = attempts + 1, lease_until = ?, worker = ?
                WHERE id IN (
                    SELECT id FROM crew_jobs WHERE state = 'available' AND queue IN (\(marks))
                    ORDER BY priority DESC, run_at, rowid LIMIT ?
                )
                RETURNING \(Self.columns)
                """, arguments)
            return rows.compactMap(Self.record).sorted {
                ($0.priority, $1.runAt, $1.createdAt) > ($1.priority, $0.runAt, $0.createdAt)
            }
        }
    }

    /// Extends the leases `worker` holds on these jobs; returns the ids it still holds.
    public func renew(_ ids: [JobID], worker: String, lease: Duration) async throws -> [JobID] {
        guard !ids.isEmpty else { return [] }
        let until = clock().timeIntervalSince1970 + JobRules.seconds(lease)
        return try await write { db in
            var held: [JobID] = []
            for id in ids {
                try Self.run(
                    db,
                    """
                    UPDATE crew_jobs SET lease_until = ? WHERE id = ? AND state = 'running' AND worker = ?
                    """, [until, id.rawValue, worker])
                if db.changesCount > 0 { held.append(id) }
            }
            return held
        }
    }

    /// Records the outcomes of attempts in one transaction (see ``QueueBroker/record(_:worker:)``).
    public func record(_ outcomes: [JobOutcome], worker: String) async throws -> [JobState?] {
        guard !outcomes.isEmpty else { return [] }
        let now = clock().timeIntervalSince1970
        defer { wake.signal(.results) }
        return try await write { db in
            try outcomes.map { outcome -> JobState? in
                guard let error = outcome.error else {
                    try Self.run(
                        db,
                        """
                        UPDATE crew_jobs SET state = 'succeeded', result = ?, lease_until = NULL, finished_at = ?
                        WHERE id = ? AND state = 'running' AND worker = ?
                        """, [outcome.result ?? "null", now, outcome.id.rawValue, worker])
                    return db.changesCount > 0 ? .succeeded : nil
                }
                guard
                    let row = try Self.rows(
                        db,
                        """
                        SELECT \(Self.columns) FROM crew_jobs WHERE id = ? AND state = 'running' AND worker = ?
                        """, [outcome.id.rawValue, worker]
                    ).first, let job = Self.record(row)
                else { return nil }
                let state = JobRules.afterFailure(job, retryAt: outcome.retryAt)
                try Self.run(
                    db,
                    """
                    UPDATE crew_jobs SET state = ?, errors = ?, lease_until = NULL, run_at = ?, finished_at = ?
                    WHERE id = ?
                    """,
                    [
                        state.rawValue, Self.json(job.errors + [error]),
                        state == .retrying ? outcome.retryAt!.timeIntervalSince1970 : job.runAt.timeIntervalSince1970,
                        state == .retrying ? nil : now, outcome.id.rawValue,
                    ])
                return state
            }
        }
    }

    /// Gives jobs back without counting their attempt.
    public func release(_ ids: [JobID], worker: String) async throws {
        guard !ids.isEmpty else { return }
        defer { wake.signal(.jobs) }
        try await write { db in
            for id in ids {
                try Self.run(
                    db,
                    """
                    UPDATE crew_jobs SET state = 'available', attempts = attempts - 1, lease_until = NULL
                    WHERE id = ? AND state = 'running' AND worker = ?
                    """, [id.rawValue, worker])
            }
        }
    }

    /// Cancels a job that has not ended; false if it had.
    public func cancel(_ id: JobID) async throws -> Bool {
        let now = clock().timeIntervalSince1970
        defer { wake.signal(.results) }
        return try await write { db in
            try db.execute(
                sql: """
                    UPDATE crew_jobs SET state = 'cancelled', lease_until = NULL, finished_at = ?
                    WHERE id = ? AND state IN ('scheduled', 'available', 'running', 'retrying')
                    """, arguments: [now, id.rawValue])
            return db.changesCount > 0
        }
    }

    /// The job, if it exists.
    public func job(_ id: JobID) async throws -> JobRecord? {
        try await read { db in
            try Self.rows(db, "SELECT \(Self.columns) FROM crew_jobs WHERE id = ?", [id.rawValue]).first
                .flatMap(Self.record)
        }
    }

    /// Returns running jobs whose lease has expired; how many.
    public func reapExpiredLeases() async throws -> Int {
        let now = clock()
        let reaped = try await write { db in
            let rows = try Self.rows(
                db,
                """
                SELECT \(Self.columns) FROM crew_jobs WHERE state = 'running' AND lease_until < ?
                """, [now.timeIntervalSince1970])
            for row in rows {
                guard let job = Self.record(row) else { continue }
                let error = AttemptError(
                    attempt: job.attempts,
                    message: "the worker \(job.worker ?? "?") stopped renewing its lease (it died or hung)",
                    at: now
                )
                let state: JobState = job.attempts < job.maxAttempts ? .available : .failed
                try db.execute(
                    sql: """
                        UPDATE crew_jobs SET state = ?, errors = ?, lease_until = NULL, finished_at = ? WHERE id = ?
                        """,
                    arguments: [
                        state.rawValue, Self.json(job.errors + [error]),
                        state == .failed ? now.timeIntervalSince1970 : nil, job.id.rawValue,
                    ])
            }
            return rows.count
        }
        if reaped > 0 {
            // Idle workers take the jobs back at once; waiters on those that failed learn it at once.
            wake.signal(.jobs)
            wake.signal(.results)
        }
        return reaped
    }

    /// Jobs per queue and state.
    public func counts() async throws -> [QueueCounts] {
        try await read { db in
            var byQueue: [String: [JobState: Int]] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT queue, state, count(*) AS n FROM crew_jobs GROUP BY queue, state")
            {
                guard let state = JobState(rawValue: row["state"]) else { continue }
                byQueue[row["queue"], default: [:]][state] = row["n"]
            }
            return byQueue.keys.sorted().map { QueueCounts(queue: $0, counts: byQueue[$0]!) }
        }
    }

    /// Jobs of a queue and states, most recently created first.
    public func jobs(queue: String?, states: Set<JobState>?, limit: Int) async throws -> [JobRecord] {
        try await read { db in
            var conditions: [String] = []
            var values: [(any DatabaseValueConvertible)?] = []
            if let queue {
                conditions.append("queue = ?")
                values.append(queue)
            }
            if let states {
                conditions.append(
                    "state IN (\(Array(repeating: "?", count: max(1, states.count)).joined(separator: ", ")))")
                values +=
                    states.isEmpty
                    ? ["none"] : states.map(\.rawValue).sorted().map { $0 as (any DatabaseValueConvertible)? }
            }
            values.append(max(0, limit))
            let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT \(Self.columns) FROM crew_jobs \(filter) ORDER BY created_at DESC, rowid DESC LIMIT ?
                    """, arguments: StatementArguments(values)
            ).compactMap(Self.record)
        }
    }

    /// Runs an ended job again.
    public func retry(_ id: JobID) async throws -> Bool {
        let now = clock().timeIntervalSince1970
        defer { wake.signal(.jobs) }
        return try await write { db in
            try db.execute(
                sql: """
                    UPDATE crew_jobs SET state = 'available', attempts = 0, run_at = ?, expires_at = NULL, finished_at = NULL
                    WHERE id = ? AND state IN ('failed', 'cancelled', 'expired')
                    """, arguments: [now, id.rawValue])
            return db.changesCount > 0
        }
    }

    /// Deletes the waiting jobs of a queue.
    public func purge(queue: String) async throws -> Int {
        try await write { db in
            try db.execute(
                sql: """
                    DELETE FROM crew_jobs WHERE queue = ? AND state IN ('scheduled', 'available', 'retrying')
                    """, arguments: [queue])
            return db.changesCount
        }
    }

    /// Deletes ended jobs whose result TTL has passed.
    public func deleteExpiredResults() async throws -> Int {
        let now = clock().timeIntervalSince1970
        return try await write { db in
            try Self.run(
                db,
                """
                DELETE FROM crew_jobs INDEXED BY crew_jobs_ttl
                WHERE result_ttl IS NOT NULL AND finished_at IS NOT NULL AND finished_at + result_ttl <= ?
                AND state IN ('succeeded', 'failed', 'cancelled', 'expired')
                """, [now])
            return db.changesCount
        }
    }

    /// Takes the turn of a periodic schedule if it is due, in one transaction.
    public func claimSchedule(_ name: String, every: Duration) async throws -> Bool {
        let now = clock().timeIntervalSince1970
        let next = now + JobRules.seconds(every)
        return try await write { db in
            if let due = try Double.fetchOne(
                db, sql: "SELECT next_run FROM crew_schedules WHERE name = ?", arguments: [name])
            {
                guard due <= now else { return false }
                try db.execute(sql: "UPDATE crew_schedules SET next_run = ? WHERE name = ?", arguments: [next, name])
            } else {
                try db.execute(
                    sql: "INSERT INTO crew_schedules (name, next_run) VALUES (?, ?)", arguments: [name, next])
            }
            return true
        }
    }
}
