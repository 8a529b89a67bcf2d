public import Crew
import CrewTestSupport
public import Synchronization

/// Functions queued tasks run in these tests (in this process, on threads or coroutines).
public enum QueuedWork {
    public static let flakyCalls = Mutex(0)
    public static let double = Crew.Function("queued.double") { (n: Int) in n * 2 }
    /// Fails its first two calls, then succeeds.
    public static let flaky = Crew.Function("queued.flaky") { (n: Int) throws -> Int in
        let call = flakyCalls.withLock {
            $0 += 1
            return $0
        }
        if call <= 2 { throw TestFailure(reason: "call \(call) fails") }
        return n
    }
    public static let measured = Crew.Function("queued.measured") { (n: Int) in n + 1 }
    public static let nap = Crew.Function("queued.nap") { (ms: Int) async throws -> Int in
        try await Task.sleep(for: .milliseconds(ms))
        return ms
    }
}
