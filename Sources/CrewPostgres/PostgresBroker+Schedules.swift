import CrewQueue
import FoundationEssentials
import Logging
import PostgresNIO
import Synchronization

extension PostgresBroker {
    /// Takes the turn of a periodic schedule if it is due, in one statement.
    public func claimSchedule(_ name: String, every: Duration) async throws -> Bool {
        let now = clock().timeIntervalSince1970
        let next = now + JobRules.seconds(every)
        return try await !run(
            """
            INSERT INTO crew_schedules AS s (name, next_run) VALUES (\(name), \(next))
            ON CONFLICT (name) DO UPDATE SET next_run = excluded.next_run WHERE s.next_run <= \(now)
            RETURNING name
            """
        ).isEmpty
    }
}
