import FoundationEssentials

/// A task enqueued every so often: an entry of Celery beat's schedule.
public struct PeriodicTask: Sendable {
    /// The schedule's name: unique across the schedulers that share a broker.
    public let name: String
    /// How often it runs.
    public let every: Duration
    let enqueue: @Sendable (TaskClient) async throws -> Void

    /// `task(args)` every `every`, under `name` (the task's name when nil).
    public static func every<A, R>(_ every: Duration, _ task: QueueTask<A, R>, _ args: A, name: String? = nil)
        -> PeriodicTask
    {
        PeriodicTask(name: name ?? task.name, every: every) { client in
            _ = try await client.enqueue(task, args)
        }
    }
}
