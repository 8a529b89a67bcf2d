import CrewCLI
import CrewQueue
import CrewSQLite
import CrewTestHelpers
import Foundation
import Testing

/// The queue's command line, on a real SQLite file.
@Suite struct CLITests {
    @Test func enqueueInspectResultCancelRetryAndPurge() async throws {
        let url = "sqlite://" + (try TemporaryDatabase.path())
        let tasks: [any AnyQueueTask] = [QueueTask(QueuedWork.double, options: TaskOptions(queue: "math"))]
        func run(_ arguments: [String]) async throws -> String {
            try await CrewCLI.output(tasks: tasks, arguments: arguments + ["--broker", url])
        }
        let enqueued = try await run(["enqueue", "queued.double", "--args", "21"])
        #expect(enqueued.hasPrefix("enqueued queued.double as "))
        let id = String(enqueued.split(separator: " ").last!)
        let json = try await run(["enqueue", "queued.double", "--args", "22", "--json", "--countdown", "3600"])
        let later = try JSONDecoder().decode([String: String].self, from: Data(json.utf8))["id"]!
        await #expect(throws: (any Error).self) { try await run(["enqueue", "queued.double", "--args", "{nope"]) }

        let inspection = try await run(["inspect"])
        #expect(inspection.contains("math: scheduled 1, available 1"), "\(inspection)")
        #expect(inspection.contains("Running:\n  (none)"))
        let inspectJSON = try await run(["inspect", "--json"])
        #expect(inspectJSON.contains("\"queues\""))

        #expect(try await run(["result", id]).contains("available"))
        #expect(try await run(["cancel", later]) == "cancelled \(later)")
        #expect(try await run(["cancel", later]) == "\(later) had already ended")
        #expect(try await run(["retry", later]) == "retried 1 job(s)")
        #expect(try await run(["retry", "--failed"]) == "retried 0 job(s)")
        #expect(try await run(["purge", "math"]) == "purged 2 job(s) from math")
        await #expect(throws: (any Error).self) { try await run(["result", id]) }
        await #expect(throws: (any Error).self) {
            try await CrewCLI.output(tasks: tasks, arguments: ["inspect", "--broker", "redis://x"])
        }
        // A worker's options are checked before it starts (a valid worker command fails here only because it does
        // not report: it runs until stopped).
        for (bad, message) in [
            (["-c", "0"], "-c must be at least 1"),
            (["--prefetch-multiplier", "0"], "--prefetch-multiplier must be at least 1"),
            (["-l", "loud"], "unknown log level"), ([], "does not report"),
        ] {
            do {
                _ = try await CrewCLI.output(tasks: tasks, arguments: ["worker"] + bad + ["--broker", url])
                Issue.record("worker \(bad) was accepted")
            } catch {
                #expect("\(error)".contains(message), "\(bad): \(error)")
            }
        }
    }
}
