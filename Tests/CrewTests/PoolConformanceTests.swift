import CrewTestHelpers
import CrewTestSupport
import Synchronization
import Testing

@testable import Crew

/// The same cases against ``ProcessPool`` and ``ThreadPool``: the API Python's `Pool` and
/// `multiprocessing.dummy.Pool` share behaves the same on processes and on threads.
@Suite struct PoolConformanceTests {
    enum Kind: String, CaseIterable, CustomTestStringConvertible {
        case processes, threads
        var testDescription: String { rawValue }
    }

    init() {
        _ = testCrew
    }

    func makePool(_ kind: Kind, _ n: Int = 2) throws -> any WorkerPool {
        switch kind {
        case .processes: try ProcessPool(testCrew, processes: n)
        case .threads: try ThreadPool(processes: n)
        }
    }

    @Test(arguments: Kind.allCases)
    func applyAndApplyAsync(kind: Kind) async throws {
        let pool = try makePool(kind)
        #expect(try await pool.apply(TestFunctions.square, 12) == 144)
        let called = Mutex<Int?>(nil)
        let result = try pool.applyAsync(
            TestFunctions.add, Pair(2, 3), timeout: nil,
            callback: { value in
                called.withLock { $0 = value }
            }, errorCallback: nil)
        #expect(try await Crew.blocking { try result.get(timeout: .seconds(30)) } == 5)
        #expect(result.ready)
        #expect(try result.successful)
        #expect(called.withLock { $0 } == 5)
        pool.close()
        try await pool.join()
    }

    @Test(arguments: Kind.allCases)
    func mapKeepsOrderWithAnyChunkSize(kind: Kind) async throws {
        let pool = try makePool(kind)
        let items = Array(0..<1000)
        #expect(try await pool.map(TestFunctions.square, items) == items.map { $0 * $0 })
        #expect(try await pool.map(TestFunctions.square, items, chunkSize: 7) == items.map { $0 * $0 })
        #expect(try await pool.map(TestFunctions.square, [Int]()) == [])
        await expectCrewError(.invalidArgument) { try await pool.map(TestFunctions.square, items, chunkSize: 0) }
        var ordered: [Int] = []
        for try await x in try pool.imap(TestFunctions.square, 0..<50, chunkSize: 3, timeout: nil) { ordered.append(x) }
        #expect(ordered == (0..<50).map { $0 * $0 })
        var unordered: [Int] = []
        for try await x in try pool.imapUnordered(TestFunctions.square, 0..<50, chunkSize: 1, timeout: nil) {
            unordered.append(x)
        }
        #expect(unordered.sorted() == (0..<50).map { $0 * $0 })
        pool.close()
        try await pool.join()
    }

    @Test(arguments: Kind.allCases)
    func aThrowingFunctionFailsItsCallWithItsTypeAndTheMapWithTheFirst(kind: Kind) async throws {
        let pool = try makePool(kind)
        let error = await expectCrewError(.remoteError) { try await pool.apply(TestFunctions.fail, "no") }
        #expect(error?.remoteErrorType?.hasSuffix("TestFailure") == true)
        #expect(error?.message.contains("no") == true)
        await expectCrewError(.remoteError) { try await pool.map(TestFunctions.fail, ["a", "b"]) }
        #expect(try await pool.apply(TestFunctions.square, 3) == 9)  // The pool goes on.
        pool.close()
        try await pool.join()
    }

