import CrewTestHelpers
import CrewTestSupport
import Testing

@testable import Crew

/// A function's declared error types cross the process boundary as themselves: the caller catches them by type,
/// as Python's `except Oops:` catches what a child raised.
@Suite struct DeclaredErrorTests {
    init() {
        _ = testCrew
    }

    @Test(arguments: [Crew.StartMethod.spawn, .forkserver])
    func aPoolCallRethrowsTheDeclaredErrorAsItself(method: Crew.StartMethod) async throws {
        let crew = testCrew.withOptions { $0.startMethod = method }
        let pool = try ProcessPool(crew, processes: 1)
        // await apply, applyAsync().get(), map: each catches Oops by its type.
        do {
            _ = try await pool.apply(TestFunctions.risky, 7)
            Issue.record("risky(7) returned")
        } catch let oops as Oops {
            #expect(oops == Oops(n: 7, note: "seven"))
        }
        #expect(throws: Oops(n: 7, note: "seven")) { try pool.applyAsync(TestFunctions.risky, 7).get() }
        await #expect(throws: Oops(n: 7, note: "seven, later")) { try await pool.apply(TestFunctions.riskyAsync, 7) }
        await #expect(throws: Oops(n: 7, note: "seven")) {
            try await pool.map(TestFunctions.risky, [1, 2, 7, 3], chunkSize: 2)
        }
        // The error callback still gets the CrewError, which holds the value too.
        let caught = Completion<CrewError>()
        _ = try pool.applyAsync(TestFunctions.risky, 7, errorCallback: { caught.complete($0) })
        let error = try #require(await caught.wait())
        #expect(error.code == .remoteError && error.remoteErrorType == String(reflecting: Oops.self))
        #expect(error.thrown as? Oops == Oops(n: 7, note: "seven"))
        // An error of a type not declared stays a CrewError, with its type's name and description; the worker
        // goes on.
        let other = await expectCrewError(.remoteError) { try await pool.apply(TestFunctions.risky, 13) }
        #expect(other?.thrown == nil && other?.message.contains("TestFailure(thirteen)") == true)
        #expect(try await pool.apply(TestFunctions.risky, 3) == 9)
        pool.close()
        try await pool.join()
    }

    @Test func aProcessValueRethrowsTheDeclaredError() async throws {
        let p = Crew.Process(target: TestFunctions.risky, args: 7, crew: testCrew)
        try await p.start()
        await #expect(throws: Oops(n: 7, note: "seven")) { try await p.value }
        #expect(throws: Oops(n: 7, note: "seven")) { try p.get(timeout: .seconds(30)) }
        try await p.join()
    }

    @Test func localPoolsRethrowTheVeryValue() async throws {
        for executor in [try Crew.Executor.threads(2), try .coroutines(4)] {
            await #expect(throws: Oops(n: 7, note: "seven")) { try await executor.submit(TestFunctions.risky, 7).value }
            try await executor.shutdown()
        }
    }

    @Test func anUndeclaredOrUndecodableValueStaysACrewErrorThatSaysWhy() {
        // A type this program never declared: the name cannot pick a type, so nothing is decoded.
        let unknown = RemoteFailure.declared(
            type: "Elsewhere.Oops", message: "boom", value: [1, 2, 3], function: "f", pid: 9)
        #expect(unknown.code == .remoteError && unknown.thrown == nil)
        #expect(unknown.message.contains("is not declared by this program's functions"))
        // A declared type whose bytes do not decode (a child of another build): a typed decoding failure.
        let garbled = RemoteFailure.declared(
            type: String(reflecting: Oops.self), message: "boom", value: [0xff], function: "f", pid: 9)
        #expect(garbled.code == .decodingFailed && garbled.message.contains("did not decode here"))
    }

    @Test func theFailureFrameCarriesTheEncodedError() throws {
        var frame: [UInt8] = []
        let failure = RemoteFailure(kind: .threwDeclared, type: "T", message: "m", value: [4, 5, 6])
        Message.appendFailure(id: 3, failure, to: &frame)
        var reader = FrameReader(maxFrameSize: 1 << 20)
        reader.append(frame)
        let payload = try #require(try reader.next())
        #expect(try Message.parseParentBound(reader.buffer, payload) == .failure(id: 3, failure))
    }
}
