import CrewTestHelpers
import CrewTestSupport
import CrewTesting
import Testing

@_spi(Internals) @testable import Crew

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ProcessTests {
    @Test func runsAFunctionInAChildAndReturnsItsValue() async throws {
        let p = Crew.Process(target: TestFunctions.square, args: 12, crew: testCrew)
        #expect(p.pid == nil && p.exitCode == nil && !p.isAlive)
        try await p.start()
        let pid = try #require(p.pid)
        #expect(pid != getpid())
        #expect(try await p.value == 144)
        try await p.join()
        #expect(p.exitCode == 0)
        #expect(p.exitStatus == .exited(0))
        #expect(!p.isAlive)
    }

    @Test func theChildIsAnotherProcessWhoseParentIsUs() async throws {
        let p = Crew.Process(target: TestFunctions.parentPID, crew: testCrew)
        try await p.start()
        #expect(try await p.value == getpid())
        let q = Crew.Process(target: TestFunctions.pid, crew: testCrew)
        try await q.start()
        #expect(try await q.value == q.pid)
    }

    @Test func blockingJoinAndGet() throws {
        let p = Crew.Process(target: TestFunctions.add, args: Pair(2, 3), crew: testCrew)
        try p.start()
        #expect(try p.join(timeout: .seconds(30)))
        #expect(try p.get() == 5)
        #expect(p.exitCode == 0)
    }

    @Test func asyncBodiesRun() async throws {
        let p = Crew.Process(target: TestFunctions.greet, args: "crew", crew: testCrew)
        try await p.start()
        #expect(try await p.value == "hello, crew")
    }

    @Test func functionsWithoutArgumentsOrResult() async throws {
        let p = Crew.Process(target: TestFunctions.noArgsNoResult, crew: testCrew)
        try await p.start()
        #expect(try await p.value == Crew.Empty())
        let q = Crew.Process(target: TestFunctions.argsNoResult, args: 3, crew: testCrew)
        try await q.start()
        #expect(try await q.value == Crew.Empty())
    }

    @Test func namesAreNumberedAsPythonDoes() {
        let a = Crew.Process(target: TestFunctions.square, args: 1, crew: testCrew)
        let b = Crew.Process(target: TestFunctions.square, args: 1, crew: testCrew)
        #expect(a.name.hasPrefix("Process-") && b.name.hasPrefix("Process-"))
        let n = Int(a.name.dropFirst("Process-".count))!
        let m = Int(b.name.dropFirst("Process-".count))!
        #expect(m > n)
        #expect(Crew.Process(target: TestFunctions.square, args: 1, name: "mine", crew: testCrew).name == "mine")
    }

    @Test func aThrownErrorComesBackWithItsTypeAndDescription() async throws {
        let p = Crew.Process(target: TestFunctions.fail, args: "no luck", crew: testCrew)
        try await p.start()
        let error = await expectCrewError(.remoteError) { try await p.value }
        #expect(error?.remoteErrorType == "CrewTestSupport.TestFailure")
        #expect(error?.message.contains("TestFailure(no luck)") == true)
        #expect(error?.function == "fail")
        try await p.join()
        #expect(p.exitCode == 1)  // as Python's exitcode after an exception
    }

    @Test func aThrownErrorInAnAsyncBody() async throws {
        let p = Crew.Process(target: TestFunctions.failAsync, args: "later", crew: testCrew)
        try await p.start()
        let error = await expectCrewError(.remoteError) { try await p.value }
        #expect(error?.message.contains("later") == true)
    }

    @Test(arguments: [
        ("fatalError", "Fatal error: boom"),
        ("index", "Index out of range"),
        ("unwrap", "Unexpectedly found nil"),
    ])
    func aTrapBecomesWorkerCrashed(kind: String, expected: String) async throws {
        let start: () throws -> any ProcessLike
        switch kind {
        case "fatalError":
            start = { try started(Crew.Process(target: TestFunctions.trapFatalError, args: "boom", crew: testCrew)) }
        case "index": start = { try started(Crew.Process(target: TestFunctions.trapIndex, args: 7, crew: testCrew)) }
        default: start = { try started(Crew.Process(target: TestFunctions.trapUnwrap, crew: testCrew)) }
        }
        let p = try start()
        let error = await expectCrewError(.workerCrashed) { try await p.awaitValue() }
        #expect(error?.pid == p.pid)
        if case .signaled(let signal) = error?.exitStatus {
            #expect(signal == SIGILL || signal == SIGTRAP)
        } else {
            Issue.record("a trap should end the child with a signal: \(String(describing: error))")
        }
        #expect(error?.lastStderr?.contains(expected) == true, "\(String(describing: error?.lastStderr))")
        try await p.awaitJoin()
        #expect(p.exitCode.map { $0 < 0 } == true)
    }

    @Test func exitWithACodeBecomesWorkerCrashed() async throws {
        let p = Crew.Process(target: TestFunctions.exitWith, args: 3, crew: testCrew)
        try await p.start()
        let error = await expectCrewError(.workerCrashed) { try await p.value }
        #expect(error?.exitStatus == .exited(3))
        try await p.join()
        #expect(p.exitCode == 3)
    }

    @Test func sigkillFromOutside() async throws {
        let p = Crew.Process(target: TestFunctions.sleepForever, crew: testCrew)
        try await p.start()
        #expect(p.isAlive)
        kill(try #require(p.pid), SIGKILL)
        let error = await expectCrewError(.workerCrashed) { try await p.value }
        #expect(error?.exitStatus == .signaled(SIGKILL))
        try await p.join()
        #expect(p.exitCode == -SIGKILL)
    }

    @Test func aChildThatNeverAnswers() async throws {
        let p = Crew.Process(target: TestFunctions.sleepForever, crew: testCrew)
        try await p.start()
        #expect(try await Crew.blocking { try p.join(timeout: .milliseconds(200)) } == false)
        #expect(p.isAlive)
        #expect(p.exitCode == nil)
        await expectCrewError(.timedOut) { try p.get(timeout: .milliseconds(50)) }
        p.terminate()
        #expect(try await Crew.blocking { try p.join(timeout: .seconds(30)) })
        #expect(p.exitCode == -SIGTERM)
        #expect(!p.isAlive)
        await expectCrewError(.workerCrashed) { try await p.value }
    }

    @Test func killEndsTheChild() async throws {
        let p = Crew.Process(target: TestFunctions.sleepForever, crew: testCrew)
        try await p.start()
        p.kill()
        try await p.join()
        #expect(p.exitCode == -SIGKILL)
        // Signals after the end do nothing.
        p.kill()
        p.terminate()
    }

    @Test func startingTwiceIsAnError() async throws {
        let p = Crew.Process(target: TestFunctions.square, args: 2, crew: testCrew)
        try await p.start()
        await expectCrewError(.alreadyStarted) { try p.start() }
        #expect(try await p.value == 4)
    }

    @Test func joiningBeforeStartingIsAnError() async {
        let p = Crew.Process(target: TestFunctions.square, args: 2, crew: testCrew)
        await expectCrewError(.notStarted) { try p.join(timeout: .seconds(1)) }
        await expectCrewError(.notStarted) { try await p.join() }
        await expectCrewError(.notStarted) { try await p.value }
        p.terminate()  // nothing to do
        #expect(p.pid == nil)
    }

    @Test func anUnregisteredFunctionIsRefusedBeforeSpawning() async {
        let stranger = Crew.Function("stranger") { (n: Int) in n }
        let p = Crew.Process(target: stranger, args: 1, crew: testCrew)
        await expectCrewError(.unknownFunction) { try p.start() }
        #expect(p.pid == nil)
    }

    @Test func aFunctionTheChildDoesNotKnowIsATypedError() async throws {
        let p = Crew.Process(target: TestFunctions.onlyInParent, args: 1, crew: testCrew)
        try await p.start()
        let error = await expectCrewError(.unknownFunction) { try await p.value }
        #expect(error?.function == "onlyInParent")
        try await p.join()
        #expect(p.exitCode == 1)
    }

    @Test func aChildThatIsNotACrewProgramIsReported() async throws {
        var options = testCrew.options
        options.executable = "/bin/true"
        let crew = Crew(functions: testCrew.functions, options: options)
        let p = Crew.Process(target: TestFunctions.square, args: 1, crew: crew)
        try await p.start()
        let error = await expectCrewError(.workerCrashed) { try await p.value }
        #expect(error?.message.contains("never started serving") == true)
    }

    @Test func aMissingExecutableIsASpawnError() async {
        var options = testCrew.options
        options.executable = "/nonexistent/crew-child"
        let crew = Crew(functions: testCrew.functions, options: options)
        let p = Crew.Process(target: TestFunctions.square, args: 1, crew: crew)
        await expectCrewError(.spawnFailed) { try p.start() }
        // A failed start can be retried (and fails the same way here).
        await expectCrewError(.spawnFailed) { try p.start() }
    }

    @Test func standardErrorTailExplainsACrash() async throws {
        let lines = (1...5).map { "line \($0)" }
        let p = Crew.Process(target: TestFunctions.printLines, args: lines, crew: testCrew)
        try await p.start()
        #expect(try await p.value == 5)
        let q = Crew.Process(target: TestFunctions.trapFatalError, args: "after output", crew: testCrew)
        try await q.start()
        let error = await expectCrewError(.workerCrashed) { try await q.value }
        #expect(error?.lastStderr?.contains("Fatal error: after output") == true)
        #expect(error?.description.contains("last standard error lines") == true)
    }

    @Test func whenTheParentDiesItsChildExits() async throws {
        // A child starts a grandchild that sleeps forever; killing the child must end the grandchild.
        let p = Crew.Process(target: TestFunctions.startGrandchild, crew: testCrew)
        try await p.start()
        let grandchild = try await p.value
        #expect(grandchild > 0)
        try await p.join()
        // The child has exited (its function returned): the grandchild must be gone too, promptly.
        #expect(try await exitsSoon(grandchild), "grandchild \(grandchild) outlived its parent")
    }

    @Test func whenTheParentIsKilledItsChildExits() async throws {
        // A worker starts a grandchild that sleeps forever, then the worker is SIGKILLed: no code of it runs
        // after that, yet the grandchild must go (the kernel's parent-death signal).
        let worker = try ChildWorker(crew: testCrew)
        let grandchild = try await worker.call(TestFunctions.startGrandchild, Crew.Empty())
        #expect(CrewTesting.processExists(grandchild))
        worker.signal(SIGKILL)
        #expect(await worker.exitStatus() == .signaled(SIGKILL))
        #expect(try await exitsSoon(grandchild), "grandchild \(grandchild) outlived its killed parent")
    }

    @Test func theChildInheritsOnlyWhatItNeeds() async throws {
        // Open a descriptor without close-on-exec in the parent: the child must not get it.
        let leak = open("/dev/zero", O_RDONLY)
        #expect(leak >= 0)
        defer { close(leak) }
        let p = Crew.Process(target: TestFunctions.descriptors, crew: testCrew)
        try await p.start()
        let lines = try await p.value
        let byFD = Dictionary(
            uniqueKeysWithValues: lines.map { line in
                (Int32(line.split(separator: " ")[0])!, line)
            })
        #expect(byFD[0]?.contains("/dev/null") == true, "\(lines)")
        #expect(byFD[2]?.contains("pipe:") == true, "\(lines)")
        #expect(byFD[3]?.contains("socket:") == true && byFD[3]?.contains("cloexec") == true, "\(lines)")
        #expect(!lines.contains { $0.contains("/dev/zero") }, "\(lines)")
        // Anything else the child has, it opened itself, close-on-exec (its event descriptor).
        for (fd, line) in byFD where fd > 3 {
            #expect(line.contains("cloexec"), "\(line)")
        }
    }

    @Test func aParentWhoseStandardErrorIsStuckStillHearsFromItsChildren() async throws {
        let p = Crew.Process(target: TestFunctions.childOfAStuckParent, crew: testCrew)
        try await p.start()
        #expect(try await p.value == 2000)
    }

    @Test func manyProcessesAtOnce() async throws {
        let processes = (0..<16).map { Crew.Process(target: TestFunctions.square, args: $0, crew: testCrew) }
        for p in processes { try await p.start() }
        var results: [Int] = []
        for p in processes { results.append(try await p.value) }
        #expect(results == (0..<16).map { $0 * $0 })
        for p in processes { try await p.join() }
    }
}

/// Lets one test run processes of different types.
protocol ProcessLike {
    var pid: Int32? { get }
    var exitCode: Int32? { get }
    func awaitValue() async throws -> Any
    func awaitJoin() async throws
}

extension Crew.Process: ProcessLike {
    func awaitValue() async throws -> Any { try await value }
    func awaitJoin() async throws { try await join() }
}

func started<A, R>(_ p: Crew.Process<A, R>) throws -> Crew.Process<A, R> {
    try p.start()
    return p
}

@Suite struct ReapingTests {
    /// However a child ends, once `join` returns it has been reaped: no zombie is left behind.
    @Test func everyEndingIsReaped() async throws {
        var pids: [Int32] = []
        let ok = Crew.Process(target: TestFunctions.square, args: 2, crew: testCrew)
        let trap = Crew.Process(target: TestFunctions.trapIndex, args: 9, crew: testCrew)
        let exit3 = Crew.Process(target: TestFunctions.exitWith, args: 3, crew: testCrew)
        let killed = Crew.Process(target: TestFunctions.sleepForever, crew: testCrew)
        let terminated = Crew.Process(target: TestFunctions.sleepForever, crew: testCrew)
        let threw = Crew.Process(target: TestFunctions.fail, args: "x", crew: testCrew)
        try await ok.start()
        try await trap.start()
        try await exit3.start()
        try await killed.start()
        try await terminated.start()
        try await threw.start()
        killed.kill()
        terminated.terminate()
        try await ok.join()
        try await trap.join()
        try await exit3.join()
        try await killed.join()
        try await terminated.join()
        try await threw.join()
        let all: [any ProcessLike] = [ok, trap, exit3, killed, terminated, threw]
        pids = all.compactMap(\.pid)
        #expect(pids.count == 6)
        for pid in pids {
            #expect(processState(pid) == nil, "pid \(pid) is still there (state \(processState(pid) ?? "-"))")
        }
        // A worker that is shut down is reaped too.
        let worker = try ChildWorker(crew: testCrew)
        await worker.shutdown()
        #expect(processState(worker.pid) == nil)
    }
}
