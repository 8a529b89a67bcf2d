import AsyncAlgorithms
import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
    /// Moves a blocking call — a C library, `sleep(2)` as in the tutorial, file I/O — off Swift's cooperative
    /// threads onto a bounded pool of threads, so that it never stalls other coroutines: the job gevent's
    /// `monkey.patch_all()` does.
    ///
    /// The pool grows to ``BlockingPool/limit`` threads; beyond that, callers wait (suspended, holding no thread)
    /// for one to free up — back-pressure rather than unbounded threads.
    public static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await BlockingPool.shared.run(body)
    }
}

/// The threads behind ``Crew/blocking(_:)``.
public final class BlockingPool: @unchecked Sendable {
    // @unchecked Sendable: `state` is behind its lock; `wakeups` is a semaphore, made for use across threads.
    /// The pool ``Crew/blocking(_:)`` uses.
    public static let shared = BlockingPool(limit: 64)

    /// The most threads the pool runs at once.
    public let limit: Int

    private struct State {
        var queue: [@Sendable () -> Void] = []
        var head = 0
        var idle = 0
        var threads = 0
    }

    private let state = Locked(State())
    private let wakeups: UnsafeMutablePointer<sem_t>

    /// A pool of at most `limit` threads, started as needed.
    public init(limit: Int) {
        self.limit = max(1, limit)
        wakeups = .allocate(capacity: 1)
        sem_init(wakeups, 0, 0)
    }

    deinit {
        sem_destroy(wakeups)
        wakeups.deallocate()
    }

    /// Threads running now (busy or idle).
    public var threads: Int { state.withLock { $0.threads } }

    /// Calls waiting for a thread now.
    public var waiting: Int { state.withLock { $0.queue.count - $0.head } }

    /// Runs `body` on one of the pool's threads and returns its value.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            submit {
                do {
                    continuation.resume(returning: try body())
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    private func submit(_ job: @escaping @Sendable () -> Void) {
        enum Action { case wake, start, none }
        let action: Action = state.withLock { state in
            state.queue.append(job)
            if state.idle > 0 {
                state.idle -= 1
                return .wake
            }
            if state.threads < limit {
                state.threads += 1
                return .start
            }
            return .none
        }
        switch action {
        case .wake: sem_post(wakeups)
        case .start: startThread(name: "crew-blocking") { [self] in serve() }
        case .none: break
        }
    }

    private func serve() {
        while true {
            let job: (@Sendable () -> Void)? = state.withLock { state in
                guard state.head < state.queue.count else {
                    state.idle += 1
                    return nil
                }
                let job = state.queue[state.head]
                state.head += 1
                if state.head == state.queue.count {
                    state.queue.removeAll(keepingCapacity: true)
                    state.head = 0
                }
                return job
            }
            if let job {
                job()
            } else {
                // Idle: wait for a wake-up (a submission that counted on this thread).
                while sem_wait(wakeups) != 0 && errno == EINTR {}
            }
        }
    }
}
