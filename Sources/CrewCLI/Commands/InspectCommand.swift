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
            lines.append(
                "  \(job.id)  \(job.name)  on \(job.worker ?? "?")  attempt \(job.attempts)/\(job.maxAttempts)")
        }
        lines.append("Recent failures:")
        if failed.isEmpty { lines.append("  (none)") }
        for job in failed {
            lines.append(
                "  \(job.id)  \(job.name)  after \(job.attempts) attempt(s): \(job.errors.last?.message ?? "?")")
        }
        return lines.joined(separator: "\n")
    }
}
