import CrewTestHelpers
import CrewTestSupport
import CrewTesting
import Testing

@_spi(Internals) @testable import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// A child that serves many calls: the path pools build on.
@Suite struct WorkerTests {
    @Test func servesManyCallsInOrderAndConcurrently() async throws {
        let worker = try ChildWorker(crew: testCrew)
        for i in 0..<200 {
            #expect(try await worker.call(TestFunctions.square, i) == i * i)
        }
        let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for i in 0..<500 {
                group.addTask { (i, try await worker.call(TestFunctions.add, Pair(i, 1))) }
            }
            var results: [Int: Int] = [:]
            for try await (i, r) in group { results[i] = r }
            return results
        }
        #expect(results.count == 500)
        #expect(results.allSatisfy { $0.value == $0.key + 1 })
        #expect(await worker.shutdown() == .exited(0))
    }

    @Test func blockingCallsFromThreads() async throws {
        let worker = try ChildWorker(crew: testCrew)
        #expect(try worker.callBlocking(TestFunctions.echo, "hi") == "hi")
        for i in 0..<100 {
            #expect(try worker.callBlocking(TestFunctions.square, i) == i * i)
        }
        await worker.shutdown()
    }

    @Test func asyncCallsOverlapInOneChild() async throws {
        // Twenty calls that each sleep 200 ms run as tasks on the child's one serving thread: together they
        // take about 200 ms, not 4 s. (Not asserted as a time; the result set is.)
        let worker = try ChildWorker(crew: testCrew)
        let values = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<20 { group.addTask { try await worker.call(TestFunctions.sleepMilliseconds, 200) } }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(values == Array(repeating: 200, count: 20))
        await worker.shutdown()
    }

    @Test func anUnknownNameIsATypedErrorAndTheChildStaysHealthy() async throws {
        let worker = try ChildWorker(crew: testCrew)
        let error = await expectCrewError(.unknownFunction) { try await worker.call(TestFunctions.onlyInParent, 1) }
        #expect(error?.message.contains("onlyInParent") == true)
        #expect(try await worker.call(TestFunctions.square, 9) == 81)
        await worker.shutdown()
    }

    @Test func argumentsOfTheWrongTypeAreATypedErrorAndTheChildStaysHealthy() async throws {
        let worker = try ChildWorker(crew: testCrew)
        // "square" takes an Int; send a String under its name.
        let wrong = Crew.Function("square") { (text: String) in text }
        let error = await expectCrewError(.decodingFailed) { try await worker.call(wrong, "nine") }
        #expect(error?.message.contains("did not decode") == true)
        #expect(try await worker.call(TestFunctions.square, 9) == 81)
        await worker.shutdown()
    }

    @Test func aResultOfTheWrongTypeIsADecodingError() async throws {
        let worker = try ChildWorker(crew: testCrew)
        let wrong = Crew.Function("echo") { (text: String) in text.count }  // the child returns a String
        await expectCrewError(.decodingFailed) { try await worker.call(wrong, "abc") }
        #expect(try await worker.call(TestFunctions.echo, "still fine") == "still fine")
        await worker.shutdown()
    }

    @Test func argumentsOverTheFrameLimitAreRefusedBeforeSending() async throws {
        var options = testCrew.options
        options.maxFrameSize = 4096
        let crew = Crew(functions: testCrew.functions, options: options)
        let worker = try ChildWorker(crew: crew)
        await expectCrewError(.frameTooLarge) {
            try await worker.call(TestFunctions.echoBytes, [UInt8](repeating: 1, count: 5000))
        }
        #expect(try await worker.call(TestFunctions.echoBytes, [1, 2, 3]) == [1, 2, 3])
        await worker.shutdown()
    }

    @Test func aResultOverTheFrameLimitIsATypedErrorAndTheChildStaysHealthy() async throws {
        var options = testCrew.options
        options.maxFrameSize = 4096
        let crew = Crew(functions: testCrew.functions, options: options)
        let worker = try ChildWorker(crew: crew)
        let error = await expectCrewError(.frameTooLarge) { try await worker.call(TestFunctions.bigResult, 10_000) }
        #expect(error?.function == "bigResult")
        #expect(try await worker.call(TestFunctions.bigResult, 100).count == 100)
        await worker.shutdown()
    }

    @Test func largeMessagesWithinTheLimitArrive() async throws {
        let worker = try ChildWorker(crew: testCrew)
        var big = [UInt8](repeating: 0, count: 8 << 20)
        for i in stride(from: 0, to: big.count, by: 4093) { big[i] = UInt8(truncatingIfNeeded: i) }
        let back = try await worker.call(TestFunctions.echoBytes, big)
        #expect(back == big)
        await worker.shutdown()
    }

    @Test func aCorruptFrameEndsTheChildWithAProtocolError() async throws {
        let worker = try ChildWorker(crew: testCrew)
        #expect(try await worker.call(TestFunctions.square, 3) == 9)
        // A frame whose message kind is not one the child knows.
        worker.connection.sendRaw([1, 0, 0, 0, 99])
        let pending = Task { try await worker.call(TestFunctions.sleepMilliseconds, 10_000) }
        let error = await expectCrewError(.protocolError) { try await pending.value }
        #expect(error?.message.contains("unknown message kind 99") == true)
        #expect(await worker.exitStatus() == .exited(ChildRuntime.exitProtocolError))
    }

    @Test func aFrameHeaderOverTheLimitEndsTheChildWithAProtocolError() async throws {
        let worker = try ChildWorker(crew: testCrew)
        worker.connection.sendRaw([0xFF, 0xFF, 0xFF, 0x7F])
        #expect(await worker.exitStatus() == .exited(ChildRuntime.exitProtocolError))
        await expectCrewError(.protocolError) { try await worker.call(TestFunctions.square, 1) }
    }

    @Test func aTruncatedCallIsNotAnswered() async throws {
        // A header that announces more bytes than arrive: the child waits for the rest, and the parent can still
        // stop it.
        let worker = try ChildWorker(crew: testCrew)
        worker.connection.sendRaw([20, 0, 0, 0, 1, 1])
        let pending = Task { try await worker.call(TestFunctions.square, 2) }
        try await Task.sleep(for: .milliseconds(100))
        worker.signal(SIGTERM)
        await expectCrewError(.workerCrashed) { try await pending.value }
        #expect(await worker.exitStatus() == .signaled(SIGTERM))
    }

    @Test func everyPendingCallFailsWhenTheChildDies() async throws {
        let worker = try ChildWorker(crew: testCrew)
        let calls = (0..<10).map { i in Task { try await worker.call(TestFunctions.sleepMilliseconds, 5_000 + i) } }
        try await Task.sleep(for: .milliseconds(100))
        worker.signal(SIGKILL)
        for call in calls {
            let error = await expectCrewError(.workerCrashed) { try await call.value }
            #expect(error?.exitStatus == .signaled(SIGKILL))
            #expect(error?.function == "sleepMilliseconds")
        }
        // Later calls fail at once with the same cause.
        await expectCrewError(.workerCrashed) { try await worker.call(TestFunctions.square, 1) }
        await expectCrewError(.workerCrashed) { try worker.callBlocking(TestFunctions.square, 1) }
    }

    @Test func resultsWrittenBeforeDeathAreDelivered() async throws {
        let worker = try ChildWorker(crew: testCrew)
        async let quick = worker.call(TestFunctions.square, 5)
        #expect(try await quick == 25)
        let dying = Task { try await worker.call(TestFunctions.exitWith, 4) }
        await expectCrewError(.workerCrashed) { try await dying.value }
    }

    @Test func cancellingAWaitDoesNotDisturbTheChild() async throws {
        let worker = try ChildWorker(crew: testCrew)
        let slow = Task { try await worker.call(TestFunctions.sleepMilliseconds, 2_000) }
        try await Task.sleep(for: .milliseconds(50))
        slow.cancel()
        await #expect(throws: CancellationError.self) { try await slow.value }
        #expect(try await worker.call(TestFunctions.square, 4) == 16)
        await worker.shutdown()
    }
}
