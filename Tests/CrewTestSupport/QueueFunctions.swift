public import Crew
import CrewCLI
public import CrewQueue
import FoundationEssentials

/// A queue worker's settings, for the chaos test's worker processes.
public struct ChaosWorkerJob: Codable, Sendable {
    /// The broker's URL.
    public var broker: String
    public var name: String
    /// Run the tasks in a process pool of this worker's own (prefork) rather than as coroutines.
    public var prefork: Bool
    public init(broker: String, name: String, prefork: Bool = false) {
        self.broker = broker
        self.name = name
        self.prefork = prefork
    }
}

/// A producer's settings: how many jobs to enqueue in one `enqueueMany`.
public struct ChaosProducerJob: Codable, Sendable {
    /// The broker's URL.
    public var broker: String
    public var count: Int
    public init(broker: String, count: Int) {
        self.broker = broker
        self.count = count
    }
}

/// The functions the durable queue's chaos test runs in worker and producer processes.
public enum QueueFunctions {
    /// The task the chaos jobs run: a short wait (long enough that a killed worker is holding jobs), then its
    /// argument back.
    public static let chaosTask = Crew.Function("chaos.task") { (n: Int) async throws -> Int in
        try await Task.sleep(for: .milliseconds(10))
        return n
    }

    /// The task with its options: retried enough to survive many killed workers.
    public static let chaosQueueTask = QueueTask(
        chaosTask, options: TaskOptions(maxRetries: 50, retryBackoff: .milliseconds(1)))

    /// Runs a queue worker on the broker until the process is killed.
    public static let runWorker = Crew.Function("chaos.runWorker") { (job: ChaosWorkerJob) async throws -> Int in
        let worker = QueueWorker(
            broker: try await CrewCLI.broker(job.broker),
            tasks: [chaosQueueTask],
            executor: job.prefork ? try .processes(2, coroutinesEach: 4) : try .coroutines(8),
            configuration: QueueWorker.Configuration(
                concurrency: 8,
                lease: .milliseconds(600),
                heartbeat: .milliseconds(150),
                pollInterval: .milliseconds(5),
                name: job.name
            )
        )
        try await worker.run()
        return 0
    }

    /// Enqueues `count` chaos jobs in one `enqueueMany` (the test kills it on the way).
    public static let produce = Crew.Function("chaos.produce") { (job: ChaosProducerJob) async throws -> Int in
        let client = TaskClient(broker: try await CrewCLI.broker(job.broker))
        try await client.enqueueMany(chaosQueueTask, Array(0..<job.count))
        return job.count
    }

    /// Every queue function the test worker registers.
    public static let all: [any AnyFunction] = [chaosTask, runWorker, produce]
}
