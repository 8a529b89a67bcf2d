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
}
