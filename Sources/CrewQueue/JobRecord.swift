import CCrewShims
public import FoundationEssentials
import Synchronization

/// A job as the broker stores it.
public struct JobRecord: Sendable, Codable, Equatable {
    /// Its id.
    public var id: JobID
    /// The registered function's name.
    public var name: String
    /// The arguments, as JSON.
    public var arguments: String
    /// The queue it waits in.
    public var queue: String
    /// Higher runs first.
    public var priority: Int
    /// Where it is in its life.
    public var state: JobState
    /// Attempts started so far.
    public var attempts: Int
    /// How many attempts it may have.
    public var maxAttempts: Int
    /// When it may run (for `scheduled` and `retrying` jobs: when it becomes available).
    public var runAt: Date
    /// When it expires instead of running, if ever.
    public var expiresAt: Date?
    /// Until when its worker holds it (for `running` jobs).
    public var leaseUntil: Date?
    /// The worker running it, or that ran it last.
    public var worker: String?
    /// The result, as JSON, once it has succeeded.
    public var result: String?
    /// Every failed attempt, oldest first.
    public var errors: [AttemptError]
    /// When it was enqueued.
    public var createdAt: Date
    /// When it reached a final state.
    public var finishedAt: Date?

    /// A record with every field given (for brokers).
    public init(
        id: JobID, name: String, arguments: String, queue: String, priority: Int, state: JobState, attempts: Int,
        maxAttempts: Int, runAt: Date, expiresAt: Date?, leaseUntil: Date?, worker: String?, result: String?,
        errors: [AttemptError], createdAt: Date, finishedAt: Date?
    ) {
        self.id = id
        self.name = name
        self.arguments = arguments
        self.queue = queue
        self.priority = priority
        self.state = state
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.runAt = runAt
        self.expiresAt = expiresAt
        self.leaseUntil = leaseUntil
        self.worker = worker
        self.result = result
        self.errors = errors
        self.createdAt = createdAt
        self.finishedAt = finishedAt
    }
}
