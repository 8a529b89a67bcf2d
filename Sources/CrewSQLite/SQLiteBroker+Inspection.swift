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
    /// The job, if it exists.
    public func job(_ id: JobID) async throws -> JobRecord? {
        try await read { db in
            try Self.rows(db, "SELECT \(Self.columns) FROM crew_jobs WHERE id = ?", [id.rawValue]).first
                .flatMap(Self.record)
        }
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
}
