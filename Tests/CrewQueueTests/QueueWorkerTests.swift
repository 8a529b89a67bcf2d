import Crew
import CrewQueue
import CrewSQLite
import CrewTestHelpers
import CrewTestSupport
import Foundation
import Logging
import Metrics
import MetricsTestKit
import ServiceLifecycle
import Synchronization
import Testing
import UnixSignals

/// The metrics backend of the test process (swift-metrics is bootstrapped once per process).
let testMetrics: TestMetrics = {
    let metrics = TestMetrics()
    MetricsSystem.bootstrap(metrics)
    return metrics
}()

/// The queue end to end: a client enqueues, a worker runs, handles get results.
@Suite(.serialized) struct QueueWorkerTests {
    enum Backend: String, CaseIterable, CustomTestStringConvertible {
        case memoryThreads, sqliteCoroutines
        var testDescription: String { rawValue }
    }

    init() {
        _ = testCrew
    }

    func setUp(
        _ backend: Backend, tasks: [any AnyQueueTask],
        configuration: QueueWorker.Configuration = .init(pollInterval: .milliseconds(5))
    ) throws -> (TaskClient, QueueWorker) {
        let broker: any QueueBroker
        let executor: Crew.Executor
        switch backend {
        case .memoryThreads:
            broker = MemoryBroker()
            executor = try .threads(2)
        case .sqliteCoroutines:
            broker = try SQLiteBroker(path: (try TemporaryDatabase.path()))
            executor = try .coroutines(10)
        }
        return (
            TaskClient(broker: broker),
            QueueWorker(broker: broker, tasks: tasks, executor: executor, configuration: configuration)
        )
    }

    @Test(arguments: Backend.allCases)
    func enqueuedTasksRunAndTheirResultsComeBack(backend: Backend) async throws {
        let double = QueueTask(QueuedWork.double)
        let (client, worker) = try setUp(backend, tasks: [double])
        let running = Task { try await worker.run() }
        let handles = try await client.enqueueMany(double, Array(0..<20))
        var results: [Int] = []
        for handle in handles { results.append(try await handle.result(timeout: .seconds(30))) }
        #expect(results == (0..<20).map { $0 * 2 })
        let one = try await client.enqueue(double, 21)
        #expect(try await one.result(timeout: .seconds(30)) == 42)
        #expect(try await one.state == .succeeded)
        // Every job that ended has left the worker's count (none is counted after it ended, however fast).
        let settled = ContinuousClock.now + .seconds(10)
        while worker.running > 0 && ContinuousClock.now < settled { try await Task.sleep(for: .milliseconds(5)) }
        #expect(worker.running == 0)
        worker.stop()
        try await running.value
    }

    @Test(arguments: Backend.allCases)
    func failuresAreRetriedWithBackoffThenReported(backend: Backend) async throws {
        QueuedWork.flakyCalls.withLock { $0 = 0 }
        let flaky = QueueTask(QueuedWork.flaky, options: TaskOptions(maxRetries: 3, retryBackoff: .milliseconds(10)))
        let noRetry = QueueTask(QueuedWork.flaky, options: TaskOptions(maxRetries: 0))
        let (client, worker) = try setUp(backend, tasks: [flaky])
        let running = Task { try await worker.run() }
        let handle = try await client.enqueue(flaky, 5)
        #expect(try await handle.result(timeout: .seconds(30)) == 5)
        let job = try #require(try await client.broker.job(handle.id))
        #expect(job.attempts == 3 && job.errors.count == 2 && job.errors[0].message.contains("call 1 fails"))
        // No retries left: the failure is the handle's error, with the function's error in it.
        QueuedWork.flakyCalls.withLock { $0 = 0 }
        let failing = try await client.enqueue(noRetry, 1)
        let error = await expectCrewError(.remoteError) { try await failing.result(timeout: .seconds(30)) }
        #expect(error?.message.contains("call 1 fails") == true)
        worker.stop()
        try await running.value
    }

