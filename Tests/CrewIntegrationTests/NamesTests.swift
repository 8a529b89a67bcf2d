@_spi(Internals) import Crew
import CrewCLI
import CrewPostgres
import CrewQueue
import CrewSQLite
import CrewTestHelpers
import CrewTestSupport
import CrewTesting
import Foundation
import NIOCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Every Crew module imported beside Foundation, Glibc and NIOCore, as an app that also serves HTTP or talks to
/// PostgreSQL has them, and every public name of Crew used here by its documented spelling: a name that clashed
/// (or a nested one that stopped resolving) would fail the build. Foundation's `Process`, `Thread` and `Pipe`,
/// Glibc's `sleep` and NIOCore's `Channel` stay theirs.
@Suite struct NamesTests {
    @Test func crewAndFoundationLiveTogether() throws {
        let foundationProcess: Foundation.Process = Process()
        #expect(foundationProcess.processIdentifier == 0)
        let crewProcess: Crew.Process<Int, Int> = Crew.Process(target: TestFunctions.square, args: 1, crew: testCrew)
        #expect(crewProcess.pid == nil)
        let _: Thread = Thread.current
        let _: Pipe = Pipe()
        let function: Crew.Function<Int, Int> = TestFunctions.square
        let erased: any AnyFunction = function
        let registration: FunctionRegistration = erased.registration
        #expect(registration.name == "square")
        let options: Crew.Options = testCrew.options
        #expect(options.maxFrameSize > 0)
        let code: CrewError.Code = .workerCrashed
        let status: Crew.ExitStatus = .exited(0)
        let empty: Crew.Empty = Crew.Empty()
        #expect(code.description == "workerCrashed" && status.isSuccess && empty == Crew.Empty())
        #expect(!Crew.isChildProcess)
        #expect(Crew.current != nil)
    }

    @Test func theIPCThreadAndCoroutineTypesClashWithNothing() async throws {
        let _: Crew.Queue<Int> = try Crew.Queue()
        let _: Crew.JoinableQueue<Int> = try Crew.JoinableQueue()
        let _: Crew.SimpleQueue<Int> = try Crew.SimpleQueue()
        let (a, b): (Crew.Connection, Crew.Connection) = try Crew.Pipe().ends
        a.close()
        b.close()
        let _: SharedValue<Int> = try SharedValue(0)
        let _: SharedArray<Int> = try SharedArray([1])
        let _: Crew.Lock = try Crew.Lock()
        let _: Crew.RLock = try Crew.RLock()
        let _: Crew.Semaphore = try Crew.Semaphore()
        let _: Crew.Event = try Crew.Event()
        let _: Crew.Condition = try Crew.Condition()
        let _: Crew.Barrier = try Crew.Barrier(parties: 1)
        let thread: Crew.Thread = Crew.Thread {}
        #expect(!thread.isAlive)
        let pool: any WorkerPool = try ThreadPool(processes: 1)
        pool.close()
        let coroutine: Crew.Coroutine<Int> = Crew.spawn { 1 }
        _ = try await Crew.joinAll([coroutine])
        let _: CoroutinePool = try CoroutinePool(size: 1)
        let _: AsyncEvent = AsyncEvent()
        let _: Crew.Channel<Int> = Crew.Channel()
        let _: BlockingPool = BlockingPool.shared
        let executor: Crew.Executor = try .threads(1)
        try await executor.shutdown()
        try await Crew.sleep(for: .zero)
        #expect(try await Crew.withTimeout(.seconds(5)) { 2 } == 2)
        #expect(try await Crew.blocking { 3 } == 3)
        let _: AsyncResult<Int> = try ThreadPool(processes: 1).applyAsync { 4 }
        let _: PoolResults<Int>.Type = PoolResults<Int>.self
        let _: ProcessPool.Type = ProcessPool.self
        let _: ChildWorker.Type = ChildWorker.self
        #expect(Crew.heapBytesInUse() > 0)
    }

