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
    /// (documented as soft there). The attempt fails with `CrewError.Code.timedOut`.
    public var timeLimit: Duration?
    /// The soft limit: the attempt is cancelled (cooperatively) and fails with `CrewError.Code.timedOut`.
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
