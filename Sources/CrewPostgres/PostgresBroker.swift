public import CrewQueue
public import FoundationEssentials
public import Logging
public import PostgresNIO
import Synchronization

/// The broker for many workers on many machines: a PostgreSQL database, through postgres-nio's `PostgresClient`
/// (`postgres://user:password@host:5432/database`).
///
/// A claim is one `UPDATE … WHERE id = ANY(ARRAY(SELECT … FOR UPDATE SKIP LOCKED))`: workers never wait for each
/// other's rows. Workers and result waiters wake at once through `LISTEN`/`NOTIFY` (triggers on the jobs table
/// notify, so a job inserted by another program wakes them too), and poll as a fallback — set
/// ``Options/notifications`` to false behind PgBouncer in transaction mode, where `LISTEN` does not work.
/// ``enqueue(_:connection:)`` enqueues inside the caller's own transaction: the job exists only if it commits.
///
/// Times are stored as Unix seconds from the broker's clock; the machines that share a database should keep
/// their clocks in step (NTP), as leases are compared across them.
public final class PostgresBroker: QueueBroker {
    /// The schema version this code writes and reads.
    public static let schemaVersion = 1

    /// How the broker connects and wakes up.
    public struct Options: Sendable {
        /// Whether to `LISTEN` for enqueued and ended jobs. Without it, workers and waiters poll.
        public var notifications: Bool
        /// The most connections the broker's pool opens.
        public var maximumConnections: Int
        /// How long a connection attempt may take before it fails.
        public var connectTimeout: Duration
        /// How long a statement may go unanswered before it fails with `unavailable` (a connection cut at the
        /// wrong moment can leave a request without an answer; the broker never waits on it forever).
        public var statementTimeout: Duration
        /// After how many jobs claimed, ended or deleted through this broker it vacuums the jobs table (`VACUUM
        /// (SKIP_LOCKED) crew_jobs`, in the background, at most once a second); nil leaves it to autovacuum.
        ///
        /// A claim reads the index of available jobs from its start, and every job claimed or deleted leaves a
        /// dead entry there until a vacuum removes it. Autovacuum looks at a table about once a minute, long
        /// enough for a busy queue to leave hundreds of thousands, which every claim then reads past
        /// (BENCHMARKS.md has the measurement).
        public var vacuumEvery: Int?

        /// Notifications on, 8 connections, 5 s to connect, 30 s for a statement, a vacuum every 10 000 jobs.
        public init(
            notifications: Bool = true,
            maximumConnections: Int = 8,
            connectTimeout: Duration = .seconds(5),
            statementTimeout: Duration = .seconds(30),
            vacuumEvery: Int? = 10_000
        ) {
            self.vacuumEvery = vacuumEvery
            self.notifications = notifications
            self.maximumConnections = maximumConnections
            self.connectTimeout = connectTimeout
            self.statementTimeout = statementTimeout
        }
    }

    /// The pool of connections every statement runs on.
    ///
    /// Its connections run with `plan_cache_mode = force_generic_plan`: the broker's statements are prepared once
    /// per connection and then run on that one plan, instead of being planned again on every run (PostgreSQL
    /// keeps planning statements like the claim anew, which took more time than running them; BENCHMARKS.md has
    /// the measurement). Queries of your own on these connections (in ``enqueue(_:connection:)``'s transaction, say)
    /// run with that setting too; use a client of your own where a query needs custom plans.
    public let client: PostgresClient

    let configuration: PostgresClient.Configuration

    let options: Options

    let clock: @Sendable () -> Date

    let logger: Logger

    let signals = BrokerSignals()

    /// Jobs claimed, ended or deleted since the last vacuum (see ``Options/vacuumEvery``).
    let churn = Atomic<Int>(0)

    let vacuum = Mutex(VacuumState())

    struct VacuumState {
        var running = false
        var last: ContinuousClock.Instant?
    }

    let tasks = Mutex<[Task<Void, Never>]>([])

    /// The channels this broker listens on (bit 0: jobs, bit 1: results), each from the first time it is waited
    /// for: a worker hears of new jobs, a producer waiting for results of ended ones, and neither of the other's
    /// notifications.
    let listening = Atomic<UInt8>(0)

    /// Where the server is, for messages.
    public let endpoint: String

    /// Connects to the database `url` names, creating or migrating Crew's schema.
    ///
    /// `postgres://user:password@host:port/database`; a Unix socket with `?host=/path/to/socket/directory` (the
    /// directory holding `.s.PGSQL.5432`). Options in the URL: `notifications=off`, `connections=N`.
    ///
    /// - Throws: `BrokerError` `unavailable` if the server cannot be reached or refuses the credentials (within
    ///   the connect timeout, not a hang); `incompatibleSchema` for a newer Crew's schema; `invalidArgument` for a
    ///   URL it cannot read.
    public static func connect(
        url: String,
        clock: @escaping @Sendable () -> Date = { Date() },
        logger: Logger = Logger(label: "crew.postgres")
    ) async throws -> PostgresBroker {
        let (configuration, options, endpoint) = try PostgresURL.parse(url)
        return try await PostgresBroker(
            configuration: configuration, options: options, endpoint: endpoint, clock: clock, logger: logger)
    }

