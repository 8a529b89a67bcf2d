import CrewCLI
import CrewQueue
import CrewSQLite
import CrewTestHelpers
import CrewTestSupport
import Foundation
import Testing

@testable import Crew

/// The durable queue under fire: worker processes SIGKILLed at random and restarted, a producer killed in the
/// middle of a bulk enqueue. Nothing may be lost.
@Suite struct QueueChaosTests {
    init() {
        _ = testCrew
    }

    /// Every other worker runs its tasks in a process pool of its own (prefork): killing it kills its task
    /// children too (they die with their parent).
    func startWorker(_ url: String, _ n: Int) throws -> Crew.Process<ChaosWorkerJob, Int> {
        let job = ChaosWorkerJob(broker: url, name: "chaos-\(n)", prefork: n % 2 == 1)
        let p = Crew.Process(target: QueueFunctions.runWorker, args: job, crew: testCrew)
        try p.start()
        return p
    }

    enum Storage: String, CustomTestStringConvertible {
        case sqlite, postgres
        var testDescription: String { rawValue }

        /// PostgreSQL only where `scripts/test` started a server.
        static let all: [Storage] = PostgresTestServer.available ? [.sqlite, .postgres] : [.sqlite]

        /// A new, empty broker's URL.
        func freshURL() async throws -> String {
            switch self {
            case .sqlite: "sqlite://" + (try TemporaryDatabase.path())
            case .postgres: try await PostgresTestServer.freshDatabase()
            }
        }
    }

    /// Two worker processes on one broker, as two machines would be. On PostgreSQL the server is also restarted
    /// in the middle: workers and this producer reconnect and lose nothing.
    @Test(arguments: Storage.all)
    func killedWorkersLoseNoJob(storage: Storage) async throws {
        let url = try await storage.freshURL()
        let broker = try await CrewCLI.broker(url)
        let total = 5_000
        try await TaskClient(broker: broker).enqueueMany(QueueFunctions.chaosQueueTask, Array(0..<total))
        var workers = [try startWorker(url, 0), try startWorker(url, 1)]
        var names = ["chaos-0", "chaos-1"]
        var restarted = storage != .postgres
        var started = 2
        var kills = 0
        var looks = 0
        var lookFailures: [String] = []
        let deadline = ContinuousClock.now + .seconds(240)
        while ContinuousClock.now < deadline {
            // During the restart the counts fail for a moment: look again.
            guard let counts = try? await broker.counts().first?.counts ?? [:] else {
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            if counts[.succeeded, default: 0] + counts[.failed, default: 0] == total { break }
            try await Task.sleep(for: .milliseconds(Int.random(in: 80...250)))
            if !restarted && counts[.succeeded, default: 0] > total / 3 {
                try await PostgresTestServer.restart()
                restarted = true
            }
            if kills < 12 {
                // Only a worker that holds running jobs (on a busy machine a new worker may still be starting):
                // each kill must cost attempts.
                looks += 1
                var holders: Set<String> = []
                do {
                    holders = Set(
                        try await broker.jobs(queue: nil, states: [.running], limit: 100).compactMap(\.worker))
                } catch {
                    lookFailures.append("\(error)")  // during the PostgreSQL restart
                }
                guard let victim = workers.indices.filter({ holders.contains(names[$0]) }).randomElement() else {
                    continue
                }
                workers[victim].kill()
                try await workers[victim].join()
                workers[victim] = try startWorker(url, started)
                names[victim] = "chaos-\(started)"
                started += 1
                kills += 1
            }
        }
        for worker in workers { worker.kill() }
        for worker in workers { try await worker.join() }
        let jobs = try await broker.jobs(queue: nil, states: nil, limit: .max)
        #expect(jobs.count == total)
        #expect(
            jobs.allSatisfy { $0.state == .succeeded }, "\(Dictionary(grouping: jobs, by: \.state).mapValues(\.count))")
        // Every attempt is accounted for: the one that succeeded, and one recorded error per lost attempt.
        #expect(jobs.allSatisfy { $0.attempts == $0.errors.count + 1 })
        #expect(Set(jobs.compactMap(\.result)) == Set((0..<total).map(String.init)))
        #expect(kills > 0 && restarted, "\(looks) looks for a worker holding jobs; failures: \(lookFailures.prefix(3))")
        // The kills did hit running jobs (their attempts were lost and run again).
        #expect(jobs.contains { $0.attempts > 1 }, "no killed worker held a job")
    }

    @Test(arguments: Storage.all)
    func aProducerKilledInTheMiddleOfABulkEnqueueLeavesAllOrNothing(storage: Storage) async throws {
        for round in 0..<3 {
            let url = try await storage.freshURL()
            let broker = try await CrewCLI.broker(url)  // the schema exists before the producer starts
            let producer = Crew.Process(
                target: QueueFunctions.produce, args: ChaosProducerJob(broker: url, count: 50_000), crew: testCrew)
            try await producer.start()
            try await Task.sleep(for: .milliseconds(20 + 40 * round))
            producer.kill()
            try await producer.join()
            let count = try await broker.jobs(queue: nil, states: nil, limit: .max).count
            #expect(count == 0 || count == 50_000, "round \(round): \(count) jobs")
        }
    }
}
