public import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A pthread mutex with a condition variable, for threads that must block (the blocking conveniences
/// Python users expect: `join(timeout:)`, `get(timeout:)`).
@usableFromInline
final class ConditionLock: @unchecked Sendable {
    // @unchecked Sendable: the pthread objects are used only through their own thread-safe calls.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    @usableFromInline
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }

    @usableFromInline
    func broadcast() { pthread_cond_broadcast(condition) }

    /// Waits (the lock held) until signalled or until `deadline` (monotonic nanoseconds) passes.
    /// Returns false on timeout.
    @discardableResult
    func wait(until deadline: UInt64?) -> Bool {
        guard let deadline else {
            pthread_cond_wait(condition, mutex)
            return true
        }
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(condition, mutex, &ts) != ETIMEDOUT
    }
}

/// A value that arrives once, awaited by tasks or waited for by threads.
///
/// Cheap when only tasks wait (one mutex, no allocation beyond the waiters); a thread that blocks brings its
/// own condition variable.
//
// Its hot methods are inlinable: they are then specialized where the value's type is known (a pool's result in
// the caller's module), instead of running as generic code that looks its types up at run time on every call.
@usableFromInline
final class Completion<Value: Sendable>: Sendable {
    @usableFromInline
    struct Waiter {
        @usableFromInline var id: UInt64
        @usableFromInline var continuation: CheckedContinuation<Value?, Never>

        @inlinable
        init(id: UInt64, continuation: CheckedContinuation<Value?, Never>) {
            self.id = id
            self.continuation = continuation
        }
    }

    @usableFromInline
    struct State {
        @usableFromInline var value: Value?
        @usableFromInline var waiters: [Waiter] = []
        @usableFromInline var sleepers: [ConditionLock] = []
        @usableFromInline var nextWaiter: UInt64 = 0

        @inlinable
        init() {}
    }

    @usableFromInline
    let state: Mutex<State>

    @inlinable
    init() {
        state = Mutex(State())
    }

    /// Sets the value and wakes every waiter. Only the first call has an effect; returns whether it did.
    @inlinable
    @discardableResult
    func complete(_ newValue: Value) -> Bool {
        let woken = state.withLock { state -> State? in
            guard state.value == nil else { return nil }
            state.value = newValue
            var taken = State()
            swap(&taken.waiters, &state.waiters)
            swap(&taken.sleepers, &state.sleepers)
            return taken
        }
        guard let woken else { return false }
        for waiter in woken.waiters { waiter.continuation.resume(returning: newValue) }
        for sleeper in woken.sleepers {
            sleeper.withLock { sleeper.broadcast() }
        }
        return true
    }

    /// The value, if it has arrived.
    @inlinable
    var current: Value? { state.withLock { $0.value } }

    /// Waits for the value; nil if the waiting task is cancelled first.
    @inlinable
    func wait() async -> Value? {
        let id: UInt64
        switch state.withLock({ state -> (Value?, UInt64) in
            state.nextWaiter += 1
            return (state.value, state.nextWaiter)
        }) {
        case (let value?, _): return value
        case (nil, let waiter): id = waiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
                let immediate = state.withLock { state -> Value?? in
                    if let value = state.value { return .some(value) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<Value?, Never>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            continuation?.resume(returning: nil)
        }
    }

    /// Blocks the calling thread until the value arrives or `timeout` passes (nil: no limit). With
    /// `spinNanoseconds`, polls for that long first: a value that comes within it costs no sleep and no wake-up.
    func wait(timeout: Duration?, spinNanoseconds: UInt64 = 0) -> Value? {
        let deadline = timeout.map { monotonicNanos() &+ $0.clampedNanoseconds }
        if spinNanoseconds > 0 {
            let until = monotonicNanos() &+ min(spinNanoseconds, timeout?.clampedNanoseconds ?? .max)
            repeat {
                if let value = current { return value }
            } while monotonicNanos() < until
        }
        let sleeper = ConditionLock()
        sleeper.lock()
        defer { sleeper.unlock() }
        if let value = state.withLock({ state -> Value? in
            if state.value == nil { state.sleepers.append(sleeper) }
            return state.value
        }) {
            return value
        }
        while true {
            if let value = current { return value }
            if let deadline, monotonicNanos() >= deadline { break }
            sleeper.wait(until: deadline)
        }
        state.withLock { state in state.sleepers.removeAll { $0 === sleeper } }
        return current
    }
}
