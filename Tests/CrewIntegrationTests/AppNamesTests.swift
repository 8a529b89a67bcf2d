import Crew
import CrewTestHelpers
import CrewTestSupport
import Testing

// An app's own types with the names of Crew's top-level ones: in this file they win, and Crew's are still reachable
// by their qualified names.
private final class ProcessPool {}
private final class ThreadPool {}
private final class CoroutinePool {}
private protocol WorkerPool {}
private struct AsyncResult {}
private struct PoolResults {}
private final class AsyncEvent {}
private final class BlockingPool {}
private struct SharedValue {}
private struct SharedArray {}
private protocol AnyFunction {}
private struct FunctionRegistration {}

@Suite struct AppNamesTests {
    @Test func crewsTopLevelTypesHaveQualifiedNamesBesideAnAppsOwn() async throws {
        let _: ProcessPool = ProcessPool()  // The app's.
        let pool: Crew.ProcessPool = try Crew.ProcessPool(testCrew, processes: 1)
        let result: Crew.AsyncResult<Int> = try pool.applyAsync(TestFunctions.square, 3)
        #expect(try await result.value == 9)
        let results: Crew.PoolResults<Int> = try pool.imap(TestFunctions.square, [2])
        for try await value in results { #expect(value == 4) }
        let any: any Crew.WorkerPool = pool
        any.close()
        try await pool.join()
        let threads: Crew.ThreadPool = try Crew.ThreadPool(processes: 1)
        threads.close()
        let _: Crew.CoroutinePool = try Crew.CoroutinePool(size: 1)
        let _: Crew.AsyncEvent = Crew.AsyncEvent()
        let _: Crew.BlockingPool = Crew.BlockingPool.shared
        let _: Crew.SharedValue<Int> = try Crew.SharedValue(0)
        let _: Crew.SharedArray<Int> = try Crew.SharedArray([1])
        let function: any Crew.AnyFunction = TestFunctions.square
        let _: Crew.FunctionRegistration = function.registration
    }
}
