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

struct QueueCommand: AsyncParsableCommand {
    // The usage names the program as it was started (an app that embeds the command line is not `crew`).
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: CrewCLI.programName,
            abstract: "Crew's durable task queue: run workers, enqueue tasks, look at the queues.",
            subcommands: [
                WorkerCommand.self, EnqueueCommand.self, InspectCommand.self, ResultCommand.self,
                RetryCommand.self, CancelCommand.self, PurgeCommand.self,
            ]
        )
    }
}
