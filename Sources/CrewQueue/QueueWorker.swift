public import Crew
import FoundationEssentials
public import Logging
import Metrics
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Runs queued tasks: Celery's worker. It claims only as many jobs as it can start (or, with a
/// ``Configuration/prefetchMultiplier`` above 1, that many times as many), runs each on its executor
/// (processes, threads, coroutines or processes × coroutines), renews their leases while they run, retries
/// failures with backoff, and on ``stop()`` lets running jobs finish within a grace period before it gives the
/// rest back — nothing is lost.
///
/// ```swift
/// let worker = QueueWorker(broker: broker, tasks: [Jobs.resize], executor: try .processes(4))
/// try await worker.run()          // until stop(), or a graceful shutdown of its service group
/// ```
///
/// It reports through swift-metrics: the counter `crew.tasks` with a `state` dimension (`succeeded`, `retrying`,
/// `failed`, `lost`) and the timer `crew.task.duration` (per attempt, with a `task` dimension).
///
/// It is a swift-service-lifecycle `Service`: in a `ServiceGroup` with `gracefulShutdownSignals: [.sigterm,
/// .sigint]`, SIGTERM and SIGINT stop it as ``stop()`` does.
public final class QueueWorker: Service, Sendable {
    /// How a worker claims and runs.
    public struct Configuration: Sendable {
        /// The queues it takes jobs from.
        public var queues: [String]
        /// How many jobs it runs at once; nil (the default): as many as its executor runs at once (its processes,
        /// times their coroutines; its threads; its coroutines), as Celery's `-c` is the pool's size.
        public var concurrency: Int?
        /// How many jobs it holds at once, as a multiple of ``concurrency``: Celery's
        /// `worker_prefetch_multiplier`. At 1 (the default) it claims a job only when a slot is free to run it,
        /// which spreads jobs fairly over workers whatever they cost. Above 1 it claims ahead, so a slot that
        /// ends a job starts the next at once instead of waiting for a claim: worth it when jobs are short and
        /// the broker is a network round trip away (PostgreSQL). Jobs claimed ahead hold leases like running
        /// ones; ``QueueWorker/stop()`` gives them back at once.
        public var prefetchMultiplier: Int
        /// How long a claimed job stays its own without a renewal.
        public var lease: Duration
        /// How often it renews its leases (well within ``lease``).
        public var heartbeat: Duration
        /// How long it waits before looking for jobs again when it found none.
        public var pollInterval: Duration
        /// How long running jobs may go on after ``QueueWorker/stop()`` before their leases are given back.
        public var gracePeriod: Duration
        /// The worker's name in the jobs it runs: host and pid unless given.
        public var name: String

        /// A configuration with defaults: the `default` queue, as many at once as the executor runs, 30 s leases
        /// renewed every 10 s.
        public init(
            queues: [String] = ["default"],
            concurrency: Int? = nil,
            lease: Duration = .seconds(30),
            heartbeat: Duration = .seconds(10),
            pollInterval: Duration = .milliseconds(20),
            gracePeriod: Duration = .seconds(30),
            name: String? = nil,
            prefetchMultiplier: Int = 1
        ) {
            self.prefetchMultiplier = prefetchMultiplier
            self.queues = queues
            self.concurrency = concurrency
            self.lease = lease
            self.heartbeat = heartbeat
            self.pollInterval = pollInterval
            self.gracePeriod = gracePeriod
            self.name = name ?? Self.defaultName()
        }

        static func defaultName() -> String {
            var host = [CChar](repeating: 0, count: 256)
            gethostname(&host, host.count - 1)
            let name = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return "\(name):\(getpid())"
        }
    }

    /// Where jobs come from.
    public let broker: any QueueBroker
    /// How many jobs it runs at once: the configuration's ``Configuration/concurrency``, or its executor's size.
    public let concurrency: Int
    /// What runs them.
    public let executor: Crew.Executor
    /// How it claims and runs.
    public let configuration: Configuration
    private let tasks: [String: any AnyQueueTask]
    private let logger: Logger
    private let state = Mutex(State())
    /// Set when a job stops running (its outcome may still be being recorded): a worker at capacity waits on it
    /// to claim again at once.
    private let slotFreed = AsyncEvent()
    /// Records the outcomes of jobs that end together in one write.
    private let outcomes: GroupCommit<JobOutcome, JobState?>

    private struct State {
        var stopping = false
        /// The jobs this worker holds (running, or ended and their outcome not yet recorded), with their tasks
        /// once made. Their leases are renewed until the outcome is recorded.
        var running: [JobID: Task<Void, Never>?] = [:]
        /// The jobs whose task is running now: each takes one of ``Configuration/concurrency``'s slots. A job
        /// frees its slot when its task ends, not when its outcome is recorded: a broker a network away takes
        /// a round trip for that, during which the slot can run the next job.
        var executing: Set<JobID> = []
        /// Jobs claimed ahead (see ``Configuration/prefetchMultiplier``), in the order they were claimed.
        var prefetched: [JobRecord] = []
        var prefetchedHead = 0

