import CrewTestHelpers
import CrewTestSupport
import Testing

@testable import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// A trap in a child is reported at once: Swift's backtracer is off in children unless asked for.
@Suite struct CrashReportTests {
    init() {
        _ = testCrew
    }

    @Test func childrenRunWithoutTheBacktracerUnlessAskedFor() async throws {
        #expect(Crew.Options().childEnvironment["SWIFT_BACKTRACE"] == "enable=no")
        #expect(Crew.Options(crashBacktraces: true).childEnvironment["SWIFT_BACKTRACE"] == nil)
        let chosen = Crew.Options(environment: ["SWIFT_BACKTRACE": "enable=yes,interactive=no"])
        #expect(chosen.childEnvironment["SWIFT_BACKTRACE"] == "enable=yes,interactive=no")

        let p = Crew.Process(target: TestFunctions.environmentVariable, args: "SWIFT_BACKTRACE", crew: testCrew)
        try await p.start()
        #expect(try await p.value == "enable=no")

        // A pool option turns it on for its workers, and the forkserver's workers get what was asked for too.
        let debugging = try ProcessPool(testCrew, processes: 1, options: .init(crashBacktraces: true))
        #expect(try await debugging.apply(TestFunctions.environmentVariable, "SWIFT_BACKTRACE") == "")
        debugging.close()
        try await debugging.join()
        let forked = try ProcessPool(testCrew, processes: 1, startMethod: .forkserver)
        #expect(try await forked.apply(TestFunctions.environmentVariable, "SWIFT_BACKTRACE") == "enable=no")
        forked.close()
        try await forked.join()
    }

    @Test func aTrapsMessageIsInTheError() async throws {
        let pool = try ProcessPool(testCrew, processes: 1)
        let error = await expectCrewError(.workerCrashed) { try await pool.apply(TestFunctions.trapFatalError, "boom") }
        #expect(error?.lastStderr?.contains("Fatal error") == true)
        // No backtrace report (Swift's backtracer prints "💣 Program crashed: …" and a "Backtrace" section).
        #expect(error?.lastStderr?.contains("Program crashed") == false)
        #expect(error?.lastStderr?.contains("Backtrace") == false)
        pool.close()
        try await pool.join()
    }

    /// In an optimized build the runtime's checks print nothing: the child's own line names the signal and the
    /// call, whatever the build, with either start method.
    @Test(arguments: [Crew.StartMethod.spawn, .forkserver])
    func theChildNamesTheSignalAndTheCall(method: Crew.StartMethod) async throws {
        let pool = try ProcessPool(testCrew, processes: 1, startMethod: method)
        var error = await expectCrewError(.workerCrashed) { try await pool.apply(TestFunctions.trapIndex, 9) }
        #expect(error?.lastStderr?.contains("crew child: SIGILL") == true, "\(String(describing: error))")
        #expect(error?.lastStderr?.contains("while running \"trapIndex\"") == true)
        #expect(error?.exitStatus == .signaled(SIGILL))  // Still the signal's death.
        error = await expectCrewError(.workerCrashed) { try await pool.apply(TestFunctions.segfault, Crew.Empty()) }
        #expect(error?.lastStderr?.contains("crew child: SIGSEGV") == true, "\(String(describing: error))")
        #expect(error?.lastStderr?.contains("while running \"segfault\"") == true)
        #expect(error?.exitStatus == .signaled(SIGSEGV))
        #expect(try await pool.apply(TestFunctions.square, 3) == 9)
        pool.close()
        try await pool.join()
    }
}
