import CCrewShims
public import CrewQueue
public import FoundationEssentials
import GRDB
import GRDBSQLite
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The embedded broker: one SQLite file in WAL mode (`sqlite:///path/to/crew.db`), through GRDB.
///
/// Claiming is one short `BEGIN IMMEDIATE` transaction, so several worker processes can share the file. The
/// file (and the WAL beside it) is created owner-only (0600). Times are stored as Unix seconds; arguments,
/// results and errors as JSON text, readable with the `sqlite3` tool.
public final class SQLiteBroker: QueueBroker {
    /// The schema version this code writes and reads.
    public static let schemaVersion = 2

    let pool: DatabasePool

    /// Writes of this process under way (see ``write(_:)``).
    let writes = Atomic<Int>(0)

    let wake: WakeFile

    let clock: @Sendable () -> Date

    /// The database file.
    public let path: String

    /// Opens (creating if needed) the broker database at `path`.
    ///
    /// - Parameters:
    ///   - path: The database file.
    ///   - busyTimeout: How long a statement waits for another program's lock before it fails with `storage`.
    ///   - maxPages: A quota: the most pages the database may grow to (SQLite's `max_page_count`); a write that
    ///     would pass it fails with `storage`, as on a full disk. No quota when nil.
    ///   - readOnly: Opens an existing database for reading only (to inspect it): every write fails with
    ///     `storage`, as it does on a file this process may not write.
    ///   - clock: Tells the broker the time (tests move it).
    /// - Throws: `BrokerError` `incompatibleSchema` if the file is not a Crew database or comes from a newer
    ///   Crew; `storage` if it cannot be opened (a directory, no permission, locked, not SQLite).
    public init(
        path: String,
        busyTimeout: Duration = .seconds(10),
        maxPages: Int? = nil,
        readOnly: Bool = false,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        self.path = path
        self.clock = clock
        if !readOnly {
            // Owner-only from the start: SQLite gives the WAL and shared-memory files the database file's mode.
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            if fd >= 0 { close(fd) }
        }
        var configuration = Configuration()
        configuration.readonly = readOnly
        // SQLite's own busy timeout, except on a thread that tries a write without waiting (see write(_:)).
        let timeout = JobRules.seconds(busyTimeout)
        configuration.busyMode = .callback { tries in
            if crew_thread_flag() != 0 { return false }
            return Self.waitBusy(tries: tries, timeout: timeout)
        }
        configuration.label = "crew"
        configuration.prepareDatabase { db in
            // WAL with synchronous=NORMAL: a process that dies (the chaos test kills workers at random) loses no
            // committed job; a power cut may lose the last commits, never corrupt the file. (FULL would add an
            // fsync to every claim and result.)
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            if let maxPages { try db.execute(sql: "PRAGMA max_page_count = \(maxPages)") }
        }
        do {
            pool = try Self.openPool(path: path, configuration: configuration, readOnly: readOnly, timeout: timeout)
        } catch let error as BrokerError {
            throw error
        } catch let error as DatabaseError {
            throw Self.brokerError(error, path: path)
        } catch {
            throw BrokerError(.storage, "cannot open \(path): \(error)")
        }
        // Made once the file has proved to be a Crew database, so that a wrong path leaves nothing beside it.
        self.wake = WakeFile(databasePath: path)
    }

    /// Opens the file and migrates (or checks) its schema. Two programs that open a new file together race to set
    /// it up: switching it to WAL and GRDB's first write there run in transactions SQLite fails with `SQLITE_BUSY`
    /// at once rather than wait, so the whole opening is tried again, for up to `timeout` seconds.
    static func openPool(
        path: String,
        configuration: Configuration,
        readOnly: Bool,
        timeout: Double
    ) throws -> DatabasePool {
        var tries = 0
        while true {
            do {
                let pool = try DatabasePool(path: path, configuration: configuration)
                if readOnly {
                    try pool.read { db in try Self.checkSchema(db) }
                } else {
                    try pool.write { db in try Self.migrate(db) }
                }
                return pool
            } catch let error as DatabaseError
                where [.SQLITE_BUSY, .SQLITE_LOCKED].contains(error.resultCode)
                && waitBusy(tries: tries, timeout: timeout)
            {
                tries += 1
            }
        }
    }
}
