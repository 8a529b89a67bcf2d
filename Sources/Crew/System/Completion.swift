#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A pthread mutex with a condition variable, for threads that must block (the blocking conveniences
/// Python users expect: `join(timeout:)`, `get(timeout:)`).
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

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }

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
final class Completion<Value: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: all state is behind `lock`.
    private let lock = ConditionLock()
    private var value: Value?
    private var waiters: [UInt64: CheckedContinuation<Value?, Never>] = [:]
    private var nextWaiter: UInt64 = 0

    init() {}

    /// Sets the value and wakes every waiter. Only the first call has an effect; returns whether it did.
    @discardableResult
    func complete(_ newValue: Value) -> Bool {
        lock.lock()
        guard value == nil else {
            lock.unlock()
            return false
        }
        value = newValue
        let continuations = waiters.values
        waiters.removeAll()
        lock.broadcast()
        lock.unlock()
        for continuation in continuations { continuation.resume(returning: newValue) }
        return true
    }

    /// The value, if it has arrived.
    var current: Value? { lock.withLock { value } }

    /// Waits for the value; nil if the waiting task is cancelled first.
    func wait() async -> Value? {
        if let value = current { return value }
        let id = lock.withLock { () -> UInt64 in
            nextWaiter += 1
            return nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
                lock.lock()
                if let value {
                    lock.unlock()
                    continuation.resume(returning: value)
                } else if Task.isCancelled {
                    lock.unlock()
                    continuation.resume(returning: nil)
                } else {
                    waiters[id] = continuation
                    lock.unlock()
                }
            }
        } onCancel: {
            let continuation = lock.withLock { waiters.removeValue(forKey: id) }
            continuation?.resume(returning: nil)
        }
    }

    /// Blocks the calling thread until the value arrives or `timeout` passes (nil: no limit).
    func wait(timeout: Duration?) -> Value? {
        let deadline = timeout.map { monotonicNanos() &+ $0.clampedNanoseconds }
        lock.lock()
        defer { lock.unlock() }
        while value == nil {
            if let deadline, monotonicNanos() >= deadline { break }
            lock.wait(until: deadline)
        }
        return value
    }
}
