public import FoundationEssentials

/// Where jobs wait and are claimed: the durable queue's storage. ``MemoryBroker`` is for tests;
/// `SQLiteBroker` (module CrewSQLite) is the embedded default; a PostgreSQL broker serves many machines. Every
/// broker passes the same conformance suite.
///
/// Delivery is at least once: a job whose worker dies is run again once its lease expires (``reapExpiredLeases()``).
public protocol QueueBroker: Sendable {
    /// Stores the jobs, all or none: `scheduled` if their time has not come, `available` otherwise.
    ///
    /// - Throws: ``BrokerError`` (`duplicateJob` for an id already taken; nothing is stored then).
    func enqueue(_ jobs: [NewJob]) async throws

    /// Claims up to `limit` available jobs of `queues` for `worker`: highest priority first, then oldest. They
    /// become `running`, their attempt counted, held until `lease` from now. Jobs whose time has come become
    /// available first; jobs past their expiry expire.
    func claim(queues: [String], limit: Int, worker: String, lease: Duration) async throws -> [JobRecord]

    /// Extends the leases `worker` holds on these jobs; returns the ids it still holds.
    func renew(_ ids: [JobID], worker: String, lease: Duration) async throws -> [JobID]

    /// Records the outcomes of attempts `worker` ran, all in one write (a worker batches the jobs that end
    /// together). A success stores the result; a failure with `retryAt` and attempts left waits as `retrying`,
    /// otherwise the job has `failed`. Returns each job's new state, in order, or nil where `worker` no longer held
    /// the job (its lease expired and it went to another worker, or it was cancelled): that outcome is dropped.
    func record(_ outcomes: [JobOutcome], worker: String) async throws -> [JobState?]

    /// Gives back jobs `worker` holds without counting their attempt (a graceful stop): they become available.
    func release(_ ids: [JobID], worker: String) async throws

    /// Cancels a job that has not ended. Returns false if it had already ended.
    func cancel(_ id: JobID) async throws -> Bool

    /// The job, if it exists.
    func job(_ id: JobID) async throws -> JobRecord?

    /// Returns running jobs whose lease has expired (their worker died or hung): to `available` if they have
    /// attempts left, `failed` otherwise. Returns how many.
    func reapExpiredLeases() async throws -> Int

    /// Jobs per queue and state.
    func counts() async throws -> [QueueCounts]

    /// Jobs in `queue` (all queues when nil) in `states` (all when nil), most recently created first.
    func jobs(queue: String?, states: Set<JobState>?, limit: Int) async throws -> [JobRecord]

    /// Runs an ended job again (failed, cancelled or expired): it becomes available with its attempts counted
    /// from zero; its error history stays. Returns false if the job does not exist or has not ended in one of
    /// those states.
    func retry(_ id: JobID) async throws -> Bool

    /// Deletes the jobs of `queue` that wait (scheduled, available, retrying); returns how many.
    func purge(queue: String) async throws -> Int

    /// Deletes ended jobs whose result TTL has passed; returns how many.
    func deleteExpiredResults() async throws -> Int

    /// Takes the turn of the periodic schedule `name` if it is due: true for exactly one caller per period,
    /// however many schedulers share the broker (its next run moves `every` on). A schedule seen for the first
    /// time is due at once.
    func claimSchedule(_ name: String, every: Duration) async throws -> Bool

    /// How many wake-ups of `signal` this process has seen so far: take it before looking at the jobs, then pass
    /// it to ``awaitSignal(_:after:timeout:)`` so that a wake-up in between is not missed.
    func signalMark(_ signal: BrokerSignal) -> UInt64

    /// Returns once `signal` has been raised (anywhere) after `mark` was taken, or after `timeout`: what an idle
    /// worker and a result waiter wait on instead of polling blindly.
    func awaitSignal(_ signal: BrokerSignal, after mark: UInt64, timeout: Duration) async
}

extension QueueBroker {
    /// Always 0 (a broker without wake-ups).
    public func signalMark(_ signal: BrokerSignal) -> UInt64 { 0 }

    /// Sleeps for `timeout` (a broker without wake-ups).
    public func awaitSignal(_ signal: BrokerSignal, after mark: UInt64, timeout: Duration) async {
        try? await Task.sleep(for: timeout)
    }

    /// Returns when jobs may have been enqueued (anywhere) since the call began, or after `timeout`.
    public func awaitJobs(timeout: Duration) async {
        await awaitSignal(.jobs, after: signalMark(.jobs), timeout: timeout)
    }

    /// Returns when jobs may have ended (anywhere) since the call began, or after `timeout`.
    public func awaitResults(timeout: Duration) async {
        await awaitSignal(.results, after: signalMark(.results), timeout: timeout)
    }

    /// Records the result of a job `worker` holds. Returns false if it no longer holds it: the result is then
    /// dropped.
    public func succeed(_ id: JobID, worker: String, result: String) async throws -> Bool {
        try await record([JobOutcome(id, result: result)], worker: worker)[0] != nil
    }

    /// Records a failed attempt of a job `worker` holds: with `retryAt` and attempts left it waits as
    /// `retrying`, otherwise it `failed`. Returns the new state, or nil if `worker` no longer held it.
    public func fail(_ id: JobID, worker: String, error: AttemptError, retryAt: Date?) async throws -> JobState? {
        try await record([JobOutcome(id, error: error, retryAt: retryAt)], worker: worker)[0]
    }

    /// Stores one job.
    public func enqueue(_ job: NewJob) async throws {
        try await enqueue([job])
    }
}
