import CrewQueue
import FoundationEssentials
import Logging
import PostgresNIO
import Synchronization

extension PostgresBroker {
    func run(_ query: PostgresQuery) async throws -> [PostgresRow] {
        let (client, logger) = (self.client, self.logger)
        return try await answered { try await client.query(query, logger: logger).collect() }
    }

    func run<Statement: CrewStatement>(_ statement: Statement) async throws -> [PostgresRow] {
        let (client, logger) = (self.client, self.logger)
        return try await answered {
            var rows: [PostgresRow] = []
            for try await row in try await client.execute(statement, logger: logger) { rows.append(row) }
            return rows
        }
    }

    /// Runs a statement, failing with `unavailable` if it has no answer within the statement timeout. The
    /// statement runs in a task of its own, so that one left without an answer is abandoned, not awaited.
    func answered(_ body: @escaping @Sendable () async throws -> [PostgresRow]) async throws -> [PostgresRow] {
        let timeout = options.statementTimeout
        let endpoint = self.endpoint
        let once = ResumeOnce()
        do {
            return try await withCheckedThrowingContinuation { continuation in
                once.arm(continuation)
                let work = Task {
                    do { once.resume(.success(UncheckedRows(rows: try await body()))) } catch {
                        once.resume(.failure(error))
                    }
                }
                let timer = Task {
                    try? await Task.sleep(for: timeout)
                    if Task.isCancelled { return }
                    if once.resume(
                        .failure(
                            BrokerError(.unavailable, "PostgreSQL at \(endpoint) did not answer within \(timeout)")))
                    {
                        work.cancel()
                    }
                }
                once.onResume { timer.cancel() }
            }.rows
        } catch {
            throw Self.brokerError(error, endpoint: endpoint)
        }
    }
}
