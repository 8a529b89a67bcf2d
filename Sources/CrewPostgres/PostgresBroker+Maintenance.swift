import CrewQueue
import FoundationEssentials
import Logging
import PostgresNIO
import Synchronization

extension PostgresBroker {
    /// Counts jobs claimed, ended or deleted, and starts a vacuum of the jobs table when enough have been (see
    /// ``Options/vacuumEvery``).
    func noteChurn(_ count: Int) {
        guard count > 0, let every = options.vacuumEvery else { return }
        guard churn.wrappingAdd(count, ordering: .relaxed).newValue >= max(1, every) else { return }
        let start = vacuum.withLock { state -> Bool in
            guard !state.running, state.last.map({ ContinuousClock.now - $0 >= .seconds(1) }) ?? true else {
                return false
            }
            state.running = true
            return true
        }
        guard start else { return }
        churn.store(0, ordering: .relaxed)
        Task { [self] in
            do {
                // SKIP_LOCKED: if another process vacuums the table now, this one does not wait for it.
                _ = try await client.query("VACUUM (SKIP_LOCKED) crew_jobs", logger: logger).collect()
            } catch {
                logger.notice("could not vacuum crew_jobs; autovacuum will", metadata: ["error": "\(error)"])
            }
            vacuum.withLock { state in
                state.running = false
                state.last = .now
            }
        }
    }

    /// Deletes the waiting jobs of a queue.
    public func purge(queue: String) async throws -> Int {
        let purged = try await run(
            """
            DELETE FROM crew_jobs WHERE queue = \(queue) AND state IN ('scheduled', 'available', 'retrying') RETURNING id
            """
        ).count
        noteChurn(purged)
        return purged
    }

    /// Deletes ended jobs whose result TTL has passed.
    public func deleteExpiredResults() async throws -> Int {
        let now = clock().timeIntervalSince1970
        let deleted = try await run(
            """
            DELETE FROM crew_jobs
            WHERE result_ttl IS NOT NULL AND finished_at IS NOT NULL AND (finished_at + result_ttl) <= \(now)
            AND state IN ('succeeded', 'failed', 'cancelled', 'expired')
            RETURNING id
            """
        ).count
        noteChurn(deleted)
        return deleted
    }
}
