import ArgumentParser
import Crew
import CrewQueue
import FoundationEssentials
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

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

    @Option(
        help:
            "How many tasks it holds at once, as a multiple of -c: above 1 it claims ahead (Celery's worker_prefetch_multiplier)."
    )
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
        let executor: Crew.Executor =
            switch pool {
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
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [worker],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
        try await group.run()
        try await executor.shutdown(wait: true, cancelFutures: true)
    }
}
