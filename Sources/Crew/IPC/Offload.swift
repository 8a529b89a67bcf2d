import Synchronization

/// Runs `attempt` on Crew's bounded pool for blocking calls (see ``Crew/blocking(_:)``) until it stops throwing
/// ``CrewError/Code/empty`` or ``CrewError/Code/full`` (each attempt waits a short while), or the task is
/// cancelled. For the async forms of blocking waits on shared memory, which no event loop can watch: however
/// many tasks wait, they hold at most the pool's threads, a short attempt at a time.
func offload<R: Sendable>(_ attempt: @escaping @Sendable () throws -> R) async throws -> R {
    while true {
        try Task.checkCancellation()
        do {
            return try await BlockingPool.shared.run(attempt)
        } catch let error as CrewError where error.code == .empty || error.code == .full {
            continue
        }
    }
}
