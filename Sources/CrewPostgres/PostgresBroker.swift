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
    private let configuration: PostgresClient.Configuration
    private let options: Options
    private let clock: @Sendable () -> Date
    private let logger: Logger
    private let signals = BrokerSignals()
    /// Jobs claimed, ended or deleted since the last vacuum (see ``Options/vacuumEvery``).
    private let churn = Atomic<Int>(0)
    private let vacuum = Mutex(VacuumState())

    private struct VacuumState {
        var running = false
        var last: ContinuousClock.Instant?
    }
    private let tasks = Mutex<[Task<Void, Never>]>([])
    /// The channels this broker listens on (bit 0: jobs, bit 1: results), each from the first time it is waited
    /// for: a worker hears of new jobs, a producer waiting for results of ended ones, and neither of the other's
    /// notifications.
    private let listening = Atomic<UInt8>(0)
    /// Where the server is, for messages.
    public let endpoint: String

    /// Connects to the database `url` names, creating or migrating Crew's schema.
    ///
    /// `postgres://user:password@host:port/database`; a Unix socket with `?host=/path/to/socket/directory` (the
    /// directory holding `.s.PGSQL.5432`). Options in the URL: `notifications=off`, `connections=N`.
    ///
    /// - Throws: ``BrokerError`` `unavailable` if the server cannot be reached or refuses the credentials (within
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
    /// - Throws: ``BrokerError`` as ``connect(url:clock:logger:)`` does.
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

    private init(
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

    // MARK: Errors

    /// A broker error for what postgres-nio threw.
    static func brokerError(_ error: any Error, endpoint: String) -> BrokerError {
        if let error = error as? BrokerError { return error }
        if let error = error as? PostgresTransactionError {
            return brokerError(
                error.closureError ?? error.beginError ?? error.commitError ?? error.rollbackError ?? error,
                endpoint: endpoint)
        }
        guard let error = error as? PSQLError else {
            return BrokerError(.unavailable, "PostgreSQL at \(endpoint): \(error)")
        }
        let state = error.serverInfo?[.sqlState]
        let message = error.serverInfo?[.message] ?? "\(error.code)"
        switch state {
        case "23505": return BrokerError(.duplicateJob, "a job with that id already exists (\(message))")
        case "28P01", "28000":
            return BrokerError(.unavailable, "PostgreSQL at \(endpoint) refused the credentials: \(message)")
        case "3D000": return BrokerError(.unavailable, "PostgreSQL at \(endpoint): \(message)")
        case "53100":
            return BrokerError(.storage, "the database server's disk is full: nothing was written (\(message))")
        case "25006": return BrokerError(.storage, "the database is read-only: \(message)")
        case .some(let code) where code.hasPrefix("08") || code.hasPrefix("57P"):
            return BrokerError(.unavailable, "PostgreSQL at \(endpoint) went away: \(message)")
        case .some(let code):
            return BrokerError(.storage, "PostgreSQL at \(endpoint): \(message) (SQLSTATE \(code))")
        case nil:
            if let underlying = error.underlying {
                return BrokerError(.unavailable, "cannot reach PostgreSQL at \(endpoint): \(underlying)")
            }
            return BrokerError(.unavailable, "PostgreSQL at \(endpoint): \(error.code)")
        }
    }

    // MARK: Schema

    /// Creates the schema, or checks that the database's is one this code knows and brings it up to date. Two
    /// processes starting at once take turns (an advisory lock held for the migration's transaction).
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(7243519086)", logger: logger)
            let exists =
                try await connection.query(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'crew_schema'",
                    logger: logger
                ).collect().first?.decode(Int.self) ?? 0
            var version = 0
            if exists > 0 {
                version =
                    try await connection.query("SELECT version FROM crew_schema", logger: logger)
                    .collect().first?.decode(Int.self) ?? 0
                guard version <= schemaVersion else {
                    throw BrokerError(
                        .incompatibleSchema,
                        "the database has Crew schema version \(version), newer than this Crew's \(schemaVersion): upgrade Crew"
                    )
                }
            }
            for step in migrations.dropFirst(version) {
                for statement in step {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
            }
            if version < schemaVersion {
                try await connection.query("UPDATE crew_schema SET version = \(schemaVersion)", logger: logger)
            }
        }
    }

    /// The schema's history: step i brings version i to i + 1 (one statement per string).
    static let migrations: [[String]] = [
        [
            "CREATE TABLE crew_schema (version bigint NOT NULL)",
            "INSERT INTO crew_schema (version) VALUES (1)",
            """
            CREATE TABLE crew_jobs (
                seq bigserial NOT NULL,
                id text PRIMARY KEY,
                name text NOT NULL,
                arguments text NOT NULL,
                queue text NOT NULL,
                priority bigint NOT NULL DEFAULT 0,
                state text NOT NULL CHECK (state IN
                    ('scheduled', 'available', 'running', 'succeeded', 'retrying', 'failed', 'cancelled', 'expired')),
                attempts bigint NOT NULL DEFAULT 0,
                max_attempts bigint NOT NULL DEFAULT 1,
                run_at double precision NOT NULL,
                expires_at double precision,
                lease_until double precision,
                worker text,
                result text,
                errors text NOT NULL DEFAULT '[]',
                created_at double precision NOT NULL,
                finished_at double precision,
                result_ttl double precision
            )
            """,
            "CREATE TABLE crew_schedules (name text PRIMARY KEY, next_run double precision NOT NULL)",
            // Partial indexes, each holding only the jobs its statement looks for.
            "CREATE INDEX crew_jobs_available ON crew_jobs (queue, priority DESC, run_at, seq) WHERE state = 'available'",
            "CREATE INDEX crew_jobs_waiting ON crew_jobs (run_at) WHERE state IN ('scheduled', 'retrying')",
            "CREATE INDEX crew_jobs_leases ON crew_jobs (lease_until) WHERE state = 'running'",
            """
            CREATE INDEX crew_jobs_waiting_expiry ON crew_jobs (expires_at)
                WHERE expires_at IS NOT NULL AND state IN ('scheduled', 'available', 'retrying')
            """,
            """
            CREATE INDEX crew_jobs_ttl ON crew_jobs ((finished_at + result_ttl))
                WHERE result_ttl IS NOT NULL AND finished_at IS NOT NULL
            """,
            // An error history as JSON; one edited by hand into something else is kept as a message, not a failure.
            """
            CREATE FUNCTION crew_errors(history text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
            BEGIN
                IF jsonb_typeof(history::jsonb) = 'array' THEN RETURN history::jsonb; END IF;
                RETURN jsonb_build_array(jsonb_build_object('attempt', 0, 'message', 'unreadable error history: ' || left(history, 200), 'at', 0));
            EXCEPTION WHEN others THEN
                RETURN jsonb_build_array(jsonb_build_object('attempt', 0, 'message', 'unreadable error history: ' || left(history, 200), 'at', 0));
            END
            $$
            """,
            // Wake-ups: an insert notifies crew_jobs once per statement; an update notifies crew_jobs for a row
            // that became available and crew_results for one that ended (row triggers whose WHEN is false cost
            // nothing, so claims and lease renewals pay nothing; PostgreSQL folds a transaction's equal
            // notifications into one). Triggers, so that a job inserted by another program wakes workers too.
            """
            CREATE FUNCTION crew_notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('crew_jobs', '');
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE FUNCTION crew_notify_results() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('crew_results', '');
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE TRIGGER crew_jobs_inserted AFTER INSERT ON crew_jobs
                FOR EACH STATEMENT EXECUTE FUNCTION crew_notify_jobs()
            """,
            """
            CREATE TRIGGER crew_jobs_available AFTER UPDATE OF state ON crew_jobs
                FOR EACH ROW WHEN (NEW.state = 'available' AND OLD.state <> 'available') EXECUTE FUNCTION crew_notify_jobs()
            """,
            """
            CREATE TRIGGER crew_jobs_ended AFTER UPDATE OF state ON crew_jobs
                FOR EACH ROW WHEN (NEW.state IN ('succeeded', 'failed', 'cancelled', 'expired'))
                EXECUTE FUNCTION crew_notify_results()
            """,
        ]
    ]

    // MARK: Wake-ups

    /// Starts listening for `signal`'s notifications, the first time it is asked for.
    private func listen(for signal: BrokerSignal) {
        let bit: UInt8 = signal == .jobs ? 1 : 2
        guard options.notifications, listening.load(ordering: .relaxed) & bit == 0 else { return }
        guard listening.bitwiseOr(bit, ordering: .relaxed).oldValue & bit == 0 else { return }
        // Holds no reference to the broker: dropping the broker ends it (deinit cancels it).
        let task = Task { [signals, configuration, endpoint, logger] in
            await Self.listen(
                signal, signals: signals, configuration: configuration, endpoint: endpoint, logger: logger)
        }
        tasks.withLock { $0.append(task) }
    }

    /// Listens for the triggers' notifications of `signal` on a connection of its own, and reconnects (backing
    /// off) when it drops. Every (re)connection raises the signal: what happened while it was away (or before it
    /// first listened) is looked at again.
    private static func listen(
        _ signal: BrokerSignal,
        signals: BrokerSignals,
        configuration: PostgresClient.Configuration,
        endpoint: String,
        logger: Logger
    ) async {
        let channel = signal == .jobs ? "crew_jobs" : "crew_results"
        var backoff = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                let connection = try await open(configuration, endpoint: endpoint, logger: logger)
                defer { Task { try? await connection.close() } }
                try await connection.listen(on: channel) { notifications in
                    signals.raise(signal)
                    backoff = .milliseconds(100)
                    for try await _ in notifications { signals.raise(signal) }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning(
                    "lost the PostgreSQL notifications connection; reconnecting",
                    metadata: [
                        "channel": "\(channel)", "error": "\(brokerError(error, endpoint: endpoint))",
                        "retry_in": "\(backoff)",
                    ])
            }
            signals.raise(signal)
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
    }

    /// Wake-ups of `signal` this process has seen.
    public func signalMark(_ signal: BrokerSignal) -> UInt64 {
        signals.mark(signal)
    }

    /// Returns once a notification of `signal` arrived after `mark`, or after `timeout` (the fallback poll). The
    /// first wait for a signal starts listening for it (which raises it once listening, for what it may have
    /// missed): a process that only enqueues never listens.
    public func awaitSignal(_ signal: BrokerSignal, after mark: UInt64, timeout: Duration) async {
        listen(for: signal)
        await signals.wait(signal, after: mark, timeout: timeout)
    }

    // MARK: Statements

    private func run(_ query: PostgresQuery) async throws -> [PostgresRow] {
        let (client, logger) = (self.client, self.logger)
        return try await answered { try await client.query(query, logger: logger).collect() }
    }

    private func run<Statement: CrewStatement>(_ statement: Statement) async throws -> [PostgresRow] {
        let (client, logger) = (self.client, self.logger)
        return try await answered {
            var rows: [PostgresRow] = []
            for try await row in try await client.execute(statement, logger: logger) { rows.append(row) }
            return rows
        }
    }

    /// Runs a statement, failing with `unavailable` if it has no answer within the statement timeout. The
    /// statement runs in a task of its own, so that one left without an answer is abandoned, not awaited.
    private func answered(_ body: @escaping @Sendable () async throws -> [PostgresRow]) async throws -> [PostgresRow] {
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
                errors: errors == "[]"
                    ? [] : (try? JSONDecoder().decode([AttemptError].self, from: Data(errors.utf8))) ?? [],
                createdAt: Date(timeIntervalSince1970: createdAt),
                finishedAt: finishedAt.map(Date.init(timeIntervalSince1970:))
            )
        } catch {
            logger.error("skipped a job row that does not read as a job", metadata: ["error": "\(error)"])
            return nil
        }
    }

    // MARK: Broker

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

    private func insert(_ jobs: [NewJob]) throws -> InsertJobs {
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

    /// Claims up to `limit` available jobs in one statement; rows other workers hold are skipped, not waited for.
    public func claim(queues: [String], limit: Int, worker: String, lease: Duration) async throws -> [JobRecord] {
        guard limit > 0, !queues.isEmpty else { return [] }
        let now = clock().timeIntervalSince1970
        let until = now + JobRules.seconds(lease)
        var claimed: [JobRecord] = []
        for _ in 0..<2 {
            let rows = try await run(
                ClaimJobs(until: until, worker: worker, queues: queues, now: now, limit: limit - claimed.count))
            var moved = 0
            for row in rows {
                let columns = row.makeRandomAccess()
                moved = (try? columns[16].decode(Int.self)) ?? 0
                // The row that only reports the count has no id.
                if (try? columns[0].decode(String?.self)) != nil, let job = record(row) { claimed.append(job) }
            }
            // Again only if the first statement made jobs available that it could not claim itself.
            guard moved > 0, claimed.count < limit else { break }
        }
        noteChurn(claimed.count)
        return claimed.sorted {
            ($0.priority, $1.runAt, $1.createdAt) > ($1.priority, $0.runAt, $0.createdAt)
        }
    }

    /// Counts jobs claimed, ended or deleted, and starts a vacuum of the jobs table when enough have been (see
    /// ``Options/vacuumEvery``).
    private func noteChurn(_ count: Int) {
        guard count > 0, let every = options.vacuumEvery else { return }
        guard churn.wrappingAdd(count, ordering: .relaxed).newValue >= max(1, every) else { return }
        let start = vacuum.withLock { state -> Bool in
            guard !state.running, state.last.map({ ContinuousClock.now - $0 >= .seconds(1) }) ?? true else {
                return false
            }
            state.running = true
            return true
        }
        guard start else { return }
        churn.store(0, ordering: .relaxed)
        Task { [self] in
            do {
                // SKIP_LOCKED: if another process vacuums the table now, this one does not wait for it.
                _ = try await client.query("VACUUM (SKIP_LOCKED) crew_jobs", logger: logger).collect()
            } catch {
                logger.notice("could not vacuum crew_jobs; autovacuum will", metadata: ["error": "\(error)"])
            }
            vacuum.withLock { state in
                state.running = false
                state.last = .now
            }
        }
    }

    /// Extends the leases `worker` holds on these jobs; returns the ids it still holds.
    public func renew(_ ids: [JobID], worker: String, lease: Duration) async throws -> [JobID] {
        guard !ids.isEmpty else { return [] }
        let until = clock().timeIntervalSince1970 + JobRules.seconds(lease)
        let rows = try await run(RenewLeases(until: until, ids: ids.map(\.rawValue), worker: worker))
        let held = Set(rows.compactMap { try? $0.decode(String.self) })
        return ids.filter { held.contains($0.rawValue) }
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

    /// Gives jobs back without counting their attempt.
    public func release(_ ids: [JobID], worker: String) async throws {
        guard !ids.isEmpty else { return }
        _ = try await run(
            """
            UPDATE crew_jobs SET state = 'available', attempts = attempts - 1, lease_until = NULL
            WHERE id = ANY(\(ids.map(\.rawValue))) AND state = 'running' AND worker = \(worker)
            """)
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

    /// The job, if it exists.
    public func job(_ id: JobID) async throws -> JobRecord? {
        try await run(FetchJob(id: id.rawValue)).first.flatMap(record)
    }

    /// Returns running jobs whose lease has expired (or that have no lease: a row edited by hand); how many.
    public func reapExpiredLeases() async throws -> Int {
        let now = clock()
        // An AttemptError as JSONEncoder writes it (`at` in seconds since 2001).
        let rows = try await run(
            """
            UPDATE crew_jobs SET
                state = CASE WHEN attempts < max_attempts THEN 'available' ELSE 'failed' END,
                errors = (crew_errors(errors) || jsonb_build_array(jsonb_build_object(
                    'attempt', attempts,
                    'message', 'the worker ' || coalesce(worker, '?') || ' stopped renewing its lease (it died or hung)',
                    'at', \(now.timeIntervalSinceReferenceDate))))::text,
                finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE \(now.timeIntervalSince1970) END,
                lease_until = NULL
            WHERE id = ANY(ARRAY(
                SELECT id FROM crew_jobs
                WHERE state = 'running' AND (lease_until IS NULL OR lease_until < \(now.timeIntervalSince1970))
                FOR UPDATE SKIP LOCKED))
            RETURNING id
            """)
        return rows.count
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

    /// Deletes the waiting jobs of a queue.
    public func purge(queue: String) async throws -> Int {
        let purged = try await run(
            """
            DELETE FROM crew_jobs WHERE queue = \(queue) AND state IN ('scheduled', 'available', 'retrying') RETURNING id
            """
        ).count
        noteChurn(purged)
        return purged
    }

    /// Deletes ended jobs whose result TTL has passed.
    public func deleteExpiredResults() async throws -> Int {
        let now = clock().timeIntervalSince1970
        let deleted = try await run(
            """
            DELETE FROM crew_jobs
            WHERE result_ttl IS NOT NULL AND finished_at IS NOT NULL AND (finished_at + result_ttl) <= \(now)
            AND state IN ('succeeded', 'failed', 'cancelled', 'expired')
            RETURNING id
            """
        ).count
        noteChurn(deleted)
        return deleted
    }

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
