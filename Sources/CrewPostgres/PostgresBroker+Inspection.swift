public import CrewQueue
import FoundationEssentials
import Logging
import PostgresNIO
import Synchronization

extension PostgresBroker {
    /// The job, if it exists.
    public func job(_ id: JobID) async throws -> JobRecord? {
        try await run(FetchJob(id: id.rawValue)).first.flatMap(record)
    }

    /// Jobs per queue and state.
    public func counts() async throws -> [QueueCounts] {
        var byQueue: [String: [JobState: Int]] = [:]
        for row in try await run("SELECT queue, state, count(*) FROM crew_jobs GROUP BY queue, state") {
            let (queue, state, count) = try row.decode((String, String, Int).self)
            guard let state = JobState(rawValue: state) else { continue }
            byQueue[queue, default: [:]][state] = count
        }
        return byQueue.keys.sorted().map { QueueCounts(queue: $0, counts: byQueue[$0]!) }
    }

    /// Jobs of a queue and states, most recently created first.
    public func jobs(queue: String?, states: Set<JobState>?, limit: Int) async throws -> [JobRecord] {
        let allStates = JobState.allCases.map(\.rawValue)
        let wanted = states.map { $0.map(\.rawValue) } ?? allStates
        return try await run(
            """
            SELECT \(unescaped: jobColumns) FROM crew_jobs
            WHERE (\(queue)::text IS NULL OR queue = \(queue)) AND state = ANY(\(wanted))
            ORDER BY created_at DESC, seq DESC LIMIT \(max(0, limit))
            """
        ).compactMap(record)
    }
}
