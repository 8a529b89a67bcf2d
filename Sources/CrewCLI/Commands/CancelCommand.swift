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

struct CancelCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel", abstract: "Cancels a job that has not ended.")

    @Argument(help: "The job's id.")
    var id: String

    @OptionGroup var options: BrokerOptions

    func report() async throws -> String {
        let cancelled = try await options.open().cancel(JobID(id))
        return options.json
            ? "{\"cancelled\":\(cancelled)}" : (cancelled ? "cancelled \(id)" : "\(id) had already ended")
    }
}
