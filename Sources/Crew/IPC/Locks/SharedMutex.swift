import CCrewShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// Cross-process synchronization, as Python's `multiprocessing.Lock`, `RLock`, `Semaphore`, `Event`, `Condition`
// and `Barrier` (nested in `Crew`: Glibc has a `Semaphore` and Swift Testing an `Event`): each lives in a small
// owner-only shared region and is handed to children in their arguments
// (see `HandedDescriptors`).
//
// Locks are robust, process-shared pthread mutexes: when a holder dies (a trap, SIGKILL), the kernel releases
// the lock for it, and the next `acquire` learns of it (``CrewError/Code/ownerDied``) instead of waiting forever.

/// A deadline on the monotonic clock, in nanoseconds (-1: none), for the C shims.
@usableFromInline
func deadline(after timeout: Duration?) -> Int64 {
    guard let timeout else { return -1 }
    let now = monotonicNanos()
    let limit = timeout.clampedNanoseconds
    return Int64(clamping: now &+ min(limit, UInt64(Int64.max) - now))
}

/// A robust process-shared mutex at an address in a shared region.
struct SharedMutex: @unchecked Sendable {
    // @unchecked Sendable: the pointee is a process-shared pthread mutex, made for concurrent use.
    let address: UnsafeMutableRawPointer

    static var size: Int { Int(crew_mutex_size()) }

    /// Initializes the mutex in place (once, by the process that creates the region).
    static func initialize(at address: UnsafeMutableRawPointer, recursive: Bool) throws -> SharedMutex {
        let rc = crew_robust_mutex_init(address, recursive ? 1 : 0)
        guard rc == 0 else { throw systemCallError("pthread_mutex_init", rc) }
        return SharedMutex(address: address)
    }

    /// Locks until `deadline`. Returns false on timeout. If the previous holder died holding the lock, makes it
    /// consistent, releases it and throws ``CrewError/Code/ownerDied``, so the caller learns of it once and the
    /// next `lock` takes the lock normally.
    func lock(until deadline: Int64, what: String) throws -> Bool {
        let rc = crew_mutex_lock_until(address, deadline)
        switch rc {
        case 0:
            return true
        case ETIMEDOUT:
            return false
        case EOWNERDEAD:
            _ = crew_mutex_consistent(address)
            _ = crew_mutex_unlock(address)
            throw CrewError(
                .ownerDied,
                "the holder of this \(what) died holding it; it has been released, and what it guarded may be "
                    + "half-updated"
            )
        case EDEADLK:
            throw CrewError(.invalidArgument, "this \(what) is already held by this thread (use an RLock to re-enter)")
        default:
            throw systemCallError("pthread_mutex_lock", rc)
        }
    }

    /// Locks if free now: true if locked; throws as ``lock(until:what:)``.
    func tryLock(what: String) throws -> Bool {
        let rc = crew_mutex_trylock(address)
        switch rc {
        case 0: return true
        case EBUSY: return false
        case EOWNERDEAD:
            _ = crew_mutex_consistent(address)
            _ = crew_mutex_unlock(address)
            throw CrewError(.ownerDied, "the holder of this \(what) died holding it; it has been released")
        default: throw systemCallError("pthread_mutex_trylock", rc)
        }
    }

    func unlock(what: String) throws {
        let rc = crew_mutex_unlock(address)
        guard rc == 0 else {
            if rc == EPERM { throw CrewError(.invalidArgument, "this \(what) is not held by this thread") }
            throw systemCallError("pthread_mutex_unlock", rc)
        }
    }
}
