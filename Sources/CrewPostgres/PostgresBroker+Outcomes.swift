public import CrewQueue
import FoundationEssentials
import Logging
import PostgresNIO
import Synchronization

extension PostgresBroker {
    /// A job from a row that starts with ``jobColumns``; nil (and logged) for a row that does not read as one.
    func record(_ row: PostgresRow) -> JobRecord? {
        do {
            // By position: the first 16 columns are the job's (a claim's rows carry one more).
            let columns = row.makeRandomAccess()
            func column<T: PostgresDecodable>(_ index: Int, _ type: T.Type = T.self) throws -> T {
                try columns[index].decode(T.self)
            }
            let (id, name, arguments, queue, priority, state): (String, String, String, String, Int, String) =
                (try column(0), try column(1), try column(2), try column(3), try column(4), try column(5))
            let (attempts, maxAttempts, runAt, expiresAt, leaseUntil): (Int, Int, Double, Double?, Double?) =
                (try column(6), try column(7), try column(8), try column(9), try column(10))
            let (worker, result, errors, createdAt, finishedAt): (String?, String?, String, Double, Double?) =
                (try column(11), try column(12), try column(13), try column(14), try column(15))
            guard let state = JobState(rawValue: state) else { throw BrokerError(.storage, "unknown state \(state)") }
            return JobRecord(
                id: JobID(id), name: name, arguments: arguments, queue: queue, priority: priority, state: state,
                attempts: attempts, maxAttempts: maxAttempts, runAt: Date(timeIntervalSince1970: runAt),
                expiresAt: expiresAt.map(Date.init(timeIntervalSince1970:)),
                leaseUntil: leaseUntil.map(Date.init(timeIntervalSince1970:)), worker: worker, result: result,
                errors: AttemptError.list(fromJSON: errors),
                createdAt: Date(timeIntervalSince1970: createdAt),
                finishedAt: finishedAt.map(Date.init(timeIntervalSince1970:))
            )
        } catch {
            logger.error(
                "skipped a job row that does not read as a job", metadata: ["error": "\(String(reflecting: error))"])
            return nil
        }
    }

    /// Records the outcomes of attempts in one statement.
    public func record(_ outcomes: [JobOutcome], worker: String) async throws -> [JobState?] {
        guard !outcomes.isEmpty else { return [] }
        let now = clock().timeIntervalSince1970
        let successes = outcomes.filter { $0.error == nil }
        let failures = outcomes.filter { $0.error != nil }
        let encoder = JSONEncoder()
        let errors = try failures.map { String(decoding: try encoder.encode($0.error!), as: UTF8.self) }
        let rows = try await run(
            RecordOutcomes(
                now: now, worker: worker, succeeded: successes.map(\.id.rawValue),
                results: successes.map { $0.result ?? "null" },
                failed: failures.map(\.id.rawValue), errors: errors,
                retryAt: failures.map { $0.retryAt?.timeIntervalSince1970 ?? .nan }
            ))
        var states: [String: JobState] = [:]
        for row in rows {
            guard let (id, state) = try? row.decode((String, String).self) else { continue }
            states[id] = JobState(rawValue: state)
        }
        noteChurn(states.count)
        return outcomes.map { states[$0.id.rawValue] }
    }

    /// Cancels a job that has not ended; false if it had.
    public func cancel(_ id: JobID) async throws -> Bool {
        let now = clock().timeIntervalSince1970
        return try await !run(
            """
            UPDATE crew_jobs SET state = 'cancelled', lease_until = NULL, finished_at = \(now)
            WHERE id = \(id.rawValue) AND state IN ('scheduled', 'available', 'running', 'retrying')
            RETURNING id
            """
        ).isEmpty
    }

    /// Runs an ended job again.
    public func retry(_ id: JobID) async throws -> Bool {
        let now = clock().timeIntervalSince1970
        return try await !run(
            """
            UPDATE crew_jobs SET state = 'available', attempts = 0, run_at = \(now), expires_at = NULL, finished_at = NULL
            WHERE id = \(id.rawValue) AND state IN ('failed', 'cancelled', 'expired')
            RETURNING id
            """
        ).isEmpty
    }
}
