import CrewPostgres
import CrewQueue
import CrewSQLite
import CrewTestHelpers
import Foundation
import Synchronization
import Testing

/// The same cases against every broker: memory, SQLite, and PostgreSQL (on the server `scripts/test` starts).
@Suite struct BrokerConformanceTests {
    enum Kind: String, CaseIterable, CustomTestStringConvertible {
        case memory, sqlite, postgres
        var testDescription: String { rawValue }
    }

    /// PostgreSQL only where `scripts/test` started a server.
    static let kinds: [Kind] = PostgresTestServer.available ? Kind.allCases : [.memory, .sqlite]

    func make(_ kind: Kind, _ clock: TestClock) async throws -> any QueueBroker {
        switch kind {
        case .memory: MemoryBroker(clock: clock.read)
        case .sqlite: try SQLiteBroker(path: Self.temporaryPath(), clock: clock.read)
        case .postgres: try await PostgresBroker.connect(url: PostgresTestServer.freshDatabase(), clock: clock.read)
        }
    }

    static func temporaryPath() throws -> String {
        try TemporaryDatabase.path()
    }

    @Test(arguments: kinds)
    func everyFieldOfAJobIsStoredAsGivenAndATakenIdRefusesTheWholeBatch(kind: Kind) async throws {
        let clock = TestClock()
        let broker = try await make(kind, clock)
        let now = clock.read()
        let job = NewJob(
            id: JobID("o'neil; DROP TABLE crew_jobs --"), name: "tâche \"quoted\"", arguments: "[\"é🙂\", \"\"]",
            queue: "queue's", priority: -3, maxAttempts: 7, runAt: now.addingTimeInterval(-1),
            expiresAt: now.addingTimeInterval(3600), resultTTL: .seconds(90)
        )
        try await broker.enqueue([job, NewJob(id: JobID("empty"), name: "f", arguments: "")])
        let stored = try #require(try await broker.job(job.id))
        #expect(stored.name == job.name && stored.arguments == job.arguments && stored.queue == job.queue)
        #expect(stored.priority == -3 && stored.maxAttempts == 7 && stored.state == .available && stored.attempts == 0)
        #expect(abs(stored.runAt.timeIntervalSince(now.addingTimeInterval(-1))) < 0.001)
        #expect(abs((stored.expiresAt ?? .distantPast).timeIntervalSince(now.addingTimeInterval(3600))) < 0.001)
        #expect(try await broker.job(JobID("empty"))?.arguments == "")
        // An id already taken refuses the whole batch: the new job beside it is not stored either.
        let error = await #expect(throws: BrokerError.self) {
            try await broker.enqueue([
                NewJob(id: JobID("fresh"), name: "f", arguments: "[]"), NewJob(id: job.id, name: "f", arguments: "[]"),
            ])
        }
        #expect(error?.code == .duplicateJob, "\(String(describing: error))")
        #expect(try await broker.job(JobID("fresh")) == nil)
        #expect(try await broker.job(job.id)?.name == job.name)
    }

    @Test(arguments: kinds)
    func claimsByPriorityThenAgeAndOnlyFromItsQueues(kind: Kind) async throws {
        let clock = TestClock()
        let broker = try await make(kind, clock)
        try await broker.enqueue([
            NewJob(id: JobID("a"), name: "f", arguments: "1"),
            NewJob(id: JobID("b"), name: "f", arguments: "2", priority: 5),
            NewJob(id: JobID("c"), name: "f", arguments: "3", queue: "other"),
        ])
        clock.advance(1)
        try await broker.enqueue(NewJob(id: JobID("d"), name: "f", arguments: "4"))
        let first = try await broker.claim(queues: ["default"], limit: 2, worker: "w1", lease: .seconds(30))
        #expect(first.map(\.id) == [JobID("b"), JobID("a")])
        #expect(
            first.allSatisfy { $0.state == .running && $0.attempts == 1 && $0.worker == "w1" && $0.leaseUntil != nil })
        let rest = try await broker.claim(queues: ["default"], limit: 10, worker: "w2", lease: .seconds(30))
        #expect(rest.map(\.id) == [JobID("d")])
        #expect(try await broker.claim(queues: ["default"], limit: 10, worker: "w2", lease: .seconds(30)).isEmpty)
        #expect(
            try await broker.claim(queues: ["other"], limit: 10, worker: "w2", lease: .seconds(30)).map(\.id) == [
                JobID("c")
            ])
    }

    @Test(arguments: kinds)
    func onlyTheHolderRecordsAResult(kind: Kind) async throws {
        let clock = TestClock()
        let broker = try await make(kind, clock)
        try await broker.enqueue(NewJob(id: JobID("j"), name: "f", arguments: "[]"))
        _ = try await broker.claim(queues: ["default"], limit: 1, worker: "w1", lease: .seconds(30))
        #expect(try await broker.succeed(JobID("j"), worker: "w2", result: "0") == false)
        #expect(try await broker.succeed(JobID("j"), worker: "w1", result: "42"))
        let job = try #require(try await broker.job(JobID("j")))
        #expect(job.state == .succeeded && job.result == "42" && job.finishedAt != nil)
        #expect(try await broker.succeed(JobID("j"), worker: "w1", result: "43") == false)
    }

    @Test(arguments: kinds)
    func aFailedAttemptWaitsItsBackoffThenFailsForGood(kind: Kind) async throws {
        let clock = TestClock()
        let broker = try await make(kind, clock)
        try await broker.enqueue(NewJob(id: JobID("j"), name: "f", arguments: "[]", maxAttempts: 2))
        _ = try await broker.claim(queues: ["default"], limit: 1, worker: "w", lease: .seconds(30))
        let retryAt = clock.read().addingTimeInterval(10)
        #expect(
            try await broker.fail(
                JobID("j"), worker: "w", error: AttemptError(attempt: 1, message: "boom"), retryAt: retryAt)
                == .retrying)
        #expect(try await broker.claim(queues: ["default"], limit: 1, worker: "w", lease: .seconds(30)).isEmpty)
        clock.advance(11)
        let again = try await broker.claim(queues: ["default"], limit: 1, worker: "w", lease: .seconds(30))
        #expect(again.first?.attempts == 2)
        #expect(
            try await broker.fail(
                JobID("j"), worker: "w", error: AttemptError(attempt: 2, message: "boom again"), retryAt: clock.read())
                == .failed)
        let job = try #require(try await broker.job(JobID("j")))
        #expect(job.state == .failed && job.errors.map(\.message) == ["boom", "boom again"])
        #expect(
            try await broker.fail(JobID("j"), worker: "w", error: AttemptError(attempt: 3, message: "x"), retryAt: nil)
                == nil)
    }

    @Test(arguments: kinds)
    func anExpiredLeaseReturnsTheJobUntilItsAttemptsRunOut(kind: Kind) async throws {
        let clock = TestClock()
        let broker = try await make(kind, clock)
        try await broker.enqueue([
            NewJob(id: JobID("kept"), name: "f", arguments: "[]", maxAttempts: 3),
            NewJob(id: JobID("lost"), name: "f", arguments: "[]", maxAttempts: 1),
        ])
        _ = try await broker.claim(queues: ["default"], limit: 2, worker: "dead", lease: .seconds(30))
        clock.advance(20)
        #expect(try await broker.renew([JobID("kept")], worker: "dead", lease: .seconds(30)) == [JobID("kept")])
        clock.advance(15)
        let failedMark = broker.signalMark(.results)
        #expect(try await broker.reapExpiredLeases() == 1)  // "kept" was renewed; "lost" expired.
        #expect(try await broker.job(JobID("lost"))?.state == .failed)
        // Its waiters hear of it (no poll: without the wake-up this waits the whole timeout, and the test fails).
        await broker.awaitSignal(.results, after: failedMark, timeout: .seconds(3600))
        clock.advance(30)
        let returnedMark = broker.signalMark(.jobs)
        #expect(try await broker.reapExpiredLeases() == 1)
        await broker.awaitSignal(.jobs, after: returnedMark, timeout: .seconds(3600))  // Idle workers hear of it.
        let kept = try #require(try await broker.job(JobID("kept")))
        #expect(kept.state == .available && kept.attempts == 1 && kept.errors.count == 1)
        #expect(try await broker.renew([JobID("kept")], worker: "dead", lease: .seconds(30)).isEmpty)
        // The dead worker's late result is dropped.
        #expect(try await broker.succeed(JobID("kept"), worker: "dead", result: "1") == false)
    }

    @Test(arguments: kinds)
    func releaseCancelExpiryAndETAs(kind: Kind) async throws {
        let clock = TestClock()
        let broker = try await make(kind, clock)
        let now = clock.read()
        try await broker.enqueue([
            NewJob(id: JobID("released"), name: "f", arguments: "[]"),
            NewJob(id: JobID("cancelled"), name: "f", arguments: "[]"),
            NewJob(id: JobID("expiring"), name: "f", arguments: "[]", expiresAt: now.addingTimeInterval(5)),
            NewJob(id: JobID("later"), name: "f", arguments: "[]", runAt: now.addingTimeInterval(60)),
            NewJob(id: JobID("past"), name: "f", arguments: "[]", runAt: now.addingTimeInterval(-60)),
        ])
        #expect(try await broker.job(JobID("later"))?.state == .scheduled)
        #expect(try await broker.job(JobID("past"))?.state == .available)
        #expect(try await broker.cancel(JobID("cancelled")))
        let claimed = try await broker.claim(queues: ["default"], limit: 1, worker: "w", lease: .seconds(30))
        try await broker.release(claimed.map(\.id), worker: "w")
        #expect(try await broker.job(claimed[0].id)?.attempts == 0)
        clock.advance(10)
        var seen: [JobID] = []
        while true {
            let batch = try await broker.claim(queues: ["default"], limit: 10, worker: "w", lease: .seconds(30))
            if batch.isEmpty { break }
            seen += batch.map(\.id)
            for job in batch { _ = try await broker.succeed(job.id, worker: "w", result: "null") }
        }
        #expect(Set(seen) == [JobID("released"), JobID("past")])
        #expect(try await broker.job(JobID("expiring"))?.state == .expired)
        #expect(try await broker.job(JobID("cancelled"))?.state == .cancelled)
        #expect(try await broker.cancel(JobID("past")) == false)  // Already ended.
        clock.advance(60)
        #expect(
            try await broker.claim(queues: ["default"], limit: 10, worker: "w", lease: .seconds(30)).map(\.id) == [
                JobID("later")
            ])
        let counts = try await broker.counts()
        #expect(
            counts == [QueueCounts(queue: "default", counts: [.succeeded: 2, .expired: 1, .cancelled: 1, .running: 1])])
    }

    @Test(arguments: kinds)
    func listingRetryingAndPurging(kind: Kind) async throws {
        let clock = TestClock()
        let broker = try await make(kind, clock)
        try await broker.enqueue([
            NewJob(id: JobID("a"), name: "f", arguments: "[]"),
            NewJob(id: JobID("b"), name: "f", arguments: "[]", queue: "mail"),
            NewJob(id: JobID("c"), name: "f", arguments: "[]", queue: "mail"),
        ])
        #expect(
            try await broker.jobs(queue: "mail", states: nil, limit: 10).map(\.id).sorted { $0.rawValue < $1.rawValue }
                == [JobID("b"), JobID("c")])
        _ = try await broker.claim(queues: ["default"], limit: 1, worker: "w", lease: .seconds(30))
        _ = try await broker.fail(JobID("a"), worker: "w", error: AttemptError(attempt: 1, message: "no"), retryAt: nil)
        #expect(try await broker.jobs(queue: nil, states: [.failed], limit: 10).map(\.id) == [JobID("a")])
        #expect(try await broker.retry(JobID("a")))
        #expect(try await broker.retry(JobID("b")) == false)  // Not ended.
        let again = try #require(try await broker.job(JobID("a")))
        #expect(again.state == .available && again.attempts == 0 && again.errors.count == 1)
        #expect(try await broker.purge(queue: "mail") == 2)
        #expect(try await broker.jobs(queue: "mail", states: nil, limit: 10).isEmpty)
        #expect(try await broker.jobs(queue: nil, states: [], limit: 10).isEmpty)
    }

    @Test(arguments: kinds)
    func endedJobsAreDeletedOnceTheirResultTTLHasPassed(kind: Kind) async throws {
        let clock = TestClock()
        let broker = try await make(kind, clock)
        try await broker.enqueue([
            NewJob(id: JobID("short"), name: "f", arguments: "[]", resultTTL: .seconds(10)),
            NewJob(id: JobID("kept"), name: "f", arguments: "[]"),
            NewJob(id: JobID("waiting"), name: "f", arguments: "[]", queue: "later", resultTTL: .seconds(1)),
        ])
        for job in try await broker.claim(queues: ["default"], limit: 2, worker: "w", lease: .seconds(30)) {
            _ = try await broker.succeed(job.id, worker: "w", result: "1")
        }
        clock.advance(5)
        #expect(try await broker.deleteExpiredResults() == 0)
        clock.advance(6)
        #expect(try await broker.deleteExpiredResults() == 1)
        #expect(try await broker.job(JobID("short")) == nil)
        #expect(try await broker.job(JobID("kept"))?.state == .succeeded)  // No TTL: kept.
        #expect(try await broker.job(JobID("waiting"))?.state == .available)  // Not ended: kept.
    }

    @Test(arguments: kinds)
    func eachPeriodOfAScheduleGoesToOneScheduler(kind: Kind) async throws {
        let clock = TestClock()
        let broker = try await make(kind, clock)
        #expect(try await broker.claimSchedule("report", every: .seconds(60)))  // New: due at once.
        #expect(try await broker.claimSchedule("report", every: .seconds(60)) == false)  // Taken this period.
        clock.advance(59)
        #expect(try await broker.claimSchedule("report", every: .seconds(60)) == false)
        clock.advance(2)
        let turns = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<4 { group.addTask { try await broker.claimSchedule("report", every: .seconds(60)) } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(turns == 1)
    }

    @Test(arguments: kinds)
    func recordsABatchOfOutcomesAndWakesResultWaiters(kind: Kind) async throws {
        let clock = TestClock()
        let broker = try await make(kind, clock)
        try await broker.enqueue(
            ["a", "b", "c", "d"].map { NewJob(id: JobID($0), name: "f", arguments: "[]", maxAttempts: 2) })
        _ = try await broker.claim(queues: ["default"], limit: 3, worker: "w1", lease: .seconds(30))
        _ = try await broker.claim(queues: ["default"], limit: 1, worker: "w2", lease: .seconds(30))
        // b: an attempt left, a retry time: retrying. c: no retry time: failed. d: w2's, not w1's: dropped.
        try await broker.enqueue(NewJob(id: JobID("e"), name: "f", arguments: "[]"))
        _ = try await broker.claim(queues: ["default"], limit: 1, worker: "w1", lease: .seconds(30))
        let mark = broker.signalMark(.results)
        let error = AttemptError(attempt: 1, message: "boom")
        let states = try await broker.record(
            [
                JobOutcome(JobID("a"), result: "1"),
                JobOutcome(JobID("b"), error: error, retryAt: clock.read().addingTimeInterval(5)),
                JobOutcome(JobID("c"), error: error, retryAt: nil),
                JobOutcome(JobID("d"), result: "4"),
                JobOutcome(JobID("e"), result: "5"),
            ], worker: "w1")
        #expect(states == [.succeeded, .retrying, .failed, nil, .succeeded])
        #expect(try await broker.job(JobID("a"))?.result == "1")
        #expect(try await broker.job(JobID("b"))?.errors == [error])
        #expect(try await broker.job(JobID("d"))?.state == .running)
        // A waiter that marked before the record sees the wake-up (it does not wait for the timeout: a broker that
        // starts listening when first asked raises the signal once it listens, for what it may have missed).
        await broker.awaitSignal(.results, after: mark, timeout: .seconds(600))
        #expect(broker.signalMark(.results) != mark)
        #expect(try await broker.record([], worker: "w1").isEmpty)
    }

    @Test(arguments: kinds)
    func enqueueIsAllOrNothingAndChecksItsInput(kind: Kind) async throws {
        let clock = TestClock()
        let broker = try await make(kind, clock)
        try await broker.enqueue(NewJob(id: JobID("x"), name: "f", arguments: "[]"))
        await #expect(throws: BrokerError.self) {
            try await broker.enqueue([
                NewJob(id: JobID("y"), name: "f", arguments: "[]"), NewJob(id: JobID("x"), name: "f", arguments: "[]"),
            ])
        }
        #expect(try await broker.job(JobID("y")) == nil)
        await #expect(throws: BrokerError.self) {
            try await broker.enqueue(NewJob(name: "f", arguments: "[]", maxAttempts: 0))
        }
        await #expect(throws: BrokerError.self) { try await broker.enqueue(NewJob(name: "", arguments: "[]")) }
        // Names and queues with quotes are data.
        try await broker.enqueue(
            NewJob(id: JobID("q"), name: "it's", arguments: "[]", queue: "o'queue\"; DROP TABLE crew_jobs; --"))
        let claimed = try await broker.claim(
            queues: ["o'queue\"; DROP TABLE crew_jobs; --"], limit: 1, worker: "w", lease: .seconds(1))
        #expect(claimed.first?.name == "it's")
    }
}
