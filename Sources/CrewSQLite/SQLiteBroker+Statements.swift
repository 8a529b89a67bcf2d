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
    /// Waits before another try at a lock held by another connection, as SQLite's busy timeout does; false once
    /// `timeout` seconds have passed.
    static func waitBusy(tries: Int, timeout: Double) -> Bool {
        let delays: [Double] = [0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.025, 0.025, 0.05, 0.05, 0.1]
        let waited =
            tries < delays.count
            ? delays.prefix(tries).reduce(0, +)
            : delays.reduce(0, +) + Double(tries - delays.count) * 0.1
        guard waited < timeout else { return false }
        let delay = min(delays[min(tries, delays.count - 1)], timeout - waited)
        usleep(useconds_t(delay * 1_000_000))
        return true
    }

    /// Runs `body` in a `BEGIN IMMEDIATE` transaction.
    ///
    /// When no other write of this process is under way, it first tries on the calling thread, giving up at once
    /// if another process holds the file's write lock: a short write then costs no thread switch. Otherwise (or
    /// if the lock was taken) it runs on GRDB's writer queue, waiting up to the busy timeout.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            // Alone: no other write of this process to wait behind on the writer queue.
            let alone = writes.wrappingAdd(1, ordering: .acquiringAndReleasing).oldValue == 0
            defer { writes.wrappingSubtract(1, ordering: .acquiringAndReleasing) }
            if alone, let value = try writeOnThisThread(body) { return value }
            return try await pool.writeWithoutTransaction { db in
                var value: T?
                try db.inTransaction(.immediate) {
                    value = try body(db)
                    return .commit
                }
                return value!
            }
        } catch let error as BrokerError {
            throw error
        } catch let error as DatabaseError {
            throw Self.brokerError(error, path: path)
        }
    }

    /// The write on this thread; nil if it met another process's lock anywhere (it was rolled back then; nothing
    /// was written). The busy handler gives up at once on this thread, so a caller's thread never sleeps on a lock.
    func writeOnThisThread<T>(_ body: (Database) throws -> T) throws -> T? {
        try pool.writeWithoutTransaction { db -> T? in
            crew_set_thread_flag(1)
            defer { crew_set_thread_flag(0) }
            do {
                try db.beginTransaction(.immediate)
            } catch let error as DatabaseError where Self.isBusy(error) {
                return nil
            }
            do {
                let value = try body(db)
                try db.commit()
                return value
            } catch let error as DatabaseError where Self.isBusy(error) {
                if db.isInsideTransaction { try? db.rollback() }
                return nil
            } catch {
                if db.isInsideTransaction { try? db.rollback() }
                throw error
            }
        }
    }

    static func isBusy(_ error: DatabaseError) -> Bool {
        error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED
    }

    /// Runs a read. First on the calling thread (in WAL mode a read does not wait for a writer, and is shorter than
    /// the two thread switches an asynchronous read costs); if it meets a lock anyway (another process recovering
    /// the WAL after a crash), on GRDB's reader queue, which waits up to the busy timeout off the caller's thread.
    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            if let value = try readOnThisThread(body) { return value }
            return try await pool.read(body)
        } catch let error as DatabaseError {
            throw Self.brokerError(error, path: path)
        }
    }

    func readOnThisThread<T>(_ body: (Database) throws -> T) throws -> T? {
        crew_set_thread_flag(1)
        defer { crew_set_thread_flag(0) }
        do {
            return try pool.read(body)
        } catch let error as DatabaseError where Self.isBusy(error) {
            return nil
        }
    }

    static let columns =
        "id, name, arguments, queue, priority, state, attempts, max_attempts, run_at, expires_at, lease_until, worker, result, errors, created_at, finished_at"

    /// Runs a statement, prepared once per connection.
    static func run(_ db: Database, _ sql: String, _ arguments: StatementArguments = StatementArguments())
        throws
    {
        try db.cachedStatement(sql: sql).execute(arguments: arguments)
    }

    /// The rows of a statement, prepared once per connection.
    static func rows(_ db: Database, _ sql: String, _ arguments: StatementArguments = StatementArguments())
        throws -> [Row]
    {
        try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
    }

    static func json(_ errors: [AttemptError]) -> String {
        let data = (try? JSONEncoder().encode(errors)) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
