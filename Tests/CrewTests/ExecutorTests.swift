import CrewTestHelpers
import CrewTestSupport
import Testing

@testable import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// One executor API over processes, threads, coroutines and processes × coroutines.
@Suite struct ExecutorTests {
    enum Backend: String, CaseIterable, CustomTestStringConvertible {
        case processes, threads, coroutines, processesWithCoroutines
        var testDescription: String { rawValue }
    }

    init() {
        _ = testCrew
    }

    func make(_ backend: Backend) throws -> Crew.Executor {
        switch backend {
        case .processes: try .processes(2, crew: testCrew)
        case .threads: try .threads(2)
        case .coroutines: try .coroutines(50)
        case .processesWithCoroutines: try .processes(2, coroutinesEach: 20, crew: testCrew)
        }
    }

    @Test(arguments: Backend.allCases)
    func submitMapAndShutdown(backend: Backend) async throws {
        let executor = try make(backend)
        #expect(try await executor.submit(TestFunctions.square, 9).value == 81)
        #expect(try await executor.map(TestFunctions.square, 0..<100) == (0..<100).map { $0 * $0 })
        #expect(try await executor.map(TestFunctions.sleepMilliseconds, [5, 1, 3]) == [5, 1, 3])
        let error = await expectCrewError(.remoteError) { try await executor.submit(TestFunctions.fail, "x").value }
        #expect(error?.remoteErrorType?.hasSuffix("TestFailure") == true)
        try await executor.shutdown()
        await expectCrewError(.poolClosed) { try executor.submit(TestFunctions.square, 1) }
    }

    @Test(arguments: [Backend.coroutines, .processesWithCoroutines])
    func asyncCallsRunConcurrently(backend: Backend) async throws {
        let executor = try make(backend)
        let probes = try await executor.map(TestFunctions.overlapProbe, Array(repeating: 100, count: 40), chunkSize: 1)
        // Within one process, calls overlapped: some call started before another one ended.
        let byProcess = Dictionary(grouping: probes, by: { $0[0] })
        let overlapping = byProcess.values.contains { calls in
            calls.contains { a in calls.contains { b in a != b && b[1] < a[2] && a[1] < b[2] } }
        }
        #expect(overlapping)
        if backend == .processesWithCoroutines { #expect(!byProcess.keys.contains(Int(getpid()))) }
        try await executor.shutdown()
    }

    @Test func aChunkOfAsyncCallsRunsItsCallsTogetherWithinCoroutinesEach() async throws {
        // Two workers of 20 coroutines each, chunks of 10: a chunk's calls overlap one another, and no process
        // ever runs more than 20 at once.
        let executor = try make(.processesWithCoroutines)
        let probes = try await executor.map(TestFunctions.overlapProbe, Array(repeating: 100, count: 80), chunkSize: 10)
        for first in stride(from: 0, to: 80, by: 10) {
            let chunk = probes[first..<(first + 10)]
            #expect(Set(chunk.map { $0[0] }).count == 1)  // One chunk, one process.
            #expect(chunk.dropFirst().allSatisfy { $0[1] < chunk.first![2] })  // All started before the first ended.
        }
        for calls in Dictionary(grouping: probes, by: { $0[0] }).values {
            let most = calls.map { a in calls.filter { b in b[1] <= a[1] && a[1] < b[2] }.count }.max() ?? 0
            #expect(most <= 20)
        }
        // Without a chunk size, the automatic chunks are no larger than coroutinesEach.
        let defaults = try await executor.map(TestFunctions.overlapProbe, Array(repeating: 100, count: 40))
        #expect(defaults.count == 40)
        try await executor.shutdown()
    }

    @Test func cancelFuturesFailsWhatHasNotStarted() async throws {
        let executor = try Crew.Executor.threads(1)
        // Longer than a busy machine needs to go on.
        let running = try executor.submit(TestFunctions.blockMilliseconds, 3000)
        let queued = try (0..<3).map { _ in try executor.submit(TestFunctions.blockMilliseconds, 1) }
        // At once (a sleep's length is not kept on a loaded machine): the first call may or may not have started.
        try await executor.shutdown(wait: true, cancelFutures: true)
        for future in queued { await expectCrewError(.terminated) { try await future.value } }
        do {
            #expect(try await running.value == 3000)  // It had started: a thread runs to its end.
        } catch let error as CrewError {
            #expect(error.code == .terminated)
        }
    }

    @Test func aCrashInAProcessesWithCoroutinesWorkerFailsOnlyItsCalls() async throws {
        let executor = try make(.processesWithCoroutines)
        await expectCrewError(.workerCrashed) { try await executor.submit(TestFunctions.trapIndex, 9).value }
        #expect(try await executor.map(TestFunctions.sleepMilliseconds, [1, 2, 3]) == [1, 2, 3])
        try await executor.shutdown()

        // Async calls run together: those beside the one that killed their worker fail too, and every one of them
        // (the killer included: the pool cannot tell which it was) says it may not be the cause.
        let one = try Crew.Executor.processes(1, coroutinesEach: 20, crew: testCrew)
        let sleepers = try (0..<3).map { _ in try one.submit(TestFunctions.overlapProbe, 5_000) }
        try await Task.sleep(for: .milliseconds(300))  // They have started (a loaded machine may need longer: then
        let killer = try one.submit(TestFunctions.killSelfAsync, SIGKILL)  // some go to the next worker).
        let error = await expectCrewError(.workerCrashed) { try await killer.value }
        #expect(error?.message.contains("may not be") == true)
        #expect(error?.callState == .runningWithOthers)
        for sleeper in sleepers {
            do {
                _ = try await sleeper.value
            } catch let error as CrewError {
                #expect(error.code == .workerCrashed && error.message.contains("may not be the call that caused it"))
                #expect(error.callState == .runningWithOthers)
            }
        }
        try await one.shutdown()
    }
}
