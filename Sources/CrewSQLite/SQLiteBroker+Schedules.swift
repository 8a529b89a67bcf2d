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
    /// Takes the turn of a periodic schedule if it is due, in one transaction.
    public func claimSchedule(_ name: String, every: Duration) async throws -> Bool {
        let now = clock().timeIntervalSince1970
        let next = now + JobRules.seconds(every)
        return try await write { db in
            if let due = try Double.fetchOne(
                db, sql: "SELECT next_run FROM crew_schedules WHERE name = ?", arguments: [name])
            {
                guard due <= now else { return false }
                try db.execute(sql: "UPDATE crew_schedules SET next_run = ? WHERE name = ?", arguments: [next, name])
            } else {
                try db.execute(
                    sql: "INSERT INTO crew_schedules (name, next_run) VALUES (?, ?)", arguments: [name, next])
            }
            return true
        }
    }
}