    @Test(arguments: Backend.allCases)
    func unknownTasksAndCorruptArgumentsFailTheirJobOnly(backend: Backend) async throws {
        let double = QueueTask(QueuedWork.double)
        let (client, worker) = try setUp(backend, tasks: [double])
        let running = Task { try await worker.run() }
        try await client.broker.enqueue([
            NewJob(id: JobID("unknown"), name: "nobody.knows", arguments: "1"),
            NewJob(id: JobID("corrupt"), name: "queued.double", arguments: "{not json"),
        ])
        let unknown = TaskHandle<Int>(id: JobID("unknown"), broker: client.broker)
        let corrupt = TaskHandle<Int>(id: JobID("corrupt"), broker: client.broker)
        let e1 = await expectCrewError(.remoteError) { try await unknown.result(timeout: .seconds(30)) }
        #expect(e1?.message.contains("no task named") == true)
        let e2 = await expectCrewError(.remoteError) { try await corrupt.result(timeout: .seconds(30)) }
        #expect(e2?.message.contains("decodingFailed") == true)
        #expect(try await client.enqueue(double, 4).result(timeout: .seconds(30)) == 8)  // The worker goes on.
        worker.stop()
        try await running.value
    }

    @Test(arguments: Backend.allCases)
    func aDeclaredErrorComesBackAsItselfFromAJobsResult(backend: Backend) async throws {
        let risky = QueueTask(TestFunctions.risky)
        let (client, worker) = try setUp(backend, tasks: [risky])
        let running = Task { try await worker.run() }
        let failing = try await client.enqueue(risky, 7)
        await #expect(throws: Oops(n: 7, note: "seven")) { try await failing.result(timeout: .seconds(30)) }
        // A retry filter sees it as the remoteError it stands for (and holds it).
        let retried = QueueTask(
            TestFunctions.risky,
            options: TaskOptions(maxRetries: 1, retryBackoff: .milliseconds(1), retryOn: { $0.thrown is Oops }))
        let (retryClient, retryWorker) = try setUp(backend, tasks: [retried])
        let retrying = Task { try await retryWorker.run() }
        let twice = try await retryClient.enqueue(retried, 7)
        await #expect(throws: Oops(n: 7, note: "seven")) { try await twice.result(timeout: .seconds(30)) }
        #expect(try await retryClient.broker.job(twice.id)?.attempts == 2)
        retryWorker.stop()
        try await retrying.value
        // Another type of error stays a CrewError with its description.
        let other = try await client.enqueue(risky, 13)
        let error = await expectCrewError(.remoteError) { try await other.result(timeout: .seconds(30)) }
        #expect(error?.message.contains("TestFailure(thirteen)") == true)
        worker.stop()
        try await running.value
    }

    @Test func aDeclaredErrorThrownInAPreforkWorkerComesBackAsItself() async throws {
        let broker = try SQLiteBroker(path: try TemporaryDatabase.path())
        let risky = QueueTask(TestFunctions.risky)
        let worker = QueueWorker(
            broker: broker, tasks: [risky], executor: try .processes(1, crew: testCrew),
            configuration: .init(pollInterval: .milliseconds(5)))
        let running = Task { try await worker.run() }
        let failing = try await TaskClient(broker: broker).enqueue(risky, 7)
        await #expect(throws: Oops(n: 7, note: "seven")) { try await failing.result(timeout: .seconds(30)) }
        let stored = try #require(try await broker.job(failing.id)?.errors.last)
        #expect(stored.type == String(reflecting: Oops.self) && stored.value != nil)
        worker.stop()
        try await running.value
    }

    @Test func softTimeLimitsCancelAndCancelledJobsNeverRun() async throws {
        let nap = QueueTask(QueuedWork.nap, options: TaskOptions(softTimeLimit: .milliseconds(50)))
        let (client, worker) = try setUp(.memoryThreads, tasks: [nap])
        let cancelled = try await client.enqueue(nap, 1, countdown: .seconds(60))
        #expect(try await cancelled.cancel())
        let running = Task { try await worker.run() }
        let slow = try await client.enqueue(nap, 5_000)
        let error = await expectCrewError(.remoteError) { try await slow.result(timeout: .seconds(30)) }
        #expect(error?.message.contains("timedOut") == true)
        #expect(try await cancelled.state == .cancelled)
        worker.stop()
        try await running.value
    }