    @Test(arguments: Kind.allCases)
    func closeJoinAndTerminateAsPythonDoes(kind: Kind) async throws {
        let pool = try makePool(kind, 1)
        await expectCrewError(.poolNotClosed) { try await pool.join() }
        // One slow call runs (long enough that a busy machine cannot finish it first); the rest wait behind it
        // and are failed by terminate.
        let slow = try pool.applyAsync(
            TestFunctions.blockMilliseconds, 3000, timeout: nil, callback: nil, errorCallback: nil)
        let waiting = try (0..<5).map { _ in
            try pool.applyAsync(TestFunctions.blockMilliseconds, 1, timeout: nil, callback: nil, errorCallback: nil)
        }
        // At once: no sleep, whose length a loaded machine does not keep (blocking tests hold the cooperative
        // threads). The slow call may or may not have started; the others cannot have finished.
        pool.terminate()
        for result in waiting { await expectCrewError(.terminated) { try await result.value } }
        _ = try? await slow.value
        try await pool.join()
        await expectCrewError(.poolClosed) { try await pool.apply(TestFunctions.square, 2) }

        let closing = try makePool(kind)
        let queued = try (0..<4).map {
            try closing.applyAsync(TestFunctions.square, $0, timeout: nil, callback: nil, errorCallback: nil)
        }
        closing.close()
        await expectCrewError(.poolClosed) { try await closing.apply(TestFunctions.square, 2) }
        try await closing.join()
        for (i, result) in queued.enumerated() { #expect(try await result.value == i * i) }  // Queued work finishes.
    }

    @Test(arguments: Kind.allCases)
    func aCallOverItsTimeoutFailsWithTimedOut(kind: Kind) async throws {
        let pool = try makePool(kind)
        await expectCrewError(.timedOut) {
            try await pool.apply(TestFunctions.blockMilliseconds, 2000, timeout: .milliseconds(100))
        }
        #expect(try await pool.apply(TestFunctions.square, 4) == 16)
        pool.terminate()
        try await pool.join()
    }

    @Test(arguments: Kind.allCases)
    func manyTasksShareOnePool(kind: Kind) async throws {
        let pool = try makePool(kind)
        let sums = try await withThrowingTaskGroup(of: Int.self) { group in
            for t in 0..<8 {
                group.addTask {
                    try await pool.map(TestFunctions.square, (t * 100)..<(t * 100 + 100), chunkSize: 10).reduce(0, +)
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(sums == (0..<800).map { $0 * $0 }.reduce(0, +))
        pool.close()
        try await pool.join()
    }
}

/// What only threads do: closures, thread names, an initializer per thread.
@Suite struct ThreadTests {
    @Test func aThreadRunsItsBodyAndJoinReportsWhatItThrew() async throws {
        let ran = Mutex(false)
        let t = Crew.Thread { ran.withLock { $0 = true } }
        #expect(t.name.hasPrefix("Thread-"))
        #expect(throws: CrewError.self) { try t.join() }  // Not started.
        try t.start()
        try await t.join()
        #expect(ran.withLock { $0 } && !t.isAlive && t.ident != nil)
        #expect(throws: CrewError.self) { try t.start() }

        let failing = Crew.Thread(name: "failing") { throw TestFailure(reason: "boom") }
        try failing.start()
        #expect(throws: TestFailure.self) { try failing.join() }
    }

    @Test func currentNamesTheThread() async throws {
        let seen = Mutex<String?>(nil)
        let t = Crew.Thread(name: "worker-7") { seen.withLock { $0 = Crew.Thread.current.name } }
        try t.start()
        #expect(try t.join(timeout: .seconds(10)))
        #expect(seen.withLock { $0 } == "worker-7")
        let pool = try ThreadPool(processes: 2)
        let names = try await pool.map(Array(0..<20), chunkSize: 1) { _ in Crew.Thread.current.name }
        #expect(Set(names).count <= 2 && names.allSatisfy { $0.hasPrefix("Thread-") })
        pool.close()
        try await pool.join()
    }

    @Test func closuresAndInitializersRunOnThePoolsThreads() async throws {
        let initialized = Mutex(0)
        let pool = try ThreadPool(processes: 3, initializer: { initialized.withLock { $0 += 1 } })
        #expect(try await pool.apply { 6 * 7 } == 42)
        #expect(try await pool.map([1, 2, 3]) { $0 * 10 } == [10, 20, 30])
        pool.close()
        try await pool.join()
        #expect(initialized.withLock { $0 } == 3)

        let broken = try ThreadPool(processes: 1, initializer: { throw TestFailure(reason: "no init") })
        try await Task.sleep(for: .milliseconds(50))
        await expectCrewError(.remoteError) { try await broken.apply { 1 } }
        broken.close()
        #expect(try broken.join(timeout: .seconds(10)))
        #expect(throws: CrewError.self) { try ThreadPool(processes: 0) }
    }

    /// Counts the tokens alive, to see that a failed map releases the results its chunks had made.
    final class Live: Sendable {
        let count = Atomic<Int>(0)
    }

    final class Token: Sendable {
        let live: Live
        init(_ live: Live) {
            self.live = live
            live.count.add(1, ordering: .relaxed)
        }
        deinit { live.count.subtract(1, ordering: .relaxed) }
    }

    @Test func aMapWritesResultsInPlaceAndReleasesThemWhenAChunkFails() async throws {
        let pool = try ThreadPool(processes: 2)
        // Results with storage of their own, chunks of an odd size: every one lands in its place.
        let words = try await pool.map(Array(0..<1000), chunkSize: 7) {
            String(repeating: "x", count: $0 % 40) + "\($0)"
        }
        #expect(words == (0..<1000).map { String(repeating: "x", count: $0 % 40) + "\($0)" })

        // A chunk that throws part-way: the map fails with that error, and every result made is released, in that
        // chunk and in the chunks that succeeded.
        let live = Live()
        await expectCrewError(.remoteError) {
            _ = try await pool.map(Array(0..<1000), chunkSize: 100) { i -> Token in
                if i == 550 { throw TestFailure(reason: "at 550") }
                return Token(live)
            }
        }
        pool.close()
        try await pool.join()  // Every chunk has ended.
        #expect(live.count.load(ordering: .relaxed) == 0)
    }
}
