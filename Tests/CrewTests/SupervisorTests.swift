import CrewTestHelpers
import CrewTestSupport
import Logging
import Testing

@testable import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// A supervisor with real worker processes: restarts, heartbeats, crash loops, reloads, scaling and stops.
@Suite(.serialized) struct SupervisorTests {
    init() {
        _ = testCrew
    }

    func options(_ workers: Int, _ change: (inout Crew.Supervisor.Options) -> Void = { _ in })
        -> Crew.Supervisor.Options
    {
        var options = Crew.Supervisor.Options(workers: workers, gracefulTimeout: .seconds(10), handlesSignals: false)
        change(&options)
        return options
    }

    /// Waits until `condition` holds, at most `seconds`.
    func eventually(_ seconds: Double = 20, _ condition: () -> Bool) async throws -> Bool {
        let end = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < end {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    func temporaryLog() -> String {
        "/tmp/crew-supervisor-test-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).log"
    }

    func read(_ path: String) -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test(.timeLimit(.minutes(2)))
    func aKilledWorkerIsReplacedAndAStopIsGraceful() async throws {
        let log = temporaryLog()
        defer { unlink(log) }
        let supervisor = try Crew.Supervisor(
            testCrew, worker: TestFunctions.supervised, arguments: SupervisedJob(mode: "idle", log: log),
            options: options(2))
        let running = Task { try await supervisor.run() }
        #expect(try await eventually { supervisor.readyWorkerPIDs.count == 2 })
        let first = supervisor.readyWorkerPIDs
        // kill -9 one worker: another takes its place, and the other worker is untouched.
        kill(first[0], SIGKILL)
        #expect(try await eventually { Set(supervisor.readyWorkerPIDs).subtracting(first).count == 1 })
        #expect(supervisor.readyWorkerPIDs.contains(first[1]))
        // A graceful stop: each worker hears SIGTERM, finishes and returns.
        let all = first + supervisor.readyWorkerPIDs
        supervisor.send(.stop)
        try await running.value
        let stopped = read(log).split(separator: "\n")
        #expect(stopped.count == 2, "\(stopped)")
        // None of its workers outlives it.
        #expect(all.allSatisfy { kill($0, 0) != 0 })
        #expect(supervisor.workerPIDs.isEmpty)
    }

    @Test(.timeLimit(.minutes(2)))
    func aWorkerThatStopsBeatingIsKilledAndReplaced() async throws {
        let supervisor = try Crew.Supervisor(
            testCrew, worker: TestFunctions.supervised, arguments: SupervisedJob(mode: "idle"),
            options: options(1) {
                $0.timeout = .seconds(1)
                $0.killGrace = .milliseconds(300)
            })
        let running = Task { try await supervisor.run() }
        #expect(try await eventually { supervisor.readyWorkerPIDs.count == 1 })
        let stuck = supervisor.readyWorkerPIDs[0]
        // A stopped process runs nothing: it stands for a worker whose handler blocks every thread.
        kill(stuck, SIGSTOP)
        #expect(
            try await eventually { supervisor.readyWorkerPIDs.count == 1 && supervisor.readyWorkerPIDs[0] != stuck })
        #expect(try await eventually { kill(stuck, 0) != 0 })
        supervisor.send(.stop)
        try await running.value
    }

    @Test(.timeLimit(.minutes(2)), arguments: ["failBoot", "trapBoot"])
    func workersThatDieBeforeTheyAreReadyStopTheSupervisor(mode: String) async throws {
        let supervisor = try Crew.Supervisor(
            testCrew, worker: TestFunctions.supervised, arguments: SupervisedJob(mode: mode),
            options: options(2) {
                $0.crashLoopDeaths = 4
                $0.backoff = .milliseconds(10)
            })
        let error = await #expect(throws: CrewError.self) { try await supervisor.run() }
        #expect(error?.code == .crashLoop)
        #expect(supervisor.workerPIDs.isEmpty)
    }

    @Test(.timeLimit(.minutes(2)))
    func workersLinesReachTheSupervisorsLoggerWithTheirID() async throws {
        let lines = RecordedLines()
        let supervisor = try Crew.Supervisor(
            testCrew, worker: TestFunctions.supervised, arguments: SupervisedJob(mode: "trapBoot"),
            options: options(1) { $0.crashLoopDeaths = 1 },
            logger: Logger(label: "test") { _ in RecordingLogHandler(lines: lines) })
        await #expect(throws: CrewError.self) { try await supervisor.run() }
        // The trap's message, as the worker wrote it to its standard error, with the worker's id, at error.
        let relayed = lines.all.filter { $0.message.contains("Fatal error: worker 1 traps as it starts") }
        // (The supervisor's own line, "worker 1 died: ...", quotes it too.)
        #expect(
            relayed.contains {
                $0.level == .error && $0.metadata["crew.worker"] == "1" && !$0.message.contains("died")
            },
            "\(lines.all)")
    }

