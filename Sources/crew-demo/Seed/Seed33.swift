import ArgumentParser
import Crew
import CrewCLI
import CrewQueue
import FoundationEssentials
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Seed 3.3: Celery's worker with a pool of coroutines,
///
/// ```
/// $ celery worker -A celery_worker.celery -P gevent -c 10 -l INFO
/// ```
///
/// in Swift: `crew-demo worker -P coroutines -c 10 -l info` (the queue's command line, embedded in the demo with
/// the demo's tasks), and `crew-demo produce` to enqueue sample I/O-bound and CPU-bound tasks and print their
/// results. Both use `sqlite://crew.db` in the working directory unless given `--broker`.
enum Seed33 {
    /// An I/O-bound task: waits as a page download would, then returns the page's "length".
    static let fetch = Crew.Function("seed33.fetch") { (page: Int) async throws -> String in
        try await Task.sleep(for: .milliseconds(200))
        return "page \(page): \(1_000 + page * 37) bytes"
    }

    /// A CPU-bound task: sums a few million numbers.
    static let crunch = Crew.Function("seed33.crunch") { (n: Int) -> Int in
        var total = 0
        for i in 0..<(n * 1_000_000) { total &+= i % 7 }
        return total
    }

    static let functions: [any AnyFunction] = [fetch, crunch]
    static let fetchTask = QueueTask(fetch, options: TaskOptions(maxRetries: 2, retryBackoff: .milliseconds(100)))
    static let crunchTask = QueueTask(crunch)
    static let tasks: [any AnyQueueTask] = [fetchTask, crunchTask]

    /// `crew-demo run 3.3`: the worker and the producer in one process, on a fresh database (the two-terminal
    /// form is `crew-demo worker -P coroutines -c 10 -l info` and `crew-demo produce`).
    @Sendable
    static func main() async throws {
        let dir = "/tmp/crew-demo-\(getpid())"
        mkdir(dir, 0o700)
        let broker = try await CrewCLI.broker("sqlite://\(dir)/crew.db")
        let worker = QueueWorker(
            broker: broker,
            tasks: tasks,
            executor: try .coroutines(10),
            configuration: QueueWorker.Configuration(concurrency: 10, pollInterval: .milliseconds(5)),
            logger: quietLogger
        )
        let serving = Task { try await worker.run() }
        say("$ crew-demo worker -P coroutines -c 10   (running in this process)")
        let client = TaskClient(broker: broker)
        let start = Clock.seconds()
        let fetches = try await client.enqueueMany(fetchTask, Array(0..<10))
        let crunch = try await client.enqueue(crunchTask, 20)
        for handle in fetches { say(try await handle.result(timeout: .seconds(60))) }
        say("crunch: \(try await crunch.result(timeout: .seconds(60)))")
        say("10 fetches of 0.2 s each on 10 coroutines took \(fixed(Clock.seconds() - start, 2)) s")
        worker.stop()
        try await serving.value
        for file in ["crew.db", "crew.db-wal", "crew.db-shm", "crew.db-wake"] { unlink("\(dir)/\(file)") }
        rmdir(dir)
    }

    /// The in-process worker logs only warnings, so that the demo prints what the producer sees.
    static var quietLogger: Logger {
        var logger = Logger(label: "crew.worker")
        logger.logLevel = .warning
        return logger
    }

    /// The command names the queue's command line answers.
    static let commands: Set<String> = ["worker", "enqueue", "inspect", "result", "retry", "cancel", "purge"]
}

/// `crew-demo produce`: enqueues sample tasks and prints their results as a worker runs them.
struct Produce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Enqueues sample I/O-bound and CPU-bound tasks (seed 3.3) and prints their results."
    )

    @Option(help: "How many tasks of each kind.")
    var count = 10

    @Option(help: "The broker the worker uses.")
    var broker = "sqlite://crew.db"

    @Option(help: "How long to wait for each result, in seconds.")
    var timeout = 60.0

    func run() async throws {
        let client = TaskClient(broker: try await CrewCLI.broker(broker))
        let start = Clock.seconds()
        let fetches = try await client.enqueueMany(Seed33.fetchTask, Array(0..<count))
        let crunches = try await client.enqueueMany(Seed33.crunchTask, Array(repeating: 20, count: count))
        say(
            "enqueued \(count) fetch and \(count) crunch tasks; waiting for a worker (crew-demo worker -P coroutines -c 10 -l info)"
        )
        for handle in fetches { say(try await handle.result(timeout: .milliseconds(Int(timeout * 1000)))) }
        for (i, handle) in crunches.enumerated() {
            say("crunch \(i): \(try await handle.result(timeout: .milliseconds(Int(timeout * 1000))))")
        }
        say("all \(2 * count) results in \(fixed(Clock.seconds() - start, 2)) s")
    }
}
