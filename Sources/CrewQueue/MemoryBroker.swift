public import FoundationEssentials

/// A broker in this process's memory (`memory://`): for tests and for trying things out. Nothing survives the
/// process.
public actor MemoryBroker: QueueBroker {
    private var jobs: [JobID: JobRecord] = [:]
    private var ttls: [JobID: Duration] = [:]
    private var schedules: [String: Date] = [:]
    private var order: [JobID] = []
    private let clock: @Sendable () -> Date
    private let signals = BrokerSignals()

    /// An empty broker; `clock` tells it the time (tests move it).
    public init(clock: @escaping @Sendable () -> Date = { Date() }) {
        self.clock = clock
    }

    /// Stores the jobs, all or none (see ``QueueBroker``).
    public func enqueue(_ new: [NewJob]) async throws {
        try JobRules.validate(new)
        if let taken = new.first(where: { jobs[$0.id] != nil }) {
            throw BrokerError(.duplicateJob, "job \(taken.id) already exists")
        }
        let now = clock()
        for job in new {
            jobs[job.id] = JobRecord(
                id: job.id, name: job.name, arguments: job.arguments, queue: job.queue, priority: job.priority,
                state: JobRules.initialState(job, now: now), attempts: 0, maxAttempts: job.maxAttempts,
                runAt: job.runAt ?? now, expiresAt: job.expiresAt, leaseUntil: nil, worker: nil, result: nil,
                errors: [], createdAt: now, finishedAt: nil
            )
            order.append(job.id)
            if let ttl = job.resultTTL { ttls[job.id] = ttl }
        }
        signals.raise(.jobs)
    }

    private func housekeep(now: Date) {
        for id in order {
            guard var job = jobs[id] else { continue }
            if job.state == .scheduled || job.state == .available || job.state == .retrying,
                let expiry = job.expiresAt, expiry <= now
            {
                job.state = .expired
                job.finishedAt = now
            } else if (job.state == .scheduled || job.state == .retrying) && job.runAt <= now {
                job.state = .available
            }
            jobs[id] = job
        }
    }

    /// Claims up to `limit` available jobs (see ``QueueBroker``).
    public func claim(queues: [String], limit: Int, worker: String, lease: Duration) async throws -> [JobRecord] {
        guard limit > 0 else { return [] }
        let now = clock()
        housekeep(now: now)
        let wanted = Set(queues)
        let candidates = order.compactMap { jobs[$0] }
            .filter { $0.state == .available && wanted.contains($0.queue) }
            .sorted { ($0.priority, $1.runAt, $1.createdAt) > ($1.priority, $0.runAt, $0.createdAt) }
        var claimed: [JobRecord] = []
        for var job in candidates.prefix(limit) {
            job.state = .running
            job.attempts += 1
            job.worker = worker
            job.leaseUntil = now.addingTimeInterval(JobRules.seconds(lease))
            jobs[job.id] = job
            claimed.append(job)
        }
        return claimed
    }

    private func held(_ id: JobID, by worker: String) -> JobRecord? {
        guard let job = jobs[id], job.state == .running, job.worker == worker else { return nil }
        return job
    }

    /// Extends the leases `worker` holds; returns the ids it still holds.
    public func renew(_ ids: [JobID], worker: String, lease: Duration) async throws -> [JobID] {
        let until = clock().addingTimeInterval(JobRules.seconds(lease))
        return ids.filter { id in
            guard var job = held(id, by: worker) else { return false }
            job.leaseUntil = until
            jobs[id] = job
            return true
        }
    }

    /// Records the outcomes of attempts (see ``QueueBroker/record(_:worker:)``).
    public func record(_ outcomes: [JobOutcome], worker: String) async throws -> [JobState?] {
        let now = clock()
        defer { signals.raise(.results) }
        return outcomes.map { outcome in
            guard var job = held(outcome.id, by: worker) else { return nil }
            job.leaseUntil = nil
            if let error = outcome.error {
                job.errors.append(error)
                job.state = JobRules.afterFailure(job, retryAt: outcome.retryAt)
                if job.state == .retrying { job.runAt = outcome.retryAt! } else { job.finishedAt = now }
            } else {
                job.state = .succeeded
                job.result = outcome.result ?? "null"
                job.finishedAt = now
            }
            jobs[outcome.id] = job
            return job.state
        }
    }

    /// Wake-ups of `signal` so far in this broker.
    public nonisolated func signalMark(_ signal: BrokerSignal) -> UInt64 {
        signals.mark(signal)
    }

    /// Returns once `signal` was raised after `mark`, or after `timeout`.
    public nonisolated func awaitSignal(_ signal: BrokerSignal, after mark: UInt64, timeout: Duration) async {
        await signals.wait(signal, after: mark, timeout: timeout)
    }

    /// Gives jobs back without counting their attempt.
    public func release(_ ids: [JobID], worker: String) async throws {
        defer { signals.raise(.jobs) }
        for id in ids {
            guard var job = held(id, by: worker) else { continue }
            job.state = .available
            job.attempts -= 1
            job.leaseUntil = nil
            jobs[id] = job
        }
    }

    /// Cancels a job that has not ended.
    public func cancel(_ id: JobID) async throws -> Bool {
        guard var job = jobs[id], !job.state.isFinal else { return false }
        defer { signals.raise(.results) }
        job.state = .cancelled
        job.leaseUntil = nil
        job.finishedAt = clock()
        jobs[id] = job
        return true
    }

    /// The job, if it exists.
    public func job(_ id: JobID) async throws -> JobRecord? {
        jobs[id]
    }

    /// Returns running jobs whose lease has expired; how many.
    public func reapExpiredLeases() async throws -> Int {
        let now = clock()
        var reaped = 0
        for id in order {
            guard var job = jobs[id], job.state == .running, let lease = job.leaseUntil, lease < now else { continue }
            job.errors.append(
                AttemptError(
                    attempt: job.attempts,
                    message: "the worker \(job.worker ?? "?") stopped renewing its lease (it died or hung)", at: now))
            job.leaseUntil = nil
            if job.attempts < job.maxAttempts {
                job.state = .available
            } else {
                job.state = .failed
                job.finishedAt = now
            }
            jobs[id] = job
            reaped += 1
        }
        if reaped > 0 {
            // Idle workers take the jobs back at once; waiters on those that failed learn it at once.
            signals.raise(.jobs)
            signals.raise(.results)
        }
        return reaped
    }

    /// Jobs per queue and state.
    public func counts() async throws -> [QueueCounts] {
        var byQueue: [String: [JobState: Int]] = [:]
        for job in jobs.values { byQueue[job.queue, default: [:]][job.state, default: 0] += 1 }
        return byQueue.keys.sorted().map { QueueCounts(queue: $0, counts: byQueue[$0]!) }
    }

    /// Jobs of a queue and states, most recently created first.
    public func jobs(queue: String?, states: Set<JobState>?, limit: Int) async throws -> [JobRecord] {
        Array(
            order.reversed().compactMap { jobs[$0] }.filter { job in
                (queue.map { job.queue == $0 } ?? true) && (states.map { $0.contains(job.state) } ?? true)
            }.prefix(max(0, limit)))
    }

    /// Runs an ended job again.
    public func retry(_ id: JobID) async throws -> Bool {
        guard var job = jobs[id], [.failed, .cancelled, .expired].contains(job.state) else { return false }
        defer { signals.raise(.jobs) }
        job.state = .available
        job.attempts = 0
        job.runAt = clock()
        job.expiresAt = nil
        job.finishedAt = nil
        jobs[id] = job
        return true
    }

    /// Deletes the waiting jobs of a queue.
    public func purge(queue: String) async throws -> Int {
        let doomed = order.filter { id in
            guard let job = jobs[id] else { return false }
            return job.queue == queue && [.scheduled, .available, .retrying].contains(job.state)
        }
        for id in doomed { jobs[id] = nil }
        order.removeAll { jobs[$0] == nil }
        return doomed.count
    }

    /// Deletes ended jobs whose result TTL has passed.
    public func deleteExpiredResults() async throws -> Int {
        let now = clock()
        let doomed = ttls.compactMap { id, ttl -> JobID? in
            guard let job = jobs[id], job.state.isFinal, let finished = job.finishedAt,
                finished.addingTimeInterval(JobRules.seconds(ttl)) <= now
            else { return nil }
            return id
        }
        for id in doomed {
            jobs[id] = nil
            ttls[id] = nil
        }
        order.removeAll { jobs[$0] == nil }
        return doomed.count
    }

    /// Takes the turn of a periodic schedule if it is due.
    public func claimSchedule(_ name: String, every: Duration) async throws -> Bool {
        let now = clock()
        if let next = schedules[name], next > now { return false }
        schedules[name] = now.addingTimeInterval(JobRules.seconds(every))
        return true
    }
}
