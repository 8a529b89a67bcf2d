public import CrewQueue
import FoundationEssentials
import Logging
import PostgresNIO
import Synchronization

extension PostgresBroker {
    /// Claims up to `limit` available jobs in one statement; rows other workers hold are skipped, not waited for.
    public func claim(queues: [String], limit: Int, worker: String, lease: Duration) async throws -> [JobRecord] {
        guard limit > 0, !queues.isEmpty else { return [] }
        let now = clock().timeIntervalSince1970
        let until = now + JobRules.seconds(lease)
        var claimed: [JobRecord] = []
        for _ in 0..<2 {
            let rows = try await run(
                ClaimJobs(until: until, worker: worker, queues: queues, now: now, limit: limit - claimed.count))
            var moved = 0
            for row in rows {
                let columns = row.makeRandomAccess()
                moved = (try? columns[16].decode(Int.self)) ?? 0
                // The row that only reports the count has no id.
                if (try? columns[0].decode(String?.self)) != nil, let job = record(row) { claimed.append(job) }
            }
            // Again only if the first statement made jobs available that it could not claim itself.
            guard moved > 0, claimed.count < limit else { break }
        }
        noteChurn(claimed.count)
        return claimed.sorted {
            ($0.priority, $1.runAt, $1.createdAt) > ($1.priority, $0.runAt, $0.createdAt)
        }
    }

    /// Extends the leases `worker` holds on these jobs; returns the ids it still holds.
    public func renew(_ ids: [JobID], worker: String, lease: Duration) async throws -> [JobID] {
        guard !ids.isEmpty else { return [] }
        let until = clock().timeIntervalSince1970 + JobRules.seconds(lease)
        let rows = try await run(RenewLeases(until: until, ids: ids.map(\.rawValue), worker: worker))
        let held = Set(rows.compactMap { try? $0.decode(String.self) })
        return ids.filter { held.contains($0.rawValue) }
    }

    /// Gives jobs back without counting their attempt.
    public func release(_ ids: [JobID], worker: String) async throws {
        guard !ids.isEmpty else { return }
        _ = try await run(
            """
            UPDATE crew_jobs SET state = 'available', attempts = attempts - 1, lease_until = NULL
            WHERE id = ANY(\(ids.map(\.rawValue))) AND state = 'running' AND worker = \(worker)
            """)
    }

    /// Returns running jobs whose lease has expired (or that have no lease: a row edited by hand); how many.
    public func reapExpiredLeases() async throws -> Int {
        let now = clock()
        // An AttemptError as JSONEncoder writes it (`at` in seconds since 2001).
        let rows = try await run(
            """
            UPDATE crew_jobs SET
                state = CASE WHEN attempts < max_attempts THEN 'available' ELSE 'failed' END,
                errors = (crew_errors(errors) || jsonb_build_array(jsonb_build_object(
                    'attempt', attempts,
                    'message', 'the worker ' || coalesce(worker, '?') || ' stopped renewing its lease (it died or hung)',
                    'at', \(now.timeIntervalSinceReferenceDate))))::text,
                finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE \(now.timeIntervalSince1970) END,
                lease_until = NULL
            WHERE id = ANY(ARRAY(
                SELECT id FROM crew_jobs
                WHERE state = 'running' AND (lease_until IS NULL OR lease_until < \(now.timeIntervalSince1970))
                FOR UPDATE SKIP LOCKED))
            RETURNING id
            """)
        return rows.count
    }
}
