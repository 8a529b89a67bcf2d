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
    /// A job from a row of ``columns`` (read by position: by name, GRDB compares names case-insensitively).
    static func record(_ row: Row) -> JobRecord? {
        guard let state = JobState(rawValue: row[5]) else { return nil }
        let errorsJSON: String = row[13]
        let errors = AttemptError.list(fromJSON: errorsJSON)
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

    /// Records the outcomes of attempts in one transaction (see `QueueBroker.record(_:worker:)`).
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
}
