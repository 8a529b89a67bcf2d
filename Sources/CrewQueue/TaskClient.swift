import Crew
public import FoundationEssentials

/// Enqueues tasks and follows them: the producer's side of the durable queue.
public struct TaskClient: Sendable {
    /// Where jobs are stored.
    public let broker: any QueueBroker

    /// A client of `broker`.
    public init(broker: any QueueBroker) {
        self.broker = broker
    }

    /// Enqueues `task(args)`, to run now, after `countdown`, or at `eta` (an `eta` in the past means now).
    ///
    /// - Throws: `CrewError.Code.encodingFailed` if the arguments do not encode as JSON; `CrewError.Code.invalidArgument`
    ///   for a negative `countdown`; ``BrokerError``.
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
    /// - Throws: `CrewError` `encodingFailed` if the arguments do not encode as JSON; `invalidArgument` for a
    ///   negative `countdown`.
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
        // A countdown below zero is a mistake, not "now"; an ETA in the past means now (as in Celery).
        if let countdown, countdown < .zero {
            throw CrewError(
                .invalidArgument, "a countdown cannot be negative, as \(countdown) is", function: task.name)
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
