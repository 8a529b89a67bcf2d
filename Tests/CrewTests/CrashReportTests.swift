import CrewTestHelpers
import CrewTestSupport
import Testing

@testable import Crew

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
        try p.start()
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
        #expect(error?.lastStderr?.contains("Crash") != true)  // No backtrace report.
        pool.close()
        try await pool.join()
    }
}
