import CCrewShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A value behind an adaptive pthread mutex, for Crew's hot, short critical sections.
///
/// `Synchronization.Mutex` on Linux uses priority-inheritance futexes: every contended lock is a system call.
/// Under the contention of a pool (the I/O thread and submitting threads on the same lock), that cost showed in
/// profiles; an adaptive mutex spins briefly first and sleeps only if the holder stays.
@usableFromInline
final class Locked<Value>: @unchecked Sendable {
    // @unchecked Sendable: `value` is only touched while `mutex` is held.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    @usableFromInline
    var value: Value

    @usableFromInline
    init(_ value: Value) {
        self.value = value
        _ = crew_mutex_init_adaptive(mutex)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inlinable @inline(__always)
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body(&value)
    }

    /// Runs `body` with the lock if it is free now; nil (without waiting) if another thread holds it.
    func withLockIfAvailable<R>(_ body: (inout Value) throws -> R) rethrows -> R? {
        guard pthread_mutex_trylock(mutex) == 0 else { return nil }
        defer { unlock() }
        return try body(&value)
    }

    /// Runs `body` with the lock if it can be had within `nanoseconds`; nil (after that wait) if not.
    func withLock<R>(waitingAtMost nanoseconds: UInt64, _ body: (inout Value) throws -> R) rethrows -> R? {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let total = UInt64(now.tv_nsec) + nanoseconds % 1_000_000_000
        var until = timespec(
            tv_sec: now.tv_sec + Int(nanoseconds / 1_000_000_000) + Int(total / 1_000_000_000),
            tv_nsec: Int(total % 1_000_000_000))
        guard pthread_mutex_timedlock(mutex, &until) == 0 else { return nil }
        defer { unlock() }
        return try body(&value)
    }

    @usableFromInline
    func lock() {
        pthread_mutex_lock(mutex)
    }

    @usableFromInline
    func unlock() {
        pthread_mutex_unlock(mutex)
    }
}