        var prefetchedCount: Int { prefetched.count - prefetchedHead }

        mutating func takePrefetched() -> JobRecord? {
            guard prefetchedHead < prefetched.count else { return nil }
            defer {
                prefetchedHead += 1
                if prefetchedHead == prefetched.count {
                    prefetched.removeAll(keepingCapacity: true)
                    prefetchedHead = 0
                }
            }
            return prefetched[prefetchedHead]
        }
    }

    /// A worker for `tasks`, taking jobs from `broker` and running them on `executor`.
    public init(
        broker: any QueueBroker,
        tasks: [any AnyQueueTask],
        executor: Crew.Executor,
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "crew.worker")
    ) {
        self.broker = broker
        self.executor = executor
        self.configuration = configuration
        self.concurrency = configuration.concurrency ?? executor.capacity
        self.tasks = Dictionary(tasks.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.logger = logger
        let name = configuration.name
        self.outcomes = GroupCommit { [broker] batch in try await broker.record(batch, worker: name) }
    }

    /// Jobs this worker holds now: running, or ended with their outcome being recorded.
    public var running: Int { state.withLock { $0.running.count } }

    /// Claims and runs jobs until ``stop()``; then waits for the running ones (up to the grace period) and gives
    /// back the leases of any still running.
    ///
    /// - Throws: ``BrokerError`` `invalidArgument` if the configuration's concurrency or prefetch multiplier is
    ///   below 1, or its lease is not longer than its heartbeat (the leases would lapse while jobs run).
    public func run() async throws {
        if concurrency < 1 || configuration.prefetchMultiplier < 1 {
            throw BrokerError(
                .invalidArgument,
                "a worker needs a concurrency and a prefetch multiplier of at least 1, "
                    + "not \(concurrency) and \(configuration.prefetchMultiplier)")
        }
        if configuration.lease <= configuration.heartbeat {
            throw BrokerError(
                .invalidArgument,
                "a worker's lease (\(configuration.lease)) must be longer than its "
                    + "heartbeat (\(configuration.heartbeat)), which renews it")
        }
        try await withGracefulShutdownHandler {
            try await serve()
        } onGracefulShutdown: {
            self.stop()
        }
    }

    private func serve() async throws {
        logger.info(
            "worker ready",
            metadata: [
                "worker": "\(configuration.name)", "queues": "\(configuration.queues.joined(separator: ","))",
                // The pool as it is (`processes=2`), and how many jobs run at once on it.
                "pool": "\(executor)", "concurrency": "\(concurrency)",
                "prefetch_multiplier": "\(configuration.prefetchMultiplier)",
            ])
        let heartbeat = Task { await self.heartbeatLoop() }
        defer { heartbeat.cancel() }
        var lastReap = ContinuousClock.now - .seconds(3600)
        var backoff = Duration.milliseconds(100)
        while !state.withLock({ $0.stopping }) {
            do {
                try await claimOnce(lastReap: &lastReap)
                backoff = .milliseconds(100)
            } catch {
                // The broker is away (a database restart, a full disk): log, back off, try again. Running jobs go
                // on; their results are recorded once it is back (see record(_:)).
                logger.error(
                    "the broker failed; trying again",
                    metadata: ["error": "\(String(reflecting: error))", "retry_in": "\(backoff)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
        try await drain()
    }

    /// One turn of the claim loop: reaps now and then, claims what it can start, or waits for a wake-up.
    private func claimOnce(lastReap: inout ContinuousClock.Instant) async throws {
        if ContinuousClock.now - lastReap > configuration.heartbeat {
            lastReap = ContinuousClock.now
            let reaped = try await broker.reapExpiredLeases()
            if reaped > 0 {
                logger.warning("returned jobs whose worker stopped renewing", metadata: ["count": "\(reaped)"])
            }
            let deleted = try await broker.deleteExpiredResults()
            if deleted > 0 { logger.debug("deleted jobs past their result TTL", metadata: ["count": "\(deleted)"]) }
        }
        let holds = concurrency * max(1, configuration.prefetchMultiplier)
        func room() -> Int { state.withLock { holds - $0.executing.count - $0.prefetchedCount } }
        var free = room()
        if free <= 0 {
            // At capacity: wait for a running job to end (not for the poll interval).
            slotFreed.clear()
            free = room()
            if free <= 0 {
                await slotFreed.wait(timeout: configuration.pollInterval)
                return
            }
        }
        let mark = broker.signalMark(.jobs)
        let claimed = try await broker.claim(
            queues: configuration.queues,
            limit: free,
            worker: configuration.name,
            lease: configuration.lease
        )
        for job in claimed { startOrHold(job) }
        if claimed.isEmpty {
            // Idle: wait for a wake-up from the broker, looking again at most every poll interval.
            await broker.awaitSignal(.jobs, after: mark, timeout: configuration.pollInterval)
        }
    }

    /// Records an outcome, trying again while the broker is away, for as long as a lease lasts (after that the
    /// job has gone back to the queue and will run again anyway). Nil if it could not be recorded or the
    /// lease was lost.
    private func record(_ outcome: JobOutcome) async -> JobState? {
        let deadline = ContinuousClock.now + configuration.lease
        var backoff = Duration.milliseconds(50)
        while true {
            do {
                return try await outcomes.submit(outcome)
            } catch {
                guard ContinuousClock.now + backoff < deadline else {
                    logger.error(
                        "could not record a job's outcome; it runs again once its lease expires",
                        metadata: [
                            "job": "\(outcome.id)", "error": "\(String(reflecting: error))",
                        ])
                    return nil
                }
                logger.warning(
                    "could not record a job's outcome; trying again",
                    metadata: [
                        "job": "\(outcome.id)", "error": "\(String(reflecting: error))", "retry_in": "\(backoff)",
                    ])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(2))
            }
        }
    }

    /// Stops claiming. ``run()`` then lets the running jobs finish (within the grace period) and returns.
    public func stop() {
        state.withLock { $0.stopping = true }
    }

    /// Starts `job` if a slot is free, else keeps it for the next free slot.
    private func startOrHold(_ job: JobRecord) {
        let startNow = state.withLock { state in
            if state.executing.count < concurrency && state.prefetchedCount == 0 { return true }
            state.prefetched.append(job)
            return false
        }
        if startNow { start(job) }
    }

    /// Starts jobs claimed ahead while slots are free.
    private func startPrefetched() {
        while let job = state.withLock({ state -> JobRecord? in
            guard !state.stopping, state.executing.count < concurrency else { return nil }
            return state.takePrefetched()
        }) {
            start(job)
        }
    }

    private func start(_ job: JobRecord) {
        // Counted as running before its task exists: a job that ends at once must not be counted after it.
        state.withLock { state in
            state.running[job.id] = .some(nil)
            state.executing.insert(job.id)
        }
        let task = Task {
            await self.execute(job)
            self.ended(job)  // Already said, unless `execute` returned some other way; frees the slot.
            self.state.withLock { _ = $0.running.removeValue(forKey: job.id) }
        }
        state.withLock { state in
            if state.running[job.id] != nil { state.running[job.id] = task }
        }
    }

    private func drain() async throws {
        // Jobs claimed ahead never started: they go back at once (their attempt not counted).
        let unstarted = state.withLock { state in
            var jobs: [JobID] = []
            while let job = state.takePrefetched() { jobs.append(job.id) }
            return jobs
        }
        if !unstarted.isEmpty {
            do {
                try await broker.release(unstarted, worker: configuration.name)
                logger.info("gave back jobs claimed ahead", metadata: ["count": "\(unstarted.count)"])
            } catch {
                // The running jobs are still waited for; these come back when their leases expire.
                logger.error(
                    "could not give back jobs claimed ahead; they run once their leases expire",
                    metadata: [
                        "count": "\(unstarted.count)", "error": "\(String(reflecting: error))",
                    ])
            }
        }
        let deadline = ContinuousClock.now + configuration.gracePeriod
        while running > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let left = state.withLock { state in state.running }
        guard !left.isEmpty else {
            logger.info("worker stopped", metadata: ["worker": "\(configuration.name)"])
            return
        }
        // Past the grace period: give the jobs back (their attempt not counted) and stop waiting for them.
        try await broker.release(Array(left.keys), worker: configuration.name)
        for task in left.values { task?.cancel() }
        logger.warning(
            "gave back jobs still running at the end of the grace period", metadata: ["count": "\(left.count)"])
    }

    private func heartbeatLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.heartbeat)
            let ids = state.withLock { state in
                Array(state.running.keys) + state.prefetched[state.prefetchedHead...].map(\.id)
            }
            guard !ids.isEmpty else { continue }
            do {
                let held = try await broker.renew(ids, worker: configuration.name, lease: configuration.lease)
                if held.count < ids.count {
                    logger.warning(
                        "lost the leases of some running jobs", metadata: ["count": "\(ids.count - held.count)"])
                }
            } catch {
                logger.error("could not renew leases", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    /// The task of `job` has ended: its slot may run another job while the outcome is being recorded.
    private func ended(_ job: JobRecord) {
        guard state.withLock({ $0.executing.remove(job.id) }) != nil else { return }
        startPrefetched()
        slotFreed.set()
    }

    /// Runs one attempt of `job` and records its outcome.
    private func execute(_ job: JobRecord) async {
        let started = ContinuousClock.now
        guard let task = tasks[job.name] else {
            ended(job)
            let error = AttemptError(
                attempt: job.attempts, message: "no task named \"\(job.name)\" is registered with this worker",
                type: "unknownTask")
            _ = await record(JobOutcome(job.id, error: error, retryAt: nil))
            logger.error("unknown task", metadata: ["job": "\(job.id)", "task": "\(job.name)"])
            return
        }
        do {
            let result: String
            if let soft = task.options.softTimeLimit {
                result = try await Crew.withTimeout(soft) {
                    try await task.run(arguments: job.arguments, on: self.executor, timeout: task.options.timeLimit)
                }
            } else {
                result = try await task.run(arguments: job.arguments, on: executor, timeout: task.options.timeLimit)
            }
            ended(job)
            let recorded = await record(JobOutcome(job.id, result: result)) != nil
            Self.measure(job, state: recorded ? "succeeded" : "lost", since: started)
            // One line per job at debug level (a worker may run millions); a lost result is worth a warning.
            logger.log(
                level: recorded ? .debug : .warning,
                recorded ? "task succeeded" : "task finished after its lease was lost; result dropped",
                metadata: [
                    "job": "\(job.id)", "task": "\(job.name)",
                    "seconds": "\(Self.seconds(ContinuousClock.now - started))",
                ])
        } catch {
            ended(job)
            await recordFailure(job, task: task, error: error, started: started)
        }
    }

    private static func measure(_ job: JobRecord, state: String, since started: ContinuousClock.Instant) {
        Counter(label: "crew.tasks", dimensions: [("state", state)]).increment()
        let elapsed = ContinuousClock.now - started
        Metrics.Timer(label: "crew.task.duration", dimensions: [("task", job.name)])
            .recordNanoseconds(
                elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }

    private func recordFailure(
        _ job: JobRecord, task: any AnyQueueTask, error: any Error, started: ContinuousClock.Instant
    ) async {
        // A declared error arrives as itself: the retry filter and the record see it as the CrewError it stands for
        // (`remoteError`, holding it).
        var crewError = error as? CrewError
        if crewError == nil, let codec = DeclaredErrors.codec(for: error) {
            var standIn = CrewError(
                .remoteError, "\(codec.name): \(error)", remoteErrorType: codec.name, function: job.name)
            standIn.thrown = codec.cast(error)
            crewError = standIn
        }
        let message = crewError.map { "\($0.code): \($0.message)" } ?? "\(error)"
        let type =
            crewError?.remoteErrorType ?? crewError.map { "CrewError.\($0.code)" }
            ?? String(reflecting: Swift.type(of: error))
        let attempt = AttemptError(
            attempt: job.attempts, message: message, type: type, value: encodedDeclaredError(error, job: job))
        let retryable = task.options.retryOn.map { filter in crewError.map(filter) ?? false } ?? true
        let retryAt =
            retryable && job.attempts < job.maxAttempts
            ? task.options.retryTime(after: job.attempts, now: Date()) : nil
        let state = await record(JobOutcome(job.id, error: attempt, retryAt: retryAt))
        Self.measure(job, state: state?.rawValue ?? "lost", since: started)
        logger.warning(
            "task failed",
            metadata: [
                "job": "\(job.id)", "task": "\(job.name)", "attempt": "\(job.attempts)",
                "state": "\(state?.rawValue ?? "lease lost")", "error": "\(String(reflecting: error))",
            ])
    }

    /// The error the task's function threw, encoded, if it declared the error's type (its handle then rethrows it
    /// as itself). An error that does not encode is logged and kept as its message alone.
    private func encodedDeclaredError(_ error: any Error, job: JobRecord) -> String? {
        // The executor rethrows a declared error as itself; a CrewError may hold one too.
        let thrown: any Error = (error as? CrewError)?.thrown ?? error
        guard let codec = DeclaredErrors.codec(for: thrown) else { return nil }
        do {
            return try codec.encode(thrown).map { Data($0).base64EncodedString() }
        } catch {
            logger.warning(
                "a declared error did not encode; the job keeps its message only",
                metadata: ["job": "\(job.id)", "task": "\(job.name)", "error": "\(String(reflecting: error))"])
            return nil
        }
    }

    private static func seconds(_ duration: Duration) -> String {
        "\((JobRules.seconds(duration) * 1000).rounded() / 1000)"
    }
}
