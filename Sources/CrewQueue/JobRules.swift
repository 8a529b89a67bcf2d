public import FoundationEssentials

/// The rules every broker applies, in one place, for brokers in other modules too.
public enum JobRules {
    /// The state a new job starts in.
    public static func initialState(_ job: NewJob, now: Date) -> JobState {
        if let runAt = job.runAt, runAt > now { return .scheduled }
        return .available
    }

    /// Checks jobs before they are stored. A broker whose storage refuses a taken id itself (a unique key) passes
    /// `duplicates: false` and reports `duplicateJob` from its own error.
    ///
    /// - Throws: ``BrokerError`` `invalidArgument` or `duplicateJob`.
    public static func validate(_ jobs: [NewJob], duplicates: Bool = true) throws {
        for job in jobs {
            guard job.maxAttempts >= 1 else {
                throw BrokerError(
                    .invalidArgument, "maxAttempts must be at least 1, not \(job.maxAttempts) (job \(job.id))")
            }
            guard !job.name.isEmpty, !job.queue.isEmpty else {
                throw BrokerError(.invalidArgument, "a job needs a name and a queue (job \(job.id))")
            }
        }
        guard !duplicates || Set(jobs.map(\.id)).count == jobs.count else {
            throw BrokerError(.duplicateJob, "the same job id twice in one enqueue")
        }
    }

    /// The state after a failed attempt: `retrying` if a retry time is given and attempts are left.
    public static func afterFailure(_ job: JobRecord, retryAt: Date?) -> JobState {
        retryAt != nil && job.attempts < job.maxAttempts ? .retrying : .failed
    }
}

extension JobRules {
    /// A duration in seconds (a lease's length, for date arithmetic).
    public static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
