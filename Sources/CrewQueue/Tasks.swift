public import Crew
public import FoundationEssentials

/// How a task is queued, retried and limited.
public struct TaskOptions: Sendable {
    /// The queue its jobs wait in.
    public var queue: String
    /// Higher runs first.
    public var priority: Int
    /// How many times a failed attempt is retried (0: none).
    public var maxRetries: Int
    /// The wait before the first retry; it doubles each time, up to ``retryBackoffMax``.
    public var retryBackoff: Duration
    /// The longest wait between retries.
    public var retryBackoffMax: Duration
    /// Spreads retries at random over the whole backoff (Celery's `retry_jitter`), so failures do not retry in
    /// lockstep.
    public var retryJitter: Bool
    /// Which failures are retried (all when nil): Celery's `autoretry_for`.
    public var retryOn: (@Sendable (CrewError) -> Bool)?
    /// The hard limit of an attempt: a process worker is stopped, a thread's or coroutine's result is dropped
    /// (documented as soft there). The attempt fails with ``CrewError/Code/timedOut``.
    public var timeLimit: Duration?
    /// The soft limit: the attempt is cancelled (cooperatively) and fails with ``CrewError/Code/timedOut``.
    public var softTimeLimit: Duration?
    /// Jobs not started within this time after they were due expire instead of running.
    public var expires: Duration?
    /// How long an ended job and its result are kept (Celery's `result_expires`); for ever when nil.
    public var resultTTL: Duration?

    /// Options with defaults: the `default` queue, no retries, no limits.
    public init(
        queue: String = "default",
        priority: Int = 0,
        maxRetries: Int = 0,
        retryBackoff: Duration = .seconds(1),
        retryBackoffMax: Duration = .seconds(600),
        retryJitter: Bool = true,
        retryOn: (@Sendable (CrewError) -> Bool)? = nil,
        timeLimit: Duration? = nil,
        softTimeLimit: Duration? = nil,
        expires: Duration? = nil,
        resultTTL: Duration? = nil
    ) {
        self.queue = queue
        self.priority = priority
        self.maxRetries = maxRetries
        self.retryBackoff = retryBackoff
        self.retryBackoffMax = retryBackoffMax
        self.retryJitter = retryJitter
        self.retryOn = retryOn
        self.timeLimit = timeLimit
        self.softTimeLimit = softTimeLimit
        self.expires = expires
        self.resultTTL = resultTTL
    }

    /// When to retry after failed attempt number `attempt` (1 for the first), from `now`.
    public func retryTime(after attempt: Int, now: Date) -> Date {
        let base = JobRules.seconds(retryBackoff) * Double(1 << min(30, max(0, attempt - 1)))
        let capped = min(base, JobRules.seconds(retryBackoffMax))
        let wait = retryJitter ? Double.random(in: 0...capped) : capped
        return now.addingTimeInterval(wait)
    }
}

/// A registered function that runs as a queued task, with its options.
///
/// ```swift
/// enum Jobs {
///     static let resize = QueueTask(Work.resize, options: TaskOptions(maxRetries: 3))
/// }
/// let handle = try await client.enqueue(Jobs.resize, "photo.jpg")
/// ```
///
/// Arguments and results are stored as JSON, so the function's types must be JSON-codable.
public struct QueueTask<Arguments: Codable & Sendable, Result: Codable & Sendable>: AnyQueueTask {
    /// The function the task runs.
    public let function: Crew.Function<Arguments, Result>
    /// How it is queued, retried and limited.
    public let options: TaskOptions

    /// The task for `function`, with `options`.
    public init(_ function: Crew.Function<Arguments, Result>, options: TaskOptions = TaskOptions()) {
        self.function = function
        self.options = options
    }

    /// The task's name: its function's.
    public var name: String { function.name }

    /// Decodes the JSON arguments, runs the function on `executor`, encodes its result as JSON.
    public func run(arguments: String, on executor: Crew.Executor, timeout: Duration?) async throws -> String {
        let decoded: Arguments
        do {
            decoded = try JSONDecoder().decode(Arguments.self, from: Data(arguments.utf8))
        } catch {
            throw CrewError(
                .decodingFailed, "the job's arguments are not a \(Arguments.self): \(error)", function: name)
        }
        let value = try await executor.submit(function, decoded, timeout: timeout).value
        do {
            return String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
        } catch {
            throw CrewError(.encodingFailed, "the result did not encode as JSON: \(error)", function: name)
        }
    }
}

/// A task with its types erased, as a worker holds it.
public protocol AnyQueueTask: Sendable {
    /// The task's name.
    var name: String { get }
    /// How it is queued, retried and limited.
    var options: TaskOptions { get }
    /// Runs one attempt from JSON arguments to a JSON result.
    func run(arguments: String, on executor: Crew.Executor, timeout: Duration?) async throws -> String
}

/// Enqueues tasks and follows them: the producer's side of the durable queue.
public struct TaskClient: Sendable {
    /// Where jobs are stored.
    public let broker: any QueueBroker

    /// A client of `broker`.
    public init(broker: any QueueBroker) {
        self.broker = broker
    }

    /// Enqueues `task(args)`, to run now, after `countdown`, or at `eta`.
    ///
    /// - Throws: ``CrewError/Code/encodingFailed`` if the arguments do not encode as JSON; ``BrokerError``.
    @discardableResult
    public func enqueue<A, R>(
        _ task: QueueTask<A, R>,
        _ args: A,
        countdown: Duration? = nil,
        eta: Date? = nil
    ) async throws -> TaskHandle<R> {
        let job = try newJob(task, args, countdown: countdown, eta: eta)
        let mark = broker.signalMark(.results)
        try await broker.enqueue(job)
        return TaskHandle(id: job.id, broker: broker, resultsMark: mark)
    }

