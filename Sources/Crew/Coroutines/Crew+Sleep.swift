import AsyncAlgorithms
import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
    /// Suspends the running coroutine for `duration`, letting others run: gevent's `sleep`. A zero duration only
    /// yields. (Glibc's blocking `sleep(_:)` would hold a cooperative thread: wrap such calls in
    /// ``Crew/blocking(_:)``.)
    ///
    /// - Throws: `CancellationError` if the coroutine is cancelled while it sleeps.
    public static func sleep(for duration: Duration) async throws {
        if duration <= .zero {
            await Task.yield()
            try Task.checkCancellation()
        } else {
            try await Task.sleep(for: duration)
        }
    }
}
