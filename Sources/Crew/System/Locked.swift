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
final class Locked<Value>: @unchecked Sendable {
    // @unchecked Sendable: `value` is only touched while `mutex` is held.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    init(_ value: Value) {
        self.value = value
        _ = crew_mutex_init_adaptive(mutex)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always)
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
