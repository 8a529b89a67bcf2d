import CrewTestHelpers
import CrewTestSupport
import Synchronization
import Testing

@testable import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// Counts how many of something run at once, and the most there were.
final class Concurrency: Sendable {
    private let state = Mutex((now: 0, most: 0))
    func enter() {
        state.withLock {
            $0.now += 1
            $0.most = max($0.most, $0.now)
        }
    }
    func leave() { state.withLock { $0.now -= 1 } }
    var most: Int { state.withLock { $0.most } }
}

/// gevent's toolkit on Swift tasks: spawn, joinAll, timeouts, pools, events, channels, blocking calls.
@Suite struct CoroutineTests {
    @Test func spawnedCoroutinesRunTogetherAndJoinAllWaitsForThem() async throws {
        let coroutines = (0..<3).map { i in
            Crew.spawn {
                try await Crew.sleep(for: .milliseconds(50))
                try await Crew.sleep(for: .zero)
                return i * 2
            }
        }
        let done = try await Crew.joinAll(coroutines)
        #expect(done.count == 3 && done.allSatisfy(\.isDone) && done.allSatisfy(\.succeeded))
        var values: [Int] = []
        for c in coroutines { values.append(try await c.value) }
        #expect(values == [0, 2, 4])
    }

    @Test func aThrowingCoroutineEndsJoinAllWithItsErrorAndCancelsTheRest() async throws {
        let sleeper = Crew.spawn { try await Task.sleep(for: .seconds(60)) }
        let thrower = Crew.spawn { () async throws in
            try await Task.sleep(for: .milliseconds(20))
            throw TestFailure(reason: "boom")
        }
        await #expect(throws: TestFailure.self) { try await Crew.joinAll([sleeper, thrower], raiseError: true) }
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        // Without raiseError (gevent's default) failures stay in the coroutines.
        let failed = Crew.spawn { () async throws -> Int in throw TestFailure(reason: "quiet") }
        let done = try await Crew.joinAll([failed])
        #expect(done.count == 1 && !done[0].succeeded)
    }

    @Test func joinAllWithATimeoutReturnsWhatFinished() async throws {
        let never = AsyncEvent()
        let quick = Crew.spawn { 1 }
        let stuck = Crew.spawn {
            await never.wait()
            return 2
        }
        _ = try await quick.value  // Finished before the wait starts, however busy the machine is.
        let done = try await Crew.joinAll([quick, stuck], timeout: .milliseconds(50))
        #expect(done.count == 1 && done[0].isDone && !stuck.isDone)
        stuck.cancel()
        #expect(try await stuck.value == 2)  // Its wait ended by cancellation; it returned.
    }

    @Test func withTimeoutGivesUpOnACallThatNeverReturns() async throws {
        // A call that finishes is not timed out (a generous limit: a busy test run may delay even a trivial call).
        #expect(try await Crew.withTimeout(.seconds(300)) { 42 } == 42)
        let error = await expectCrewError(.timedOut) {
            try await Crew.withTimeout(.milliseconds(50)) {
                let never = AsyncEvent()
                await never.wait()
                return 0
            }
        }
        #expect(error != nil)
        // Even a call that ignores cancellation: the caller gets the time-out at once.
        await expectCrewError(.timedOut) {
            try await Crew.withTimeout(.milliseconds(50)) { try await Crew.blocking { usleep(300_000) } }
        }
    }

    @Test func aCoroutinePoolBoundsConcurrencyAndKeepsOrder() async throws {
        let pool = try CoroutinePool(size: 4)
        let active = Concurrency()
        let squares = try await pool.map(0..<200) { (n: Int) -> Int in
            active.enter()
            try await Task.sleep(for: .milliseconds(1))
            active.leave()
            return n * n
        }
        #expect(squares == (0..<200).map { $0 * $0 })
        #expect(active.most <= 4)
        var unordered: [Int] = []
        for try await x in pool.imapUnordered(0..<50, { $0 + 1 }) { unordered.append(x) }
        #expect(unordered.sorted() == Array(1...50))
        await #expect(throws: TestFailure.self) {
            try await pool.map([1, 2, 3]) { n -> Int in
                if n == 2 { throw TestFailure(reason: "two") }
                return n
            }
        }
        #expect(throws: CrewError.self) { try CoroutinePool(size: 0) }
    }

    @Test func spawnOnAFullPoolWaitsForASlotAndCancelAllStopsTheRest() async throws {
        let pool = try CoroutinePool(size: 2)
        let gate = AsyncEvent()
        for _ in 0..<2 { try await pool.spawn { await gate.wait() } }
        #expect(pool.running == 2)
        let third = Task { try await pool.spawn { 3 } }
        try await Task.sleep(for: .milliseconds(30))
        #expect(pool.running == 2)  // The third waits for a slot.
        gate.set()
        #expect(try await third.value.value == 3)
        try await pool.join()
        #expect(pool.running == 0)

        for _ in 0..<2 { try await pool.spawn { try await Task.sleep(for: .seconds(60)) } }
        pool.cancelAll()
        try await pool.join()  // Cancelled coroutines end, so join returns.
    }

    @Test func blockingCallsRunOnABoundedPool() async throws {
        let pool = BlockingPool(limit: 2)
        let active = Concurrency()
        try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<8 {
                group.addTask {
                    try await pool.run {
                        active.enter()
                        usleep(20_000)
                        active.leave()
                        return i
                    }
                }
            }
            var sum = 0
            for try await i in group { sum += i }
            #expect(sum == 28)
        }
        #expect(active.most <= 2)
        #expect(pool.threads <= 2)
        await #expect(throws: TestFailure.self) { try await pool.run { throw TestFailure(reason: "in a thread") } }
    }

    @Test func eventsAndChannelsConnectCoroutines() async throws {
        let event = AsyncEvent()
        #expect(await event.wait(timeout: .milliseconds(20)) == false)
        let waiter = Crew.spawn { await event.wait() }
        event.set()
        #expect(try await waiter.value)
        #expect(event.isSet)
        event.clear()
        #expect(!event.isSet)

        let channel = Crew.Channel<Int>()
        let producer = Crew.spawn {
            for i in 0..<5 { await channel.send(i) }
            channel.finish()
        }
        var got: [Int] = []
        for await i in channel { got.append(i) }
        try await producer.value
        #expect(got == [0, 1, 2, 3, 4])
    }
}
