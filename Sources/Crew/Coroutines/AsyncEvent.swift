import AsyncAlgorithms
import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A flag coroutines can wait for: gevent's `Event`, for tasks (``Crew/Event`` is the one between processes).
public final class AsyncEvent: Sendable {
    private struct State {
        var isSet = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    /// A new event, not set.
    public init() {}

    /// True once ``set()`` was called (and ``clear()`` not since).
    public var isSet: Bool { state.withLock { $0.isSet } }

    /// Sets the flag and wakes every waiter.
    public func set() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.isSet = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Clears the flag.
    public func clear() {
        state.withLock { $0.isSet = false }
    }

    /// Waits until the flag is set, or `timeout` passes.
    ///
    /// - Returns: whether the flag is set (false after a time-out or cancellation).
    @discardableResult
    public func wait(timeout: Duration? = nil) async -> Bool {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        if let timeout {
            let nanoseconds = timeout.clampedNanoseconds
            Reactor.shared.submit { [self] in
                Reactor.shared.schedule(afterNanoseconds: nanoseconds) { [self] in resume(id) }
            }
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.isSet || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            resume(id)
        }
        return isSet
    }

    private func resume(_ id: UInt64) {
        state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
    }
}
