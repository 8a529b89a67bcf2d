public import CrewQueue
public import FoundationEssentials
import GRDB

#if canImport(Glibc)
import Glibc
#endif

/// The embedded broker: one SQLite file in WAL mode (`sqlite:///path/to/crew.db`), through GRDB.
///
/// Claiming is one short `BEGIN IMMEDIATE` transaction, so several worker processes can share the file. The
/// file (and the WAL beside it) is created owner-only (0600). Times are stored as Unix seconds; arguments,
/// results and errors as JSON text, readable with the `sqlite3` tool.
public final class SQLiteBroker: Broker {
    /// The schema version this code writes and reads.
    public static let schemaVersion = 1

    private let pool: DatabasePool
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
    ///   - clock: Tells the broker the time (tests move it).
    /// - Throws: ``BrokerError`` `incompatibleSchema` if the file is not a Crew database or comes from a newer
    ///   Crew; `storage` if it cannot be opened (a directory, no permission, locked, not SQLite).
    public init(
        path: String,
        busyTimeout: Duration = .seconds(10),
        maxPages: Int? = nil,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        self.path = path
        self.clock = clock
        self.wake = WakeFile(databasePath: path)
        // Owner-only from the start: SQLite gives the WAL and shared-memory files the database file's mode.
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd) }
        var configuration = Configuration()
        configuration.busyMode = .timeout(JobRules.seconds(busyTimeout))
        configuration.label = "crew"
        configuration.prepareDatabase { db in
            // WAL with synchronous=NORMAL: a process that dies (the chaos test kills workers at random) loses no
            // committed job; a power cut may lose the last commits, never corrupt the file. (FULL would add an
            // fsync to every claim and result.)
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            if let maxPages { try db.execute(sql: "PRAGMA max_page_count = \(maxPages)") }
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try pool.write { db in try Self.migrate(db) }
        } catch let error as BrokerError {
            throw error
        } catch let error as DatabaseError {
            throw Self.brokerError(error, path: path)
        } catch {
            throw BrokerError(.storage, "cannot open \(path): \(error)")
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

    /// Creates the schema, or checks that the file's is one this code knows.
    private static func migrate(_ db: Database) throws {
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
        if tables.contains("crew_schema") {
            let version = try Int.fetchOne(db, sql: "SELECT version FROM crew_schema") ?? 0
            guard version <= schemaVersion else {
                throw BrokerError(
                    .incompatibleSchema,
                    "the database has schema version \(version), newer than this Crew's \(schemaVersion): upgrade Crew"
                )
            }
            return
        }
        guard tables.isEmpty else {
            throw BrokerError(.incompatibleSchema, "the database has tables of its own (\(tables.sorted().joined(separator: ", "))) and no Crew schema: not a Crew database")
        }
        try db.execute(sql: """
            CREATE TABLE crew_schema (version INTEGER NOT NULL);
            INSERT INTO crew_schema (version) VALUES (\(schemaVersion));
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
            """)
    }

    // MARK: Running statements

    private func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
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

    private func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch let error as DatabaseError {
            throw Self.brokerError(error, path: path)
        }
    }

    private static let columns =
        "id, name, arguments, queue, priority, state, attempts, max_attempts, run_at, expires_at, lease_until, worker, result, errors, created_at, finished_at"

    private static func record(_ row: Row) -> JobRecord? {
        guard let state = JobState(rawValue: row["state"]) else { return nil }
        let errorsJSON: String = row["errors"]
        let errors = (try? JSONDecoder().decode([AttemptError].self, from: Data(errorsJSON.utf8))) ?? []
        func date(_ column: String) -> Date? {
            (row[column] as Double?).map { Date(timeIntervalSince1970: $0) }
        }
        return JobRecord(
            id: JobID(row["id"]),
            name: row["name"],
            arguments: row["arguments"],
            queue: row["queue"],
            priority: row["priority"],
            state: state,
            attempts: row["attempts"],
            maxAttempts: row["max_attempts"],
            runAt: date("run_at") ?? Date(timeIntervalSince1970: 0),
            expiresAt: date("expires_at"),
            leaseUntil: date("lease_until"),
            worker: row["worker"],
            result: row["result"],
            errors: errors,
            createdAt: date("created_at") ?? Date(timeIntervalSince1970: 0),
            finishedAt: date("finished_at")
        )
    }

    private static func json(_ errors: [AttemptError]) -> String {
        let data = (try? JSONEncoder().encode(errors)) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    // MARK: Broker

    /// Stores the jobs in one transaction, all or none.
    public func enqueue(_ jobs: [NewJob]) async throws {
        try JobRules.validate(jobs)
        let now = clock()
        try await write { db in
            let statement = try db.cachedStatement(sql: """
                INSERT INTO crew_jobs (id, name, arguments, queue, priority, state, max_attempts, run_at, expires_at, created_at, result_ttl)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for job in jobs {
                let state: JobState = (job.runAt.map { $0 > now } ?? false) ? .scheduled : .available
                try statement.execute(arguments: [
                    job.id.rawValue, job.name, job.arguments, job.queue, job.priority, state.rawValue, job.maxAttempts,
                    (job.runAt ?? now).timeIntervalSince1970, job.expiresAt?.timeIntervalSince1970,
                    now.timeIntervalSince1970, job.resultTTL.map { JobRules.seconds($0) },
                ])
            }
        }
        wake.signal(.jobs)
    }

    /// Returns when a job may have been enqueued by any process using this file, or after `timeout`.
    public func awaitJobs(timeout: Duration) async {
        await wake.wait(.jobs, timeout: timeout)
    }

    /// Returns when a job may have ended in any process using this file, or after `timeout`.
    public func awaitResults(timeout: Duration) async {
        await wake.wait(.results, timeout: timeout)
    }

    /// Claims up to `limit` available jobs in one `BEGIN IMMEDIATE` transaction.
    public func claim(queues: [String], limit: Int, worker: String, lease: Duration) async throws -> [JobRecord] {
        guard limit > 0, !queues.isEmpty else { return [] }
        let now = clock().timeIntervalSince1970
        let until = now + JobRules.seconds(lease)
        return try await write { db in
            try db.execute(sql: """
                UPDATE crew_jobs SET state = 'expired', finished_at = ?
                WHERE expires_at IS NOT NULL AND expires_at <= ? AND state IN ('scheduled', 'available', 'retrying')
                """, arguments: [now, now])
            try db.execute(sql: """
                UPDATE crew_jobs SET state = 'available' WHERE state IN ('scheduled', 'retrying') AND run_at <= ?
                """, arguments: [now])
            let marks = Array(repeating: "?", count: queues.count).joined(separator: ", ")
            var values: [(any DatabaseValueConvertible)?] = [until, worker]
            values += queues.map { $0 as (any DatabaseValueConvertible)? }
            values.append(limit)
            let arguments = StatementArguments(values)
            let rows = try Row.fetchAll(db, sql: """
                UPDATE crew_jobs SET state = 'running', attempts = attempts + 1, lease_until = ?, worker = ?
                WHERE id IN (
                    SELECT id FROM crew_jobs WHERE state = 'available' AND queue IN (\(marks))
                    ORDER BY priority DESC, run_at, rowid LIMIT ?
                )
                RETURNING \(Self.columns)
                """, arguments: arguments)
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
                try db.execute(sql: """
                    UPDATE crew_jobs SET lease_until = ? WHERE id = ? AND state = 'running' AND worker = ?
                    """, arguments: [until, id.rawValue, worker])
                if db.changesCount > 0 { held.append(id) }
            }
            return held
        }
    }

    /// Records the result of a job `worker` holds; false if it no longer holds it.
    public func succeed(_ id: JobID, worker: String, result: String) async throws -> Bool {
        let now = clock().timeIntervalSince1970
        defer { wake.signal(.results) }
        return try await write { db in
            try db.execute(sql: """
                UPDATE crew_jobs SET state = 'succeeded', result = ?, lease_until = NULL, finished_at = ?
                WHERE id = ? AND state = 'running' AND worker = ?
                """, arguments: [result, now, id.rawValue, worker])
            return db.changesCount > 0
        }
    }

    /// Records a failed attempt; the new state, or nil if `worker` no longer held the job.
    public func fail(_ id: JobID, worker: String, error: AttemptError, retryAt: Date?) async throws -> JobState? {
        let now = clock().timeIntervalSince1970
        defer { wake.signal(.results) }
        return try await write { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT \(Self.columns) FROM crew_jobs WHERE id = ? AND state = 'running' AND worker = ?
                """, arguments: [id.rawValue, worker]), let job = Self.record(row)
            else { return nil }
            let state = JobRules.afterFailure(job, retryAt: retryAt)
            try db.execute(sql: """
                UPDATE crew_jobs SET state = ?, errors = ?, lease_until = NULL, run_at = ?, finished_at = ?
                WHERE id = ?
                """, arguments: [
                    state.rawValue, Self.json(job.errors + [error]),
                    state == .retrying ? retryAt!.timeIntervalSince1970 : job.runAt.timeIntervalSince1970,
                    state == .retrying ? nil : now, id.rawValue,
                ])
            return state
        }
    }

    /// Gives jobs back without counting their attempt.
    public func release(_ ids: [JobID], worker: String) async throws {
        guard !ids.isEmpty else { return }
        defer { wake.signal(.jobs) }
        try await write { db in
            for id in ids {
                try db.execute(sql: """
                    UPDATE crew_jobs SET state = 'available', attempts = attempts - 1, lease_until = NULL
                    WHERE id = ? AND state = 'running' AND worker = ?
                    """, arguments: [id.rawValue, worker])
            }
        }
    }

    /// Cancels a job that has not ended; false if it had.
    public func cancel(_ id: JobID) async throws -> Bool {
        let now = clock().timeIntervalSince1970
        defer { wake.signal(.results) }
        return try await write { db in
            try db.execute(sql: """
                UPDATE crew_jobs SET state = 'cancelled', lease_until = NULL, finished_at = ?
                WHERE id = ? AND state IN ('scheduled', 'available', 'running', 'retrying')
                """, arguments: [now, id.rawValue])
            return db.changesCount > 0
        }
    }

    /// The job, if it exists.
    public func job(_ id: JobID) async throws -> JobRecord? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.columns) FROM crew_jobs WHERE id = ?", arguments: [id.rawValue])
                .flatMap(Self.record)
        }
    }

    /// Returns running jobs whose lease has expired; how many.
    public func reapExpiredLeases() async throws -> Int {
        let now = clock()
        return try await write { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT \(Self.columns) FROM crew_jobs WHERE state = 'running' AND lease_until < ?
                """, arguments: [now.timeIntervalSince1970])
            for row in rows {
                guard let job = Self.record(row) else { continue }
                let error = AttemptError(
                    attempt: job.attempts,
                    message: "the worker \(job.worker ?? "?") stopped renewing its lease (it died or hung)",
                    at: now
                )
                let state: JobState = job.attempts < job.maxAttempts ? .available : .failed
                try db.execute(sql: """
                    UPDATE crew_jobs SET state = ?, errors = ?, lease_until = NULL, finished_at = ? WHERE id = ?
                    """, arguments: [
                        state.rawValue, Self.json(job.errors + [error]),
                        state == .failed ? now.timeIntervalSince1970 : nil, job.id.rawValue,
                    ])
            }
            return rows.count
        }
    }

    /// Jobs per queue and state.
    public func counts() async throws -> [QueueCounts] {
        try await read { db in
            var byQueue: [String: [JobState: Int]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT queue, state, count(*) AS n FROM crew_jobs GROUP BY queue, state") {
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
                conditions.append("state IN (\(Array(repeating: "?", count: max(1, states.count)).joined(separator: ", ")))")
                values += states.isEmpty ? ["none"] : states.map(\.rawValue).sorted().map { $0 as (any DatabaseValueConvertible)? }
            }
            values.append(max(0, limit))
            let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            return try Row.fetchAll(db, sql: """
                SELECT \(Self.columns) FROM crew_jobs \(filter) ORDER BY created_at DESC, rowid DESC LIMIT ?
                """, arguments: StatementArguments(values)).compactMap(Self.record)
        }
    }

    /// Runs an ended job again.
    public func retry(_ id: JobID) async throws -> Bool {
        let now = clock().timeIntervalSince1970
        defer { wake.signal(.jobs) }
        return try await write { db in
            try db.execute(sql: """
                UPDATE crew_jobs SET state = 'available', attempts = 0, run_at = ?, expires_at = NULL, finished_at = NULL
                WHERE id = ? AND state IN ('failed', 'cancelled', 'expired')
                """, arguments: [now, id.rawValue])
            return db.changesCount > 0
        }
    }

    /// Deletes the waiting jobs of a queue.
    public func purge(queue: String) async throws -> Int {
        try await write { db in
            try db.execute(sql: """
                DELETE FROM crew_jobs WHERE queue = ? AND state IN ('scheduled', 'available', 'retrying')
                """, arguments: [queue])
            return db.changesCount
        }
    }

    /// Deletes ended jobs whose result TTL has passed.
    public func deleteExpiredResults() async throws -> Int {
        let now = clock().timeIntervalSince1970
        return try await write { db in
            try db.execute(sql: """
                DELETE FROM crew_jobs
                WHERE result_ttl IS NOT NULL AND finished_at IS NOT NULL AND finished_at + result_ttl <= ?
                AND state IN ('succeeded', 'failed', 'cancelled', 'expired')
                """, arguments: [now])
            return db.changesCount
        }
    }

    /// Takes the turn of a periodic schedule if it is due, in one transaction.
    public func claimSchedule(_ name: String, every: Duration) async throws -> Bool {
        let now = clock().timeIntervalSince1970
        let next = now + JobRules.seconds(every)
        return try await write { db in
            if let due = try Double.fetchOne(db, sql: "SELECT next_run FROM crew_schedules WHERE name = ?", arguments: [name]) {
                guard due <= now else { return false }
                try db.execute(sql: "UPDATE crew_schedules SET next_run = ? WHERE name = ?", arguments: [next, name])
            } else {
                try db.execute(sql: "INSERT INTO crew_schedules (name, next_run) VALUES (?, ?)", arguments: [name, next])
            }
            return true
        }
    }
}