    /// Enqueues `task` once per item of `args`, all or none, in one transaction.
    @discardableResult
    public func enqueueMany<A, R>(_ task: QueueTask<A, R>, _ args: [A]) async throws -> [TaskHandle<R>] {
        let encoder = JSONEncoder()
        let jobs = try args.map { try newJob(task, $0, countdown: nil, eta: nil, encoder: encoder) }
        let mark = broker.signalMark(.results)
        try await broker.enqueue(jobs)
        return jobs.map { TaskHandle(id: $0.id, broker: broker, resultsMark: mark) }
    }

    /// The job ``enqueue(_:_:countdown:eta:)`` would store, without storing it: for a broker's own enqueue, such
    /// as the PostgreSQL broker's inside the caller's transaction.
    ///
    /// - Throws: ``CrewError`` `encodingFailed` if the arguments do not encode as JSON.
    public func job<A, R>(_ task: QueueTask<A, R>, _ args: A, countdown: Duration? = nil, eta: Date? = nil) throws
        -> NewJob
    {
        try newJob(task, args, countdown: countdown, eta: eta)
    }

    private func newJob<A, R>(
        _ task: QueueTask<A, R>, _ args: A, countdown: Duration?, eta: Date?, encoder: JSONEncoder = JSONEncoder()
    ) throws -> NewJob {
        let arguments: String
        do {
            arguments = String(decoding: try encoder.encode(args), as: UTF8.self)
        } catch {
            throw CrewError(.encodingFailed, "the arguments did not encode as JSON: \(error)", function: task.name)
        }
        let now = Date()
        let runAt = eta ?? countdown.map { now.addingTimeInterval(JobRules.seconds($0)) }
        return NewJob(
            name: task.name,
            arguments: arguments,
            queue: task.options.queue,
            priority: task.options.priority,
            maxAttempts: task.options.maxRetries + 1,
            runAt: runAt,
            expiresAt: task.options.expires.map { (runAt ?? now).addingTimeInterval(JobRules.seconds($0)) },
            resultTTL: task.options.resultTTL
        )
    }
}

/// A job enqueued by a ``TaskClient``: its id, its state, its result.
public struct TaskHandle<Result: Decodable & Sendable>: Sendable {
    /// The job's id.
    public let id: JobID
    /// Where it is stored.
    public let broker: any QueueBroker

    /// The broker's results mark from before the job was enqueued: no result of the job can have been signalled
    /// before it, so a first wait for it needs no look at the job first.
    let resultsMark: UInt64?

    /// A handle on job `id` of `broker`.
    public init(id: JobID, broker: any QueueBroker) {
        self.init(id: id, broker: broker, resultsMark: nil)
    }

    init(id: JobID, broker: any QueueBroker, resultsMark: UInt64?) {
        self.id = id
        self.broker = broker
        self.resultsMark = resultsMark
    }

    /// Where the job is now.
    public var state: JobState {
        get async throws {
            guard let job = try await broker.job(id) else { throw BrokerError(.invalidArgument, "no job \(id)") }
            return job.state
        }
    }

    /// Cancels the job if it has not ended; returns whether it did.
    @discardableResult
    public func cancel() async throws -> Bool {
        try await broker.cancel(id)
    }

    /// Waits for the job's result, at most `timeout` (no limit when nil).
    ///
    /// - Throws: ``CrewError/Code/remoteError`` with the last attempt's error if the job failed;
    ///   ``CrewError/Code/cancelled`` if it was cancelled or expired; ``CrewError/Code/timedOut``.
    public func result(timeout: Duration? = nil) async throws -> Result {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        if let resultsMark {
            // Marked before the job was enqueued: until a result is signalled after that, it cannot have ended.
            // Waiting for that wake-up first spares a look at the job that would find it still running (a round
            // trip to the database when it is a network away, taken while the worker needs it).
            var pause = Duration.milliseconds(50)
            if let deadline { pause = min(pause, max(deadline - ContinuousClock.now, .zero)) }
            await broker.awaitSignal(.results, after: resultsMark, timeout: pause)
        }
        while true {
            // Marked before the look, so that a job ending between the look and the wait is not missed.
            let mark = broker.signalMark(.results)
            guard let job = try await broker.job(id) else { throw BrokerError(.invalidArgument, "no job \(id)") }
            switch job.state {
            case .succeeded:
                do {
                    return try JSONDecoder().decode(Result.self, from: Data((job.result ?? "null").utf8))
                } catch {
                    throw CrewError(
                        .decodingFailed, "the job's result is not a \(Result.self): \(error)", function: job.name)
                }
            case .failed:
                let last = job.errors.last
                throw CrewError(
                    .remoteError,
                    "the job failed after \(job.attempts) attempt(s): \(last?.message ?? "no error recorded")",
                    remoteErrorType: last?.type,
                    function: job.name
                )
            case .cancelled, .expired:
                throw CrewError(.cancelled, "the job was \(job.state.rawValue)", function: job.name)
            default:
                if let deadline, ContinuousClock.now >= deadline {
                    throw CrewError(.timedOut, "the job had no result within \(timeout!)", function: job.name)
                }
                try Task.checkCancellation()
                // Brokers with wake-ups end the wait at once; the timeout is the fallback poll.
                var pause = Duration.milliseconds(50)
                if let deadline { pause = min(pause, max(deadline - ContinuousClock.now, .zero)) }
                await broker.awaitSignal(.results, after: mark, timeout: pause)
            }
        }
    }
}
