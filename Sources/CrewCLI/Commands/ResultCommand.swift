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

struct ResultCommand: ReportingCommand {
    static let configuration = CommandConfiguration(commandName: "result", abstract: "Shows a job's state and result.")

    @Argument(help: "The job's id.")
    var id: String

    @OptionGroup var options: BrokerOptions

    func report() async throws -> String {
        guard let job = try await options.open().job(JobID(id)) else { throw CLIError(.notFound, "no job \(id)") }
        if options.json { return try encodeJSON(job) }
        var lines = ["\(job.id)  \(job.name)  \(job.state.rawValue)  attempt \(job.attempts)/\(job.maxAttempts)"]
        if let result = job.result { lines.append("result: \(result)") }
        for error in job.errors { lines.append("attempt \(error.attempt) failed: \(error.message)") }
        return lines.joined(separator: "\n")
    }
}