    @Test func aCrashInAPreforkWorkerCostsOneAttemptNotTheWorker() async throws {
        let broker = MemoryBroker()
        let trap = QueueTask(
            TestFunctions.trapIndex, options: TaskOptions(maxRetries: 1, retryBackoff: .milliseconds(1)))
        let square = QueueTask(TestFunctions.square)
        let worker = QueueWorker(
            broker: broker, tasks: [trap, square], executor: try .processes(2, crew: testCrew),
            configuration: .init(pollInterval: .milliseconds(5))
        )
        let client = TaskClient(broker: broker)
        let running = Task { try await worker.run() }
        let crashing = try await client.enqueue(trap, 7)
        let error = await expectCrewError(.remoteError) { try await crashing.result(timeout: .seconds(60)) }
        #expect(error?.message.contains("workerCrashed") == true)
        #expect(try await broker.job(crashing.id)?.attempts == 2)  // Retried once, then failed.
        #expect(try await client.enqueue(square, 9).result(timeout: .seconds(60)) == 81)
        worker.stop()
        try await running.value
    }

    @Test func aSchedulerEnqueuesDueTasksOncePerPeriodAcrossSchedulers() async throws {
        let broker = MemoryBroker()
        let double = QueueTask(QueuedWork.double)
        let schedules = [PeriodicTask.every(.seconds(3600), double, 5, name: "hourly")]
        let one = PeriodicScheduler(broker: broker, schedules: schedules)
        let two = PeriodicScheduler(broker: broker, schedules: schedules)
        #expect(try await one.runDue() == ["hourly"])
        #expect(try await two.runDue().isEmpty)  // Already taken for this hour.
        #expect(try await broker.jobs(queue: nil, states: nil, limit: 10).map(\.arguments) == ["5"])
        let running = Task { try await one.run() }
        one.stop()
        try await running.value
    }

    @Test func theWorkerCountsTasksByStateAndTimesThem() async throws {
        _ = testMetrics
        let measured = QueueTask(QueuedWork.measured)
        let (client, worker) = try setUp(.memoryThreads, tasks: [measured])
        let running = Task { try await worker.run() }
        for handle in try await client.enqueueMany(measured, Array(0..<5)) {
            _ = try await handle.result(timeout: .seconds(30))
        }
        worker.stop()
        try await running.value
        #expect(try testMetrics.expectCounter("crew.tasks", [("state", "succeeded")]).totalValue >= 5)
        #expect(try testMetrics.expectTimer("crew.task.duration", [("task", "queued.measured")]).values.count == 5)
    }