    /// Connects with a postgres-nio configuration, creating or migrating Crew's schema.
    ///
    /// - Throws: `BrokerError` as ``connect(url:clock:logger:)`` does.
    public convenience init(
        configuration: PostgresClient.Configuration,
        options: Options = Options(),
        clock: @escaping @Sendable () -> Date = { Date() },
        logger: Logger = Logger(label: "crew.postgres")
    ) async throws {
        let endpoint = configuration.unixSocketPath ?? "\(configuration.host ?? "?"):\(configuration.port ?? 5432)"
        try await self.init(
            configuration: configuration, options: options, endpoint: endpoint, clock: clock, logger: logger)
    }

    init(
        configuration: PostgresClient.Configuration,
        options: Options,
        endpoint: String,
        clock: @escaping @Sendable () -> Date,
        logger: Logger
    ) async throws {
        var configuration = configuration
        configuration.options.maximumConnections = options.maximumConnections
        configuration.options.connectTimeout = options.connectTimeout
        if !configuration.options.additionalStartupParameters.contains(where: { $0.0 == "plan_cache_mode" }) {
            configuration.options.additionalStartupParameters.append(("plan_cache_mode", "force_generic_plan"))
        }
        self.configuration = configuration
        self.options = options
        self.clock = clock
        self.logger = logger
        self.endpoint = endpoint
        // The pool's own messages (a connection attempt given up when the broker closes) only from warnings up.
        var poolLogger = logger
        poolLogger.logLevel = max(logger.logLevel, .warning)
        self.client = PostgresClient(configuration: configuration, backgroundLogger: poolLogger)
        // The pool runs from now on (its requests wait until it does).
        let client = self.client
        tasks.withLock { $0.append(Task { await client.run() }) }
        // A first connection of its own: a wrong password or an unreachable server fails here, at once, instead
        // of leaving requests queued in the pool. It creates or checks the schema.
        let connection = try await Self.open(configuration, endpoint: endpoint, logger: logger)
        do {
            try await Self.migrate(connection, logger: logger)
            try? await connection.close()
        } catch {
            try? await connection.close()
            for task in tasks.withLock({ $0 }) { task.cancel() }
            throw Self.brokerError(error, endpoint: endpoint)
        }
    }

    deinit {
        for task in tasks.withLock({ $0 }) { task.cancel() }
    }

    /// Closes the broker's connections. Statements after it fail.
    public func close() {
        listening.store(3, ordering: .relaxed)  // No listener starts after this.
        for task in tasks.withLock({ $0 }) { task.cancel() }
    }

    static func open(_ configuration: PostgresClient.Configuration, endpoint: String, logger: Logger) async throws
        -> PostgresConnection
    {
        var connectionConfiguration: PostgresConnection.Configuration
        if let socket = configuration.unixSocketPath {
            connectionConfiguration = .init(
                unixSocketPath: socket, username: configuration.username, password: configuration.password,
                database: configuration.database)
        } else {
            connectionConfiguration = .init(
                host: configuration.host ?? "localhost", port: configuration.port ?? 5432,
                username: configuration.username,
                password: configuration.password, database: configuration.database, tls: .disable
            )
        }
        let timeout = configuration.options.connectTimeout.components
        connectionConfiguration.options.connectTimeout = .nanoseconds(
            timeout.seconds * 1_000_000_000 + timeout.attoseconds / 1_000_000_000)
        do {
            return try await PostgresConnection.connect(configuration: connectionConfiguration, id: 0, logger: logger)
        } catch {
            throw brokerError(error, endpoint: endpoint)
        }
    }
}

/// Rows handed from the task that read them to the one that waits (they are read-only from then on).
struct UncheckedRows: @unchecked Sendable {
    var rows: [PostgresRow]
}

/// A continuation resumed by whichever comes first: the answer or the timeout.
final class ResumeOnce: Sendable {
    private struct State {
        var continuation: CheckedContinuation<UncheckedRows, any Error>?
        var pending: Result<UncheckedRows, any Error>?
        var resumed = false
        var onResume: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())

    func arm(_ continuation: CheckedContinuation<UncheckedRows, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    /// Runs `action` once it has been resumed (at once if it already was).
    func onResume(_ action: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if state.resumed { return true }
            state.onResume = action
            return false
        }
        if now { action() }
    }

    /// Resumes with `result` unless it was resumed before; true if this call did.
    @discardableResult
    func resume(_ result: Result<UncheckedRows, any Error>) -> Bool {
        let (continuation, action) = state.withLock {
            state -> (CheckedContinuation<UncheckedRows, any Error>?, (@Sendable () -> Void)?) in
            guard !state.resumed else { return (nil, nil) }
            state.resumed = true
            return (state.continuation, state.onResume)
        }
        guard let continuation else { return false }
        continuation.resume(with: result)
        action?()
        return true
    }
}
