import CrewQueue
import CrewSQLite
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
    func startWorker(_ path: String, _ n: Int) throws -> Crew.Process<ChaosWorkerJob, Int> {
        let job = ChaosWorkerJob(path: path, name: "chaos-\(n)", prefork: n % 2 == 1)
        let p = Crew.Process(target: QueueFunctions.runWorker, args: job, crew: testCrew)
        try p.start()
        return p
    }

    @Test func killedWorkersLoseNoJob() async throws {
        let path = BrokerConformanceTests.temporaryPath()
        let broker = try SQLiteBroker(path: path)
        let total = 5_000
        try await TaskClient(broker: broker).enqueueMany(QueueFunctions.chaosQueueTask, Array(0..<total))
        var workers = [try startWorker(path, 0), try startWorker(path, 1)]
        var started = 2
        var kills = 0
        let deadline = ContinuousClock.now + .seconds(240)
        while ContinuousClock.now < deadline {
            let counts = try await broker.counts().first?.counts ?? [:]
            if counts[.succeeded, default: 0] + counts[.failed, default: 0] == total { break }
            try await Task.sleep(for: .milliseconds(Int.random(in: 30...150)))
            if kills < 12 {
                let victim = Int.random(in: 0..<workers.count)
                workers[victim].kill()
                try await workers[victim].join()
                workers[victim] = try startWorker(path, started)
                started += 1
                kills += 1
            }
        }
        for worker in workers { worker.kill() }
        for worker in workers { try await worker.join() }
        let jobs = try await broker.jobs(queue: nil, states: nil, limit: .max)
        #expect(jobs.count == total)
        #expect(jobs.allSatisfy { $0.state == .succeeded }, "\(Dictionary(grouping: jobs, by: \.state).mapValues(\.count))")
        // Every attempt is accounted for: the one that succeeded, and one recorded error per lost attempt.
        #expect(jobs.allSatisfy { $0.attempts == $0.errors.count + 1 })
        #expect(Set(jobs.compactMap(\.result)) == Set((0..<total).map(String.init)))
        #expect(kills > 0)
        // The kills did hit running jobs (their attempts were lost and run again).
        #expect(jobs.contains { $0.attempts > 1 }, "no killed worker held a job")
    }

    @Test func aProducerKilledInTheMiddleOfABulkEnqueueLeavesAllOrNothing() async throws {
        for round in 0..<3 {
            let path = BrokerConformanceTests.temporaryPath()
            _ = try SQLiteBroker(path: path)
            let producer = Crew.Process(target: QueueFunctions.produce, args: ChaosProducerJob(path: path, count: 50_000), crew: testCrew)
            try producer.start()
            try await Task.sleep(for: .milliseconds(20 + 40 * round))
            producer.kill()
            try await producer.join()
            let count = try await SQLiteBroker(path: path).jobs(queue: nil, states: nil, limit: .max).count
            #expect(count == 0 || count == 50_000, "round \(round): \(count) jobs")
        }
    }
}
