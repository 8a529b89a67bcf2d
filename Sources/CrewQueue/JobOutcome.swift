public import FoundationEssentials

/// How an attempt of a job ended, as a worker reports it to ``QueueBroker/record(_:worker:)``.
public struct JobOutcome: Sendable, Equatable {
    /// The job.
    public var id: JobID
    /// The result as JSON, if the attempt succeeded.
    public var result: String?
    /// The error, if the attempt failed.
    public var error: AttemptError?
    /// When a failed attempt may run again; nil for no retry.
    public var retryAt: Date?

    /// A success with its result (JSON).
    public init(_ id: JobID, result: String) {
        self.id = id
        self.result = result
    }

    /// A failure; retried at `retryAt` if the job has attempts left.
    public init(_ id: JobID, error: AttemptError, retryAt: Date?) {
        self.id = id
        self.error = error
        self.retryAt = retryAt
    }
}
