import Crew
import CrewTestHelpers
import Foundation
import Synchronization
import Testing

@testable import CrewQueue

/// The durable queue's small parts: job ids, group commit, in-process wake-ups.
@Suite struct QueuePartsTests {
    @Test func aNegativeCountdownIsRefusedAndAPastETAMeansNow() async throws {
        let client = TaskClient(broker: MemoryBroker())
        let double = QueueTask(QueuedWork.double)
        let error = await expectCrewError(.invalidArgument) {
            try await client.enqueue(double, 1, countdown: .seconds(-5))
        }
        #expect(error?.message.contains("a countdown cannot be negative") == true)
        #expect(try await client.broker.counts().isEmpty)
        let past = try client.job(double, 1, eta: Date(timeIntervalSinceNow: -60))
        #expect(past.runAt.map { $0 < Date() } == true)  // Due at once.
        // An argument that does not decode as the task's is refused before it is stored.
        let wrong = try #require(throws: CrewError.self) { try double.check(arguments: "\"seven\"") }
        #expect(wrong.code == .decodingFailed && wrong.message.contains("do not decode as Int"))
        try double.check(arguments: "7")
    }

    @Test func errorsThatDoNotReadAreKeptWholeNotDropped() throws {
        #expect(AttemptError.list(fromJSON: "[]").isEmpty)
        let one = AttemptError(
            attempt: 2, message: "boom", type: "T", at: Date(timeIntervalSince1970: 5), value: "AQI=")
        let encoder = JSONEncoder()
        let json = String(decoding: try encoder.encode([one]), as: UTF8.self)
        #expect(AttemptError.list(fromJSON: json) == [one])
        let damaged = AttemptError.list(fromJSON: "[{\"attempt\": 1, \"mess")
        #expect(damaged.count == 1 && damaged[0].type == "BrokerError.storage")
        #expect(damaged[0].message.hasSuffix("[{\"attempt\": 1, \"mess"))
    }

    @Test func jobIDsAreVersionSevenUUIDsInTimeOrder() async throws {
        let first = JobID.make()
        var ids = Set<String>()
        for _ in 0..<10_000 { ids.insert(JobID.make().rawValue) }
        #expect(ids.count == 10_000)
        for text in ids.prefix(100) + [first.rawValue] {
            let uuid = try #require(UUID(uuidString: text), "\(text)")
            #expect(uuid.uuidString.lowercased() == text)
            let bytes = withUnsafeBytes(of: uuid.uuid) { Array($0) }
            #expect(bytes[6] >> 4 == 7)  // version 7
            #expect(bytes[8] >> 6 == 0b10)  // RFC 4122 variant
        }
        try await Task.sleep(for: .milliseconds(2))
        #expect(first.rawValue < JobID.make().rawValue)  // later milliseconds sort later
    }

    @Test func callersThatArriveDuringAWriteAreWrittenTogether() async throws {
        let gate = AsyncEvent()
        let batches = Mutex<[[Int]]>([])
        let commit = GroupCommit<Int, Int> { entries in
            batches.withLock { $0.append(entries) }
            if entries == [0] { _ = await gate.wait() }
            return entries.map { $0 * 10 }
        }
        let leader = Task { try await commit.submit(0) }
        while batches.withLock({ $0.isEmpty }) { await Task.yield() }
        let followers = (1...10).map { i in Task { try await commit.submit(i) } }
        while commit.waiting < 10 { await Task.yield() }
        gate.set()
        #expect(try await leader.value == 0)
        for (i, follower) in followers.enumerated() { #expect(try await follower.value == (i + 1) * 10) }
        let written = batches.withLock { $0 }
        #expect(written.count == 2 && written[0] == [0] && Set(written[1]) == Set(1...10))
    }

    @Test func aFailedWriteFailsEveryCallerInIt() async throws {
        struct Full: Error {}
        let gate = AsyncEvent()
        let leading = AsyncEvent()
        let commit = GroupCommit<Int, Int> { entries in
            if entries == [0] {
                leading.set()
                _ = await gate.wait()
                return [0]
            }
            throw Full()
        }
        let leader = Task { try await commit.submit(0) }
        _ = await leading.wait()
        let followers = (1...3).map { i in Task { try await commit.submit(i) } }
        while commit.waiting < 3 { await Task.yield() }
        gate.set()
        #expect(try await leader.value == 0)
        for follower in followers { await #expect(throws: Full.self) { try await follower.value } }
        // Still usable: the next caller leads a write of its own.
        await #expect(throws: Full.self) { try await commit.submit(5) }
    }

    @Test func signalsWakeWaitersAndTimeOut() async throws {
        let signals = BrokerSignals()
        let mark = signals.mark(.results)
        let waiter = Task { await signals.wait(.results, after: mark, timeout: .seconds(600)) }
        signals.raise(.jobs)  // the other signal: the waiter sleeps on
        signals.raise(.results)
        await waiter.value
        #expect(signals.mark(.results) == mark + 1 && signals.mark(.jobs) == 1)
        // Raised before the wait began: no wait at all. Not raised: the timeout ends it.
        await signals.wait(.results, after: mark, timeout: .seconds(600))
        await signals.wait(.jobs, after: signals.mark(.jobs), timeout: .milliseconds(1))
    }
}
