import CCrewShims
import CrewQueue
import FoundationEssentials
import GRDB
import GRDBSQLite
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

extension SQLiteBroker {
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
}
