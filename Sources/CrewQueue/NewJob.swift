import CCrewShims
public import FoundationEssentials
import Synchronization

/// A job to enqueue.
public struct NewJob: Sendable {
    /// Its id (a new one unless given).
    public var id: JobID
    /// The registered function's name.
    public var name: String
    /// The arguments, as JSON.
    public var arguments: String
    /// The queue it waits in.
    public var queue: String
    /// Higher runs first.
    public var priority: Int
    /// How many times it may be tried, the first included.
    public var maxAttempts: Int
    /// Not before this time (now when nil).
    public var runAt: Date?
    /// Not after this time: it expires instead of running.
    public var expiresAt: Date?
    /// How long the job (with its result or errors) is kept once it has ended; for ever when nil.
    public var resultTTL: Duration?

    /// A job for `name` with JSON `arguments`.
    public init(
        id: JobID = .make(),
        name: String,
        arguments: String,
        queue: String = "default",
        priority: Int = 0,
        maxAttempts: Int = 1,
        runAt: Date? = nil,
        expiresAt: Date? = nil,
        resultTTL: Duration? = nil
    ) {
        self.id = id
        self.name = name
        self.arguments = arguments
        self.queue = queue
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.runAt = runAt
        self.expiresAt = expiresAt
        self.resultTTL = resultTTL
    }
}
