import ArgumentParser
import Crew
public import CrewQueue
import CrewPostgres
import CrewSQLite
import FoundationEssentials
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

// The durable queue's command line, as a library: a user's own executable embeds it, because only that program
// knows its registered tasks.
//
//     @main struct App {
//         static func main() async {
//             try! Crew.bootstrap(Work.all)           // children of `-P prefork` serve the functions
//             await CrewCLI.main(tasks: [Jobs.resize, Jobs.mail])
//         }
//     }
//
// then `app worker -P prefork -c 4`, `app enqueue resize --args '"a.jpg"'`, `app inspect`, ...

/// The durable queue's command line: `worker`, `enqueue`, `inspect`, `result`, `retry`, `cancel`, `purge`.
public enum CrewCLI {
    /// Parses `arguments` (the process's when nil), runs the command and exits with its status.
    public static func main(tasks: [any AnyQueueTask], arguments: [String]? = nil) async {
        CLIContext.tasks.withLock { $0 = tasks }
        do {
            var command = try QueueCommand.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            QueueCommand.exit(withError: error)
        }
    }

    /// Runs a command other than `worker` and returns what it would print (for tests and for embedding).
    public static func output(tasks: [any AnyQueueTask], arguments: [String]) async throws -> String {
        CLIContext.tasks.withLock { $0 = tasks }
        let command = try QueueCommand.parseAsRoot(arguments)
        guard let reporting = command as? any ReportingCommand else {
            throw ValidationError("\(arguments.first ?? "") does not report; run it with CrewCLI.main")
        }
        return try await reporting.report()
    }

    /// Opens the broker a URL names: `sqlite:///absolute/path.db`, `sqlite://relative.db`,
    /// `postgres://user:password@host:port/database` (or `…/database?host=/socket/directory`) or `memory://`.
    public static func broker(_ url: String) async throws -> any QueueBroker {
        if url == "memory://" { return MemoryBroker() }
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            return try await PostgresBroker.connect(url: url)
        }
        guard url.hasPrefix("sqlite://") else {
            throw ValidationError(
                "unknown broker \(url): use sqlite:///path/to/crew.db (the default), postgres://user@host/database or memory://"
            )
        }
        let path = String(url.dropFirst("sqlite://".count))
        guard !path.isEmpty else { throw ValidationError("the broker URL \(url) names no file") }
        // Opening the file migrates it, which may wait for another process's write lock: not on a cooperative
        // thread.
        return try await Crew.blocking { try SQLiteBroker(path: path) }
    }
}

/// The tasks of the program that embeds the command line.
enum CLIContext {
    static let tasks = Mutex<[any AnyQueueTask]>([])
}

/// A command that produces text instead of running forever.
protocol ReportingCommand: AsyncParsableCommand {
    func report() async throws -> String
}

extension ReportingCommand {
    mutating func run() async throws {
        print(try await report())
    }
}

/// Options every command takes.
struct BrokerOptions: ParsableArguments {
    @Option(help: "The broker: sqlite:///path/to/crew.db, sqlite://relative.db, postgres://user@host/database or memory://.")
    var broker = "sqlite://crew.db"

    @Flag(help: "Print JSON for scripts instead of text for people.")
    var json = false

    func open() async throws -> any QueueBroker {
        try await CrewCLI.broker(broker)
    }
}

struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crew",
        abstract: "Crew's durable task queue: run workers, enqueue tasks, look at the queues.",
        subcommands: [WorkerCommand.self, EnqueueCommand.self, InspectCommand.self, ResultCommand.self,
                      RetryCommand.self, CancelCommand.self, PurgeCommand.self]
    )
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Claims and runs tasks until SIGTERM or SIGINT (Celery's `celery worker`)."
    )

    enum Pool: String, ExpressibleByArgument, CaseIterable {
        case prefork, threads, coroutines, solo
    }

    @Option(name: .customShort("P"), help: "How tasks run: prefork (processes), threads, coroutines or solo.")
    var pool = Pool.prefork

    @Option(name: .customShort("c"), help: "How many tasks run at once (one per CPU when not given).")
    var concurrency: Int?

    @Option(name: .customShort("Q"), help: "The queues to take tasks from, comma-separated.")
    var queues = "default"

    @Option(help: "How many tasks it holds at once, as a multiple of -c: above 1 it claims ahead (Celery's worker_prefetch_multiplier).")
    var prefetchMultiplier = 1

    @Option(name: .customShort("l"), help: "The log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @OptionGroup var options: BrokerOptions

    func validate() throws {
        if let concurrency, concurrency < 1 { throw ValidationError("-c must be at least 1, not \(concurrency)") }
        if prefetchMultiplier < 1 {
            throw ValidationError("--prefetch-multiplier must be at least 1, not \(prefetchMultiplier)")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown log level \(logLevel)") }
    }

    func run() async throws {
        var logger = Logger(label: "crew.worker")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let n = pool == .solo ? 1 : concurrency ?? cores
        let executor: Crew.Executor = switch pool {
        case .prefork: try .processes(n)
        case .threads, .solo: try .threads(n)
        case .coroutines: try .coroutines(n)
        }
        let worker = QueueWorker(
            broker: try await options.open(),
            tasks: CLIContext.tasks.withLock { $0 },
            executor: executor,
            configuration: QueueWorker.Configuration(
                queues: queues.split(separator: ",").map { String($0.filter { $0 != " " }) },
                concurrency: n,
                prefetchMultiplier: prefetchMultiplier
            ),
            logger: logger
        )
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [worker],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
        try await executor.shutdown(wait: true, cancelFutures: true)
    }
}

struct EnqueueCommand: ReportingCommand {
    static let configuration = CommandConfiguration(commandName: "enqueue", abstract: "Enqueues a task by name.")

    @Argument(help: "The task's name.")
    var name: String

    @Option(help: "The arguments, as JSON.")
    var args = "null"

    @Option(help: "Run it after this many seconds.")
    var countdown: Double?

    @Option(help: "The queue (the task's own when it is known here, else `default`).")
    var queue: String?

    @OptionGroup var options: BrokerOptions

    func report() async throws -> String {
        guard (try? JSONDecoder().decode(JSONValue.self, from: Data(args.utf8))) != nil else {
            throw ValidationError("--args is not JSON: \(args)")
        }
        let known = CLIContext.tasks.withLock { tasks in tasks.first { $0.name == name } }
        let taskOptions = known?.options ?? TaskOptions()
        let now = Date()
        let job = NewJob(
            name: name,
            arguments: args,
            queue: queue ?? taskOptions.queue,
            priority: taskOptions.priority,
            maxAttempts: taskOptions.maxRetries + 1,
            runAt: countdown.map { now.addingTimeInterval($0) }
        )
        try await options.open().enqueue(job)
        return options.json ? "{\"id\":\"\(job.id)\"}" : "enqueued \(name) as \(job.id)"
    }
}

struct InspectCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Shows the queues (jobs by state), the running jobs and the recent failures."
    )

    @Option(help: "How many running jobs and failures to show.")
    var limit = 20

    @OptionGroup var options: BrokerOptions

    func report() async throws -> String {
        let broker = try await options.open()
        let counts = try await broker.counts()
        let running = try await broker.jobs(queue: nil, states: [.running], limit: limit)
        let failed = try await broker.jobs(queue: nil, states: [.failed], limit: limit)
        if options.json {
            struct Inspection: Encodable {
                var queues: [QueueCounts]
                var running: [JobRecord]
                var failures: [JobRecord]
            }
            return try encodeJSON(Inspection(queues: counts, running: running, failures: failed))
        }
        var lines = ["Queues:"]
        if counts.isEmpty { lines.append("  (no jobs)") }
        for queue in counts {
            let states = JobState.allCases.compactMap { state in queue.counts[state].map { "\(state.rawValue) \($0)" } }
            lines.append("  \(queue.queue): " + states.joined(separator: ", "))
        }
        lines.append("Running:")
        if running.isEmpty { lines.append("  (none)") }
        for job in running {
            lines.append("  \(job.id)  \(job.name)  on \(job.worker ?? "?")  attempt \(job.attempts)/\(job.maxAttempts)")
        }
        lines.append("Recent failures:")
        if failed.isEmpty { lines.append("  (none)") }
        for job in failed {
            lines.append("  \(job.id)  \(job.name)  after \(job.attempts) attempt(s): \(job.errors.last?.message ?? "?")")
        }
        return lines.joined(separator: "\n")
    }
}

