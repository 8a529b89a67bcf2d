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