    @Test(.timeLimit(.minutes(2)))
    func aWorkerThatExitsOnItsOwnIsReplacedAtOnce() async throws {
        let supervisor = try Crew.Supervisor(
            testCrew, worker: TestFunctions.supervised, arguments: SupervisedJob(mode: "exitSoon"),
            options: options(1) { $0.crashLoopDeaths = 1 })
        let running = Task { try await supervisor.run() }
        var seen: Set<Int32> = []
        #expect(
            try await eventually {
                seen.formUnion(supervisor.readyWorkerPIDs)
                return seen.count >= 3
            })
        supervisor.send(.stop)
        try await running.value
    }

    @Test(.timeLimit(.minutes(2)))
    func aReloadStartsNewWorkersBeforeTheOldOnesDrain() async throws {
        let log = temporaryLog()
        defer { unlink(log) }
        let supervisor = try Crew.Supervisor(
            testCrew, worker: TestFunctions.supervised, arguments: SupervisedJob(mode: "idle", log: log),
            options: options(2))
        let running = Task { try await supervisor.run() }
        #expect(try await eventually { supervisor.readyWorkerPIDs.count == 2 })
        let old = Set(supervisor.readyWorkerPIDs)
        supervisor.send(.reload)
        #expect(
            try await eventually {
                Set(supervisor.readyWorkerPIDs).isDisjoint(with: old) && supervisor.readyWorkerPIDs.count == 2
            })
        // The old generation stopped gracefully.
        #expect(try await eventually { read(log).split(separator: "\n").count == 2 })
        #expect(read(log).split(separator: "\n").allSatisfy { $0.contains("generation 1") })
        supervisor.send(.stop)
        try await running.value
        #expect(read(log).split(separator: "\n").filter { $0.contains("generation 2") }.count == 2)
    }

    @Test(.timeLimit(.minutes(2)))
    func workersAreAddedAndRemovedOneAtATime() async throws {
        let supervisor = try Crew.Supervisor(
            testCrew, worker: TestFunctions.supervised, arguments: SupervisedJob(mode: "idle"), options: options(1))
        let running = Task { try await supervisor.run() }
        #expect(try await eventually { supervisor.readyWorkerPIDs.count == 1 })
        supervisor.send(.addWorker)
        supervisor.send(.addWorker)
        #expect(try await eventually { supervisor.readyWorkerPIDs.count == 3 })
        supervisor.send(.removeWorker)
        #expect(try await eventually { supervisor.workerPIDs.count == 2 })
        #expect(supervisor.targetWorkers == 2)
        supervisor.send(.stop)
        try await running.value
    }

    @Test func badOptionsAreTypedErrors() throws {
        let none = #expect(throws: CrewError.self) {
            _ = try Crew.Supervisor(
                testCrew, worker: TestFunctions.supervised, arguments: SupervisedJob(mode: "idle"), options: options(0))
        }
        #expect(none?.code == .invalidArgument)
        let unregistered = Crew.Function("notRegistered") { (_: Crew.Supervisor.Start<Int>) in Crew.Empty() }
        let unknown = #expect(throws: CrewError.self) {
            _ = try Crew.Supervisor(testCrew, worker: unregistered, arguments: 1, options: options(1))
        }
        #expect(unknown?.code == .unknownFunction)
    }
}