    @Test func aGracefulShutdownOfItsServiceGroupStopsTheWorker() async throws {
        let double = QueueTask(QueuedWork.double)
        let (client, worker) = try setUp(.memoryThreads, tasks: [double])
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [worker],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: Logger(label: "test")
            ))
        let running = Task { try await group.run() }
        #expect(try await client.enqueue(double, 3).result(timeout: .seconds(30)) == 6)
        await group.triggerGracefulShutdown()
        try await running.value
    }

    @Test func stoppingLetsRunningJobsFinishThenGivesBackTheRest() async throws {
        let nap = QueueTask(QueuedWork.nap)
        let (client, worker) = try setUp(
            .memoryThreads, tasks: [nap],
            configuration: .init(concurrency: 2, pollInterval: .milliseconds(5), gracePeriod: .milliseconds(300)))
        let quick = try await client.enqueue(nap, 50)
        let long = try await client.enqueue(nap, 20_000)
        let running = Task { try await worker.run() }
        while worker.running < 2 { try await Task.sleep(for: .milliseconds(5)) }
        worker.stop()
        try await running.value
        #expect(try await quick.state == .succeeded)  // Finished within the grace period.
        let given = try #require(try await client.broker.job(long.id))
        #expect(given.state == .available && given.attempts == 0)  // Given back, its attempt not counted.
    }

    @Test func theWorkerStatesItsRealPoolAndLogsEachJobOnlyAtDebugLevel() async throws {
        let lines = RecordedLines()
        let broker = MemoryBroker()
        let double = QueueTask(QueuedWork.double)
        let fails = QueueTask(QueuedWork.flaky, options: TaskOptions(maxRetries: 0))
        QueuedWork.flakyCalls.withLock { $0 = 0 }  // Its first call fails.
        let worker = QueueWorker(
            broker: broker, tasks: [double, fails], executor: try .threads(2),
            configuration: .init(concurrency: 3, pollInterval: .milliseconds(5)),
            logger: Logger(label: "test") { _ in RecordingLogHandler(lines: lines) }
        )
        let running = Task { try await worker.run() }
        let client = TaskClient(broker: broker)
        #expect(try await client.enqueue(double, 4).result(timeout: .seconds(30)) == 8)
        let failed = try await client.enqueue(fails, 1)
        await #expect(throws: (any Error).self) { try await failed.result(timeout: .seconds(30)) }
        worker.stop()
        try await running.value
        let all = lines.all
        let ready = try #require(all.first { $0.message == "worker ready" })
        #expect(ready.level == .info && ready.metadata["pool"] == "threads=2" && ready.metadata["concurrency"] == "3")
        let succeeded = try #require(all.first { $0.message == "task succeeded" })
        #expect(succeeded.level == .debug)
        // A failure keeps its full detail: the error's type and code, not only its message.
        let failure = try #require(all.first { $0.message == "task failed" })
        #expect(failure.level == .warning && failure.metadata["error"]?.contains("CrewError") == true)
        // Without a concurrency of its own, a worker runs as many jobs at once as its pool does.
        #expect(QueueWorker(broker: broker, tasks: [], executor: try .processes(2, crew: testCrew)).concurrency == 2)
        #expect(QueueWorker(broker: broker, tasks: [], executor: try .threads(3)).concurrency == 3)
        let each = try Crew.Executor.processes(2, coroutinesEach: 5, crew: testCrew)
        #expect(QueueWorker(broker: broker, tasks: [], executor: each).concurrency == 10)
    }

    @Test func aWorkerWithANonsensicalConfigurationRefusesToRun() async throws {
        let double = QueueTask(QueuedWork.double)
        let bad: [QueueWorker.Configuration] = [
            .init(concurrency: 0),
            .init(prefetchMultiplier: 0),
            .init(lease: .seconds(5), heartbeat: .seconds(10)),
        ]
        for configuration in bad {
            let (_, worker) = try setUp(.memoryThreads, tasks: [double], configuration: configuration)
            let error = await #expect(throws: BrokerError.self) { try await worker.run() }
            #expect(error?.code == .invalidArgument)
        }
    }

    @Test func aPrefetchingWorkerClaimsAheadRunsInOrderAndGivesBackWhatItDidNotStart() async throws {
        let nap = QueueTask(QueuedWork.nap)
        let configuration = QueueWorker.Configuration(
            concurrency: 1,
            pollInterval: .milliseconds(5),
            gracePeriod: .seconds(30),
            prefetchMultiplier: 3
        )
        let (client, worker) = try setUp(.memoryThreads, tasks: [nap], configuration: configuration)
        let first = try await client.enqueue(nap, 1_500)
        let second = try await client.enqueue(nap, 1)
        let third = try await client.enqueue(nap, 1)
        let fourth = try await client.enqueue(nap, 1)
        let running = Task { try await worker.run() }
        // One runs, two wait in the worker (three held: concurrency × multiplier), the fourth stays queued.
        let deadline = ContinuousClock.now + .seconds(30)
        while try await client.broker.job(third.id)?.state != .running && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(try await first.state == .running)
        #expect(try await second.state == .running)
        #expect(try await third.state == .running)
        #expect(try await fourth.state == .available)
        // The jobs claimed ahead run once the slot is free; all four succeed.
        for handle in [first, second, third, fourth] { _ = try await handle.result(timeout: .seconds(30)) }
        worker.stop()
        try await running.value

        // Stopped while it holds a job it has not started: that one goes back, its attempt not counted (as does
        // the running one, once the grace period is over).
        var short = configuration
        short.gracePeriod = .milliseconds(300)
        let (client2, worker2) = try setUp(.memoryThreads, tasks: [nap], configuration: short)
        let long = try await client2.enqueue(nap, 20_000)
        let ahead = try await client2.enqueue(nap, 1)
        let running2 = Task { try await worker2.run() }
        while try await client2.broker.job(ahead.id)?.state != .running && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(try await long.state == .running)
        worker2.stop()
        try await running2.value
        for id in [ahead.id, long.id] {
            let job = try #require(try await client2.broker.job(id))
            #expect(job.state == .available && job.attempts == 0)
        }
    }
}
