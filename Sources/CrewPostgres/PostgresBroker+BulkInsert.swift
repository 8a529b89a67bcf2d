public import CrewQueue
import FoundationEssentials
import Logging
public import PostgresNIO
import Synchronization

extension PostgresBroker {
    /// Stores the jobs in one statement (one round trip, however many), all or none.
    public func enqueue(_ jobs: [NewJob]) async throws {
        guard !jobs.isEmpty else { return }
        _ = try await run(insert(jobs))
    }

    /// Stores the jobs inside the caller's transaction on `connection`: they exist only if it commits, and
    /// workers are woken at its commit.
    ///
    /// ```swift
    /// try await client.withTransaction(logger: logger) { connection in
    ///     try await connection.query("INSERT INTO orders …", logger: logger)
    ///     try await broker.enqueue([taskClient.job(Jobs.ship, orderID)], connection: connection)
    /// }
    /// ```
    public func enqueue(_ jobs: [NewJob], connection: PostgresConnection) async throws {
        guard !jobs.isEmpty else { return }
        do {
            for try await _ in try await connection.execute(insert(jobs), logger: logger) {}
        } catch {
            throw Self.brokerError(error, endpoint: endpoint)
        }
    }

    func insert(_ jobs: [NewJob]) throws -> InsertJobs {
        // The primary key refuses a taken id (duplicateJob), rolling back the whole statement.
        try JobRules.validate(jobs, duplicates: false)
        let now = clock()
        return InsertJobs(
            ids: jobs.map(\.id.rawValue), names: jobs.map(\.name), arguments: jobs.map(\.arguments),
            queues: jobs.map(\.queue),
            priorities: jobs.map(\.priority), states: jobs.map { JobRules.initialState($0, now: now).rawValue },
            maxAttempts: jobs.map(\.maxAttempts), runAt: jobs.map { ($0.runAt ?? now).timeIntervalSince1970 },
            expiresAt: jobs.map { $0.expiresAt?.timeIntervalSince1970 ?? .nan },
            ttl: jobs.map { $0.resultTTL.map { JobRules.seconds($0) } ?? .nan }, now: now.timeIntervalSince1970
        )
    }
}
