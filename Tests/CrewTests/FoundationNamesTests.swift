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

    @Test func theIPCThreadAndCoroutineTypesClashWithNothing() async throws {
        let _: Queue<Int> = try Queue()
        let _: JoinableQueue<Int> = try JoinableQueue()
        let _: SimpleQueue<Int> = try SimpleQueue()
        let (a, b): (Connection, Connection) = try Crew.Pipe().ends
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
        let coroutine: Coroutine<Int> = spawn { 1 }
        _ = try await joinAll([coroutine])
        let _: CoroutinePool = try CoroutinePool(size: 1)
        let _: AsyncEvent = AsyncEvent()
        let _: Channel<Int> = Channel()
        let _: BlockingPool = BlockingPool.shared
        let executor: Crew.Executor = try .threads(1)
        try await executor.shutdown()
        try await sleep(for: .zero)
        #expect(try await withTimeout(.seconds(5)) { 2 } == 2)
        #expect(try await blocking { 3 } == 3)
        let _: AsyncResult<Int> = try ThreadPool(processes: 1).applyAsync { 4 }
    }
}
