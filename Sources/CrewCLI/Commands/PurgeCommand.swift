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

struct PurgeCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge", abstract: "Deletes the waiting jobs of a queue.")

    @Argument(help: "The queue.")
    var queue: String

    @OptionGroup var options: BrokerOptions

    func report() async throws -> String {
        let purged = try await options.open().purge(queue: queue)
        return options.json ? "{\"purged\":\(purged)}" : "purged \(purged) job(s) from \(queue)"
    }
}
