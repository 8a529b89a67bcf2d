import ArgumentParser
import Crew
import CrewPostgres
import CrewQueue
import CrewSQLite
import FoundationEssentials
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

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
