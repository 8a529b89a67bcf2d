import CrewTestSupport
import Foundation
import Testing

@testable import Crew

/// Foundation and Crew imported together: every public Crew type is named here, and Foundation's `Process`,
/// `Thread` and `Pipe` stay Foundation's. A clash would fail the build.
@Suite struct FoundationNamesTests {
    @Test func crewAndFoundationLiveTogether() throws {
        let foundationProcess: Foundation.Process = Process()
        #expect(foundationProcess.processIdentifier == 0)
        let crewProcess: Crew.Process<Int, Int> = Crew.Process(target: TestFunctions.square, args: 1, crew: testCrew)
        #expect(crewProcess.pid == nil)
        let _: Thread = Thread.current
        let _: Pipe = Pipe()
        let function: Function<Int, Int> = TestFunctions.square
        let erased: any AnyFunction = function
        let registration: FunctionRegistration = erased.registration
        #expect(registration.name == "square")
        let options: Crew.Options = testCrew.options
        #expect(options.maxFrameSize > 0)
        let code: CrewError.Code = .workerCrashed
        let status: Crew.ExitStatus = .exited(0)
        let empty: Empty = Empty()
        #expect(code.description == "workerCrashed" && status.isSuccess && empty == Empty())
        #expect(!Crew.isChildProcess)
        #expect(Crew.current != nil)
    }
}