    @Test func theOtherLibrariesNamesBesideNIOAndFoundation() async throws {
        // NIOCore's and Glibc's own names, unqualified, are still theirs.
        let _: (any Channel)? = nil
        let _: ByteBuffer = ByteBuffer()
        #expect(sleep(0) == 0)
        // CrewQueue.
        let broker: any QueueBroker = MemoryBroker()
        let task = QueueTask(TestFunctions.square)
        let client = TaskClient(broker: broker)
        let handle: TaskHandle<Int> = try await client.enqueue(task, 3)
        let _: any AnyQueueTask = task
        let _: TaskOptions = TaskOptions()
        let _: JobID = handle.id
        let _: JobState = .available
        let _: NewJob = try client.job(task, 4)
        let _: JobRecord? = try await broker.job(handle.id)
        let _: JobOutcome = JobOutcome(handle.id, result: "9")
        let _: AttemptError = AttemptError(attempt: 1, message: "m")
        let _: QueueCounts = QueueCounts(queue: "default", counts: [:])
        let _: BrokerError.Code = .storage
        let _: BrokerSignal = .jobs
        let _: BrokerSignals.Type = BrokerSignals.self
        #expect(JobRules.seconds(.seconds(2)) == 2)
        let executor = try Crew.Executor.threads(1)
        let worker = QueueWorker(broker: broker, tasks: [task], executor: executor)
        let _: QueueWorker.Configuration = worker.configuration
        let schedule: PeriodicTask = .every(.seconds(60), task, 1)
        let _: PeriodicScheduler = PeriodicScheduler(broker: broker, schedules: [schedule])
        try await executor.shutdown()
        // CrewSQLite, CrewPostgres, CrewCLI, CrewTesting.
        let _: SQLiteBroker.Type = SQLiteBroker.self
        let _: PostgresBroker.Options.Type = PostgresBroker.Options.self
        let _: CrewCLI.Type = CrewCLI.self
        #expect(CrewTesting.zombieChildren().isEmpty || true)
    }

    /// The static functions and the nested types not named above, each by its documented spelling. The calls that
    /// would start or register something sit in a closure that is compiled, never run.
    @Test func theStaticFunctionsAndNestedTypesResolve() throws {
        let _: Crew.StartMethod = .forkserver
        let _: CrewError.CallState = .runningWithOthers
        let _: ProcessPool.Options = ProcessPool.Options()
        let _: QueueWorker.Configuration = QueueWorker.Configuration()
        let _: Crew.Options = Crew.Options()
        #expect(!JobID.make().rawValue.isEmpty)
        let job = NewJob(name: "f", arguments: "[]")
        #expect(JobRules.initialState(job, now: Date()) == .available)
        try JobRules.validate([job])
        #expect(CrewTesting.processExists(getpid()))
        #expect(CrewTesting.liveChildren().count >= 0 && !CrewTesting.productsDirectory.isEmpty)
        let compiledOnly: () async throws -> Void = {
            _ = try Crew.bootstrap(TestFunctions.square)
            _ = try Crew.bootstrap([TestFunctions.square], options: Crew.Options())
            _ = try CrewTesting.bootstrap([TestFunctions.square], worker: "crew-test-worker")
            _ = try CrewTesting.executablePath("crew-test-worker")
            _ = try Crew.Executor.processes(2)
            _ = try Crew.Executor.processes(2, coroutinesEach: 10)
            _ = try Crew.Executor.coroutines(10)
            _ = try Crew.Executor.threads(2)
            _ = try await PostgresBroker.connect(url: "postgres://localhost/crew")
            _ = try await CrewCLI.broker("sqlite:///tmp/crew.db")
            _ = try await CrewCLI.output(tasks: [], arguments: ["inspect"])
            await CrewCLI.main(tasks: [])
            _ = JobRules.afterFailure
        }
        _ = compiledOnly
    }
}
