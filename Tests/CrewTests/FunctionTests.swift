import CrewTestHelpers
import CrewTestSupport
import Testing

@testable import Crew

@Suite struct FunctionTests {
    @Test func synchronousAndAsyncBodiesAreToldApart() {
        #expect(TestFunctions.square.registration.isSynchronous)
        #expect(TestFunctions.noArgsNoResult.registration.isSynchronous)
        #expect(!TestFunctions.greet.registration.isSynchronous)
        #expect(!TestFunctions.sleepMilliseconds.registration.isSynchronous)
    }

    @Test func functionsRunInProcessToo() async throws {
        #expect(try await TestFunctions.square(7) == 49)
        #expect(try await TestFunctions.greet("you") == "hello, you")
        #expect(try await TestFunctions.noArgsNoResult() == Crew.Empty())
    }

    @Test func twoFunctionsWithOneNameAreRefused() {
        let a = Crew.Function("same") { (n: Int) in n }
        let b = Crew.Function("same") { (s: String) in s }
        #expect {
            try Crew.bootstrap(a, b)
        } throws: { error in
            guard let error = error as? CrewError else { return false }
            return error.code == .duplicateFunction && error.function == "same"
        }
    }

    @Test func theRegistryAnswersByName() {
        #expect(testCrew.contains("square"))
        #expect(!testCrew.contains("nope"))
        #expect(testCrew.functionNames.contains("greet"))
        #expect(testCrew.functionNames == testCrew.functionNames.sorted())
    }

    @Test func aRegistrationRunsTheBodyOnEncodedBytes() throws {
        guard case .sync(let body) = TestFunctions.add.registration.invoke else {
            Issue.record("add is synchronous")
            return
        }
        let arguments = try BinaryEncoder().encode(Pair(20, 22))
        var out: [UInt8] = []
        try body(arguments, 0..<arguments.count, &out)
        #expect(try BinaryDecoder().decode(Int.self, from: out) == 42)
        #expect(throws: FunctionRegistration.Failure.self) { try body([0xFF], 0..<1, &out) }
    }

    @Test func errorsDescribeThemselves() {
        let error = CrewError(
            .workerCrashed,
            "it died",
            pid: 12,
            exitStatus: .signaled(9),
            lastStderr: "Fatal error: x",
            function: "f"
        )
        #expect(error.description.contains("workerCrashed"))
        #expect(error.description.contains("pid 12"))
        #expect(error.description.contains("SIGKILL"))
        #expect(error.description.contains("Fatal error: x"))
        #expect(Crew.ExitStatus.signaled(15).code == -15)
        #expect(Crew.ExitStatus.exited(3).code == 3)
        #expect(Crew.ExitStatus.exited(0).isSuccess)
    }
}