struct ResultCommand: ReportingCommand {
    static let configuration = CommandConfiguration(commandName: "result", abstract: "Shows a job's state and result.")

    @Argument(help: "The job's id.")
    var id: String

    @OptionGroup var options: BrokerOptions

    func report() async throws -> String {
        guard let job = try await options.open().job(JobID(id)) else { throw ValidationError("no job \(id)") }
        if options.json { return try encodeJSON(job) }
        var lines = ["\(job.id)  \(job.name)  \(job.state.rawValue)  attempt \(job.attempts)/\(job.maxAttempts)"]
        if let result = job.result { lines.append("result: \(result)") }
        for error in job.errors { lines.append("attempt \(error.attempt) failed: \(error.message)") }
        return lines.joined(separator: "\n")
    }
}

struct RetryCommand: ReportingCommand {
    static let configuration = CommandConfiguration(commandName: "retry", abstract: "Runs failed jobs again.")

    @Argument(help: "The job's id.")
    var id: String?

    @Flag(help: "Every failed job.")
    var failed = false

    @OptionGroup var options: BrokerOptions

    func validate() throws {
        guard (id != nil) != failed else { throw ValidationError("give a job id or --failed") }
    }

    func report() async throws -> String {
        let broker = try await options.open()
        var ids: [JobID] = id.map { [JobID($0)] } ?? []
        if failed { ids = try await broker.jobs(queue: nil, states: [.failed], limit: .max).map(\.id) }
        var retried = 0
        for id in ids where try await broker.retry(id) { retried += 1 }
        return options.json ? "{\"retried\":\(retried)}" : "retried \(retried) job(s)"
    }
}

struct CancelCommand: ReportingCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancels a job that has not ended.")

    @Argument(help: "The job's id.")
    var id: String

    @OptionGroup var options: BrokerOptions

    func report() async throws -> String {
        let cancelled = try await options.open().cancel(JobID(id))
        return options.json ? "{\"cancelled\":\(cancelled)}" : (cancelled ? "cancelled \(id)" : "\(id) had already ended")
    }
}

struct PurgeCommand: ReportingCommand {
    static let configuration = CommandConfiguration(commandName: "purge", abstract: "Deletes the waiting jobs of a queue.")

    @Argument(help: "The queue.")
    var queue: String

    @OptionGroup var options: BrokerOptions

    func report() async throws -> String {
        let purged = try await options.open().purge(queue: queue)
        return options.json ? "{\"purged\":\(purged)}" : "purged \(purged) job(s) from \(queue)"
    }
}

func encodeJSON(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.dateEncodingStrategy = .secondsSince1970
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// Any JSON value (to check that `--args` is JSON).
enum JSONValue: Decodable {
    case value

    init(from decoder: any Decoder) throws {
        if var array = try? decoder.unkeyedContainer() {
            while !array.isAtEnd { _ = try array.decode(JSONValue.self) }
        } else if let object = try? decoder.container(keyedBy: AnyKey.self) {
            for key in object.allKeys { _ = try object.decode(JSONValue.self, forKey: key) }
        } else {
            let single = try decoder.singleValueContainer()
            if single.decodeNil() { self = .value; return }
            if (try? single.decode(Bool.self)) != nil || (try? single.decode(Double.self)) != nil
                || (try? single.decode(String.self)) != nil
            {
                self = .value
                return
            }
            throw DecodingError.dataCorruptedError(in: single, debugDescription: "not JSON")
        }
        self = .value
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int?
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
    }
}
