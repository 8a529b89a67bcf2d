import CrewTestHelpers
import CrewTestSupport
import CrewTesting
import Dispatch
import Testing

@testable import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// The forkserver start method: workers forked by a single-threaded zygote.
@Suite struct ForkServerTests {
    let crew = testCrew.withOptions { $0.startMethod = .forkserver }

    /// The parent pid of `pid`, from /proc.
    func parent(of pid: Int32) -> Int32? {
        statFields(pid).flatMap { $0.count > 1 ? Int32($0[1]) : nil }
    }

    @Test func aProcessStartsThroughTheForkServer() async throws {
        let p = Crew.Process(target: TestFunctions.parentPID, crew: crew)
        try await p.start()
        let zygote = try await p.value
        #expect(zygote != getpid(), "a forkserver child's parent is the fork server")
        try await p.join()
        #expect(p.exitCode == 0)
        #expect(parent(of: zygote) == getpid(), "the fork server is our child")
    }

    @Test func aForkedChildRunsConcurrencyAndDispatchAfterTheParentHasThreads() async throws {
        // This test process has run Swift concurrency, Dispatch and threads long before this point.
        let started = await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            DispatchQueue.global().async { c.resume(returning: true) }
        }
        #expect(started)
        let pool = try ProcessPool(crew, processes: 2)
        for _ in 0..<4 {
            #expect(try await pool.apply(TestFunctions.threadsWork, Crew.Empty(), timeout: .seconds(30)) == 6)
        }
        pool.close()
        try await pool.join()
    }

    @Test func crashesThroughTheForkServerAreReportedWithTheirStatus() async throws {
        let p = Crew.Process(target: TestFunctions.trapFatalError, args: "forked boom", crew: crew)
        try await p.start()
        let error = await expectCrewError(.workerCrashed) { try await p.value }
        #expect(error?.lastStderr?.contains("Fatal error: forked boom") == true)
        if case .signaled = error?.exitStatus {
        } else {
            Issue.record("expected a signal: \(String(describing: error))")
        }
        let q = Crew.Process(target: TestFunctions.exitWith, args: 3, crew: crew)
        try await q.start()
        try await q.join()
        #expect(q.exitCode == 3)
    }

    @Test func aForkServerPoolIsolatesCrashesAndTimeouts() async throws {
        let pool = try ProcessPool(crew, processes: 2, options: .init(timeoutGrace: .milliseconds(100)))
        #expect(try await pool.map(TestFunctions.square, 0..<100) == (0..<100).map { $0 * $0 })
        await expectCrewError(.workerCrashed) { try await pool.apply(TestFunctions.trapIndex, 4) }
        let timedOut = await expectCrewError(.timedOut) {
            try await pool.apply(TestFunctions.sleepForever, Crew.Empty(), timeout: .milliseconds(100))
        }
        #expect(timedOut?.exitStatus == .signaled(SIGTERM))
        #expect(try await pool.apply(TestFunctions.square, 6) == 36)
        pool.terminate()
        try await pool.join()
    }

    @Test func aForkedWorkerKilledFromOutsideFailsItsCall() async throws {
        // One worker, so that the kill hits the busy one (killing an idle worker of a larger pool would fail
        // whatever call reaches it before its death is known, rightly, and make this test racy).
        let pool = try ProcessPool(crew, processes: 1)
        #expect(try await pool.apply(TestFunctions.square, 2) == 4)  // Serving before the long call is sent.
        let busy = try pool.applyAsync(TestFunctions.sleepMilliseconds, 60_000)
        try await Task.sleep(for: .milliseconds(100))
        for pid in pool.workerPIDs { kill(pid, SIGKILL) }
        let error = await expectCrewError(.workerCrashed) { try await busy.value }
        #expect(error?.exitStatus == .signaled(SIGKILL))
        #expect(try await pool.apply(TestFunctions.square, 6) == 36)
        pool.terminate()
        try await pool.join()
    }

    @Test func workersDieWithTheForkServerAndThePoolStartsANewOne() async throws {
        // A fork server of its own (options differ), so that killing it touches no other test's workers.
        let own = crew.withOptions { $0.environment["CREW_TEST_OWN_ZYGOTE"] = "1" }
        let pool = try ProcessPool(own, processes: 1)
        #expect(try await pool.apply(TestFunctions.square, 2) == 4)
        let worker = try #require(pool.workerPIDs.first)
        let zygote = try #require(parent(of: worker))
        #expect(zygote != getpid())
        let busy = try pool.applyAsync(TestFunctions.sleepMilliseconds, 60_000)
        try await Task.sleep(for: .milliseconds(50))
        kill(zygote, SIGKILL)
        await expectCrewError(.workerCrashed) { try await busy.value }
        #expect(try await exitsSoon(worker), "a worker outlived its fork server")
        #expect(try await pool.apply(TestFunctions.square, 5, timeout: .seconds(30)) == 25)
        let replacement = try #require(pool.workerPIDs.first)
        #expect(parent(of: replacement) != zygote)
        pool.close()
        try await pool.join()
    }
}
