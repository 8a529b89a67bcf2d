import CrewTestHelpers
import CrewTestSupport
import CrewTesting
import Foundation
import Synchronization
import Testing

@testable import Crew

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ProcessPoolTests {
    func pool(_ processes: Int = 2, maxTasksPerChild: Int? = nil, options: ProcessPool.Options = .init()) throws
        -> ProcessPool
    {
        try ProcessPool(testCrew, processes: processes, maxTasksPerChild: maxTasksPerChild, options: options)
    }

    func finish(_ pool: ProcessPool) async throws {
        pool.close()
        try await pool.join()
    }

    @Test func applyAndApplyAsync() async throws {
        let pool = try pool()
        #expect(try await pool.apply(TestFunctions.square, 7) == 49)
        let result = try pool.applyAsync(TestFunctions.add, Pair(40, 2))
        // Off the cooperative threads.
        #expect(try await Crew.blocking { try result.get(timeout: .seconds(30)) } == 42)
        #expect(result.ready)
        #expect(try result.successful)
        #expect(try await pool.apply(TestFunctions.greet, "pool") == "hello, pool")
        try await finish(pool)
    }

    @Test func callbacksRunWithTheResult() async throws {
        let pool = try pool()
        let seen = Mutex<[Int]>([])
        let failures = Mutex<[CrewError.Code]>([])
        let ok = try pool.applyAsync(TestFunctions.square, 5, callback: { value in seen.withLock { $0.append(value) } })
        let bad = try pool.applyAsync(
            TestFunctions.fail,
            "no",
            errorCallback: { error in failures.withLock { $0.append(error.code) } }
        )
        try await ok.wait()
        try await bad.wait()
        #expect(seen.withLock { $0 } == [25])
        #expect(failures.withLock { $0 } == [.remoteError])
        #expect(try !bad.successful)
        try await finish(pool)
    }

    @Test func successfulBeforeReadyIsAnError() async throws {
        let pool = try pool(1)
        let slow = try pool.applyAsync(TestFunctions.sleepMilliseconds, 300)
        #expect(throws: CrewError.self) { try slow.successful }
        #expect(!slow.wait(timeout: .milliseconds(10)))
        await expectCrewError(.timedOut) { try slow.get(timeout: .milliseconds(10)) }
        #expect(try await slow.value == 300)
        try await finish(pool)
    }

    @Test func aThreadBlockedInGetSeesAnswersBeforeADeathAndTheDeathItself() async throws {
        // A thread that blocks in `get` is woken by its worker's reader thread with each answer; the worker's death
        // must reach it too.
        let pool = try pool(1)
        let first = try pool.applyAsync(TestFunctions.blockMilliseconds, 50)
        let trapping = try pool.applyAsync(TestFunctions.trapFatalError, "in get")
        let after = try pool.applyAsync(TestFunctions.square, 9)
        #expect(try await Crew.blocking { try first.get(timeout: .seconds(30)) } == 50)
        let error = try await Crew.blocking { () -> CrewError? in
            do {
                _ = try trapping.get(timeout: .seconds(30))
                return nil
            } catch {
                return error as? CrewError
            }
        }
        #expect(error?.code == .workerCrashed)
        // The call queued behind the trap runs on the replacement worker.
        #expect(try await Crew.blocking { try after.get(timeout: .seconds(30)) } == 81)
        #expect(
            try await Crew.blocking { try pool.applyAsync(TestFunctions.square, 4).get(timeout: .seconds(30)) } == 16)
        try await finish(pool)
    }

    @Test func mapKeepsOrderWithAnyChunkSize() async throws {
        let pool = try pool()
        let items = Array(0..<1000)
        #expect(try await pool.map(TestFunctions.square, items) == items.map { $0 * $0 })
        #expect(try await pool.map(TestFunctions.square, items, chunkSize: 1) == items.map { $0 * $0 })
        #expect(try await pool.map(TestFunctions.square, items, chunkSize: 333) == items.map { $0 * $0 })
        #expect(try await pool.map(TestFunctions.square, [Int]()) == [])
        #expect(try await pool.starmap(TestFunctions.add, [Pair(1, 2), Pair(3, 4)]) == [3, 7])
        let mapped = try pool.mapAsync(TestFunctions.square, 0..<10)
        #expect(try await Crew.blocking { try mapped.get() } == (0..<10).map { $0 * $0 })
        try await finish(pool)
    }

    @Test func pythonsAutomaticChunkSize() {
        #expect(ProcessPool.automaticChunkSize(count: 1_000_000, processes: 2) == 125_000)
        #expect(ProcessPool.automaticChunkSize(count: 10, processes: 2) == 2)
        #expect(ProcessPool.automaticChunkSize(count: 9, processes: 4) == 1)
        #expect(ProcessPool.automaticChunkSize(count: 0, processes: 4) == 1)
    }

    @Test func imapIsOrderedAndImapUnorderedYieldsEverything() async throws {
        let pool = try pool()
        var ordered: [Int] = []
        for try await value in try pool.imap(TestFunctions.square, 0..<200, chunkSize: 7) { ordered.append(value) }
        #expect(ordered == (0..<200).map { $0 * $0 })
        var unordered: [Int] = []
        for try await value in try pool.imapUnordered(TestFunctions.sleepMilliseconds, [50, 10, 30, 1]) {
            unordered.append(value)
        }
        #expect(unordered.sorted() == [1, 10, 30, 50])
        var empty = 0
        for try await _ in try pool.imap(TestFunctions.square, [Int]()) { empty += 1 }
        #expect(empty == 0)
        try await finish(pool)
    }

    @Test func imapThrowsAtTheFailedItem() async throws {
        let pool = try pool()
        var seen: [Int] = []
        do {
            for try await value in try pool.imap(TestFunctions.squareOrTrap, [1, 2, -3, 4]) { seen.append(value) }
            Issue.record("imap should have thrown")
        } catch let error as CrewError {
            #expect(error.code == .workerCrashed)
        }
        // Results before the trap arrive, unless the worker died before sending them (then imap throws there).
        #expect([1, 4].starts(with: seen), "\(seen)")
        #expect(try await pool.apply(TestFunctions.square, 3) == 9)
        try await finish(pool)
    }

    @Test(arguments: ["fatalError", "index", "unwrap", "segfault", "exit", "sigkill"])
    func aCrashingCallFailsAloneAndThePoolGoesOn(kind: String) async throws {
        let pool = try pool()
        let error: CrewError?
        switch kind {
        case "fatalError":
            error = await expectCrewError(.workerCrashed) { try await pool.apply(TestFunctions.trapFatalError, "boom") }
        case "index": error = await expectCrewError(.workerCrashed) { try await pool.apply(TestFunctions.trapIndex, 5) }
        case "unwrap":
            error = await expectCrewError(.workerCrashed) {
                try await pool.apply(TestFunctions.trapUnwrap, Crew.Empty())
            }
        case "segfault":
            error = await expectCrewError(.workerCrashed) { try await pool.apply(TestFunctions.segfault, Crew.Empty()) }
        case "exit": error = await expectCrewError(.workerCrashed) { try await pool.apply(TestFunctions.exitWith, 3) }
        default: error = await expectCrewError(.workerCrashed) { try await pool.apply(TestFunctions.killSelf, SIGKILL) }
        }
        #expect(error?.pid != nil)
        #expect(error?.exitStatus != nil)
        #expect(error?.function != nil)
        if kind == "fatalError" { #expect(error?.lastStderr?.contains("Fatal error: boom") == true) }
        if kind == "exit" { #expect(error?.exitStatus == .exited(3)) }
        if kind == "segfault" { #expect(error?.exitStatus == .signaled(SIGSEGV)) }
        // The pool replaced the worker and serves.
        #expect(try await pool.map(TestFunctions.square, 0..<50) == (0..<50).map { $0 * $0 })
        try await finish(pool)
    }

    @Test func otherWorkersCallsAreUntouchedByACrash() async throws {
        let pool = try pool(2)
        let slow = try pool.applyAsync(TestFunctions.sleepMilliseconds, 500)
        try await Task.sleep(for: .milliseconds(50))
        await expectCrewError(.workerCrashed) { try await pool.apply(TestFunctions.trapIndex, 9) }
        #expect(try await slow.value == 500)
        try await finish(pool)
    }

    @Test func callsQueuedBehindACrashRunElsewhere() async throws {
        // One worker holding several short calls: the crash fails the one that ran, and only it. The calls before
        // it finished, and their answers reach their callers (the child sends what it finished before it starts a
        // call); the calls behind it run on the replacement.
        let pool = try pool(1, options: .init(maxInFlight: 16))
        for i in 0..<20 { _ = try await pool.apply(TestFunctions.square, i) }  // calls are short: pipelining on
        let results = (0..<12).map { i in try! pool.applyAsync(TestFunctions.squareOrTrap, i == 4 ? -1 : i) }
        for (i, result) in results.enumerated() {
            do {
                #expect(try await result.value == i * i)
                #expect(i != 4, "the trapping call succeeded")
            } catch let error as CrewError {
                #expect(i == 4, "call \(i) failed: \(error)")
                #expect(error.code == .workerCrashed && error.callState == .running, "\(error)")
                #expect(error.message.contains("died") && !error.message.contains("finished, but"), "\(error)")
            }
        }
        try await finish(pool)
    }

    @Test func sigkillFromOutsideFailsTheCallPromptly() async throws {
        let pool = try pool(1)
        // The worker serves before the long call is sent: killed while still starting, it would not have held
        // the call (which then runs on its replacement), and under a loaded test run a start can take a while.
        #expect(try await pool.apply(TestFunctions.square, 2) == 4)
        let busy = try pool.applyAsync(TestFunctions.sleepMilliseconds, 60_000)
        try await Task.sleep(for: .milliseconds(200))
        let pids = pool.workerPIDs
        #expect(pids.count == 1)
        for pid in pids { kill(pid, SIGKILL) }
        let error = await expectCrewError(.workerCrashed) { try await busy.value }
        #expect(error?.exitStatus == .signaled(SIGKILL))
        #expect(error?.callState == .running)
        #expect(try await pool.apply(TestFunctions.square, 12) == 144)
        try await finish(pool)
    }

    @Test func aWorkerThatExitsDuringMapFailsTheMap() async throws {
        let pool = try pool(2)
        let error = await expectCrewError(.workerCrashed) {
            try await pool.map(TestFunctions.squareOrTrap, [1, 2, 3, -1, 5, 6, 7, 8], chunkSize: 2)
        }
        #expect(error?.lastStderr?.contains("negative input -1") == true)
        #expect(try await pool.map(TestFunctions.square, 0..<100) == (0..<100).map { $0 * $0 })
        try await finish(pool)
    }

    @Test func aTimeoutStopsAnEndlessCall() async throws {
        let pool = try pool(1, options: .init(timeoutGrace: .milliseconds(200)))
        let error = await expectCrewError(.timedOut) {
            try await pool.apply(TestFunctions.sleepForever, Crew.Empty(), timeout: .milliseconds(200))
        }
        #expect(error?.function == "sleepForever")
        #expect(error?.exitStatus == .signaled(SIGTERM))
        #expect(try await pool.apply(TestFunctions.square, 4, timeout: .seconds(30)) == 16)
        try await finish(pool)
    }

    @Test func aTimeoutStopsARunawayLoop() async throws {
        let pool = try pool(1, options: .init(timeoutGrace: .milliseconds(200)))
        let error = await expectCrewError(.timedOut) {
            try await pool.apply(TestFunctions.spinForever, Crew.Empty(), timeout: .milliseconds(150))
        }
        #expect(error?.exitStatus == .signaled(SIGTERM))
        #expect(try await pool.apply(TestFunctions.square, 8) == 64)
        try await finish(pool)
    }

    @Test func aTimeoutEscalatesToSigkill() async throws {
        let pool = try pool(1, options: .init(timeoutGrace: .milliseconds(100)))
        // A call that ignores SIGTERM is killed after the grace period.
        let error = await expectCrewError(.timedOut) {
            try await pool.apply(TestFunctions.ignoreTermForever, Crew.Empty(), timeout: .milliseconds(100))
        }
        #expect(error?.exitStatus == .signaled(SIGKILL))
        #expect(try await pool.apply(TestFunctions.square, 5) == 25)
        try await finish(pool)
    }

    @Test func timeoutsInAMapAreScaledByChunk() async throws {
        let pool = try pool(2)
        #expect(
            try await pool.map(
                TestFunctions.sleepMilliseconds, [20, 20, 20, 20], chunkSize: 4, timeout: .milliseconds(500)) == [
                    20, 20, 20, 20,
                ])
        await expectCrewError(.timedOut) {
            try await pool.map(TestFunctions.sleepMilliseconds, [20, 5_000], chunkSize: 1, timeout: .milliseconds(300))
        }
        try await finish(pool)
    }

    @Test func workAfterCloseAndJoinBeforeCloseAreTypedErrors() async throws {
        let pool = try pool(1)
        await expectCrewError(.poolNotClosed) { try await pool.join() }
        await expectCrewError(.poolNotClosed) { try pool.join(timeout: .seconds(1)) }
        pool.close()
        await expectCrewError(.poolClosed) { try await pool.apply(TestFunctions.square, 1) }
        await expectCrewError(.poolClosed) { try pool.applyAsync(TestFunctions.square, 1) }
        await expectCrewError(.poolClosed) { try await pool.map(TestFunctions.square, [1, 2]) }
        #expect(try await Crew.blocking { try pool.join(timeout: .seconds(30)) })
    }

    @Test func closeLetsQueuedWorkFinish() async throws {
        let pool = try pool(2)
        let results = try (0..<10).map { try pool.applyAsync(TestFunctions.sleepMilliseconds, 20 + $0) }
        pool.close()
        try await pool.join()
        for (i, result) in results.enumerated() { #expect(try await result.value == 20 + i) }
        #expect(pool.workerPIDs.isEmpty)
    }

    @Test func terminateUnderLoadFailsPendingWorkAndLeavesNothingBehind() async throws {
        let pool = try pool(2)
        let results = try (0..<50).map { _ in try pool.applyAsync(TestFunctions.sleepMilliseconds, 600_000) }
        try await Task.sleep(for: .milliseconds(100))
        let pids = pool.workerPIDs
        pool.terminate()
        try await pool.join()
        for result in results { await expectCrewError(.terminated) { try await result.value } }
        for pid in pids { #expect(processState(pid) == nil, "worker \(pid) left behind") }
        await expectCrewError(.poolClosed) { try await pool.apply(TestFunctions.square, 1) }
    }

    @Test func droppingARunningPoolEndsItsWorkers() async throws {
        var pids: [Int32] = []
        do {
            let pool = try pool(2)
            #expect(try await pool.apply(TestFunctions.square, 2) == 4)
            while pool.workerPIDs.count < 2 { try await Task.sleep(for: .milliseconds(10)) }
            pids = pool.workerPIDs
        }
        for pid in pids { #expect(try await exitsSoon(pid), "worker \(pid) outlived its pool") }
    }

    @Test func unknownFunctionsAndOversizedMessagesAreTypedErrors() async throws {
        let stranger = Crew.Function("stranger") { (n: Int) in n }
        let small = testCrew.withOptions { $0.maxFrameSize = 4096 }
        let pool = try ProcessPool(small, processes: 1)
        await expectCrewError(.unknownFunction) { try await pool.apply(stranger, 1) }
        await expectCrewError(.unknownFunction) { try await pool.apply(TestFunctions.onlyInParent, 1) }
        await expectCrewError(.frameTooLarge) {
            try await pool.apply(TestFunctions.echoBytes, [UInt8](repeating: 0, count: 5000))
        }
        await expectCrewError(.frameTooLarge) { try await pool.apply(TestFunctions.bigResult, 10_000) }
        #expect(try await pool.apply(TestFunctions.square, 3) == 9)
        try await finish(pool)
    }

    @Test func invalidArgumentsAreRefused() async throws {
        await expectCrewError(.invalidArgument) { try ProcessPool(testCrew, processes: 0) }
        await expectCrewError(.invalidArgument) { try ProcessPool(testCrew, processes: 1, maxTasksPerChild: 0) }
        let pool = try pool(1)
        await expectCrewError(.invalidArgument) { try await pool.map(TestFunctions.square, [1], chunkSize: 0) }
        try await finish(pool)
    }

    @Test func maxTasksPerChildRecyclesWorkers() async throws {
        let pool = try pool(1, maxTasksPerChild: 2)
        var pids: Set<Int32> = []
        for _ in 0..<6 { pids.insert(try await pool.apply(TestFunctions.pid, Crew.Empty())) }
        #expect(pids.count == 3)
        try await finish(pool)
    }

    @Test func theInitializerRunsInEveryWorkerBeforeItsTasks() async throws {
        let pool = try ProcessPool(testCrew, processes: 2, initializer: TestFunctions.initState, initArgs: "ready")
        let states = try await pool.map(
            TestFunctions.readState, Array(repeating: Crew.Empty(), count: 20), chunkSize: 1)
        #expect(states.allSatisfy { $0 == "ready" })
        try await finish(pool)
    }

    @Test func aFailingInitializerBreaksThePoolInsteadOfLooping() async throws {
        let pool = try ProcessPool(testCrew, processes: 1, initializer: TestFunctions.failingInit, initArgs: "x")
        let error = await expectCrewError(.remoteError) { try await pool.apply(TestFunctions.square, 2) }
        #expect(error?.message.contains("initializer refused x") == true)
        try await finish(pool)
    }

    @Test func aWorkerKilledInItsInitializerIsAFailedStartThatSaysSo() async throws {
        let pool = try ProcessPool(testCrew, processes: 1, initializer: TestFunctions.killSelf, initArgs: SIGKILL)
        let error = await expectCrewError(.workerCrashed) { try await pool.apply(TestFunctions.square, 2) }
        #expect(error?.message.contains("the pool's initializer failed") == true)
        #expect(error?.message.contains("it was running its initializer and never served") == true)
        #expect(error?.exitStatus == .signaled(SIGKILL))
        try await finish(pool)
    }

    @Test func aPoolIsUsableFromManyTasksAtOnce() async throws {
        let pool = try pool(2)
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<200 { group.addTask { try await pool.apply(TestFunctions.square, i) } }
            return try await group.reduce(0, +)
        }
        #expect(total == (0..<200).map { $0 * $0 }.reduce(0, +))
        try await finish(pool)
    }

    @Test func aPoolIsUsableFromManyThreadsWithBlockingCalls() async throws {
        let pool = try pool(2)
        let sums = Mutex<[Int]>([])
        let threads = (0..<4).map { t in
            Thread {
                var sum = 0
                for i in 0..<50 {
                    if let value = try? pool.applyAsync(TestFunctions.square, t * 100 + i).get(timeout: .seconds(30)) {
                        sum += value
                    }
                }
                sums.withLock { $0.append(sum) }
            }
        }
        for thread in threads { thread.start() }
        while sums.withLock({ $0.count }) < 4 { try await Task.sleep(for: .milliseconds(10)) }
        let expected = (0..<4).map { t in (0..<50).map { (t * 100 + $0) * (t * 100 + $0) }.reduce(0, +) }
        #expect(sums.withLock { $0.sorted() } == expected.sorted())
        try await finish(pool)
    }

    @Test func aThousandCrashesLeakNothing() async throws {
        let pool = try pool(2)
        _ = try await pool.apply(TestFunctions.square, 1)
        let fdsBefore = openDescriptorCount()
        let childrenBefore = CrewTesting.liveChildren().count
        for _ in 0..<1000 {
            await expectCrewError(.workerCrashed) { try await pool.apply(TestFunctions.exitWith, 7) }
        }
        #expect(try await pool.apply(TestFunctions.square, 9) == 81)
        // Replacements are started asynchronously: let the pool settle.
        var settled = false
        for _ in 0..<100 {
            if openDescriptorCount() <= fdsBefore + 6 && CrewTesting.liveChildren().count <= childrenBefore + 2 {
                settled = true
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(
            settled,
            "descriptors \(fdsBefore) -> \(openDescriptorCount()), children \(childrenBefore) -> \(CrewTesting.liveChildren().count)"
        )
        try await finish(pool)
    }
}
