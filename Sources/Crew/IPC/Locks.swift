import CCrewShims

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// Cross-process synchronization, as Python's `multiprocessing.Lock`, `RLock`, `Semaphore`, `Event`, `Condition`
// and `Barrier` (nested in `Crew`: Glibc has a `Semaphore` and Swift Testing an `Event`): each lives in a small owner-only shared region and is handed to children in their arguments
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

extension Crew {
    /// A lock shared between processes: Python's `multiprocessing.Lock`.
    ///
    /// ```swift
    /// let lock = try Lock()
    /// try lock.withLock { /* one process at a time */ }
    /// ```
    ///
    /// Create it in the parent and pass it to children in their arguments. The thread that acquires it releases it.
    /// If a holder dies while holding it, the next ``acquire(timeout:)`` throws ``CrewError/Code/ownerDied`` (the
    /// lock is then free again) — never a silent deadlock.
    public final class Lock: Codable, Sendable {
        let region: SharedRegion
        let mutex: SharedMutex
        let recursive: Bool
        private var what: String { recursive ? "RLock" : "Lock" }

        /// A new, unlocked lock.
        public convenience init() throws {
            try self.init(recursive: false)
        }

        init(recursive: Bool) throws {
            region = try SharedRegion.create(name: recursive ? "crew-rlock" : "crew-lock", size: 4096)
            mutex = try SharedMutex.initialize(at: region.pointer(64), recursive: recursive)
            region.word(0).pointee = recursive ? 2 : 1
            self.recursive = recursive
        }

        init(adopting region: SharedRegion) throws {
            let kind = crew_load32(region.word(0))
            guard kind == 1 || kind == 2 else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "the handed region is not a lock"))
            }
            self.region = region
            self.mutex = SharedMutex(address: region.pointer(64))
            self.recursive = kind == 2
        }

        /// Acquires the lock, waiting at most `timeout` (no limit when nil). Python's `acquire(timeout=...)`.
        ///
        /// - Returns: false if the time ran out.
        /// - Throws: ``CrewError/Code/ownerDied`` if the last holder died holding it (the lock is released; call
        ///   again to take it).
        @discardableResult
        public func acquire(timeout: Duration? = nil) throws -> Bool {
            try mutex.lock(until: deadline(after: timeout), what: what)
        }

        /// Acquires the lock only if it is free now: Python's `acquire(block=False)`.
        public func tryAcquire() throws -> Bool {
            try mutex.tryLock(what: what)
        }

        /// Releases the lock.
        ///
        /// - Throws: ``CrewError/Code/invalidArgument`` if this thread does not hold it.
        public func release() throws {
            try mutex.unlock(what: what)
        }

        /// Runs `body` holding the lock: Python's `with lock:`.
        public func withLock<R>(_ body: () throws -> R) throws -> R {
            try acquire()
            defer { try? release() }
            return try body()
        }

        /// Writes a handle that a child started with these arguments turns back into this lock.
        public func encode(to encoder: any Encoder) throws {
            try HandedDescriptors.encode(recursive ? "RLock" : "Lock", fd: region.fd, owner: self, to: encoder)
        }

        /// Takes the lock handed to this child by its parent.
        public convenience init(from decoder: any Decoder) throws {
            let shared = try Self.handed(kind: "Lock", from: decoder)
            try self.init(adopting: shared.region)
        }

        static func handed(kind: String, from decoder: any Decoder) throws -> Lock {
            try HandedDescriptors.decode(kind, as: Lock.self, from: decoder) { fd in
                try Lock(adopting: SharedRegion.adopt(fd, minimumSize: 4096))
            }
        }
    }

    /// A re-entrant lock shared between processes: Python's `multiprocessing.RLock`. The thread that holds it may
    /// acquire it again; it is free once released as many times.
    public final class RLock: Codable, Sendable {
        let lock: Lock

        /// A new, unlocked re-entrant lock.
        public init() throws {
            lock = try Lock(recursive: true)
        }

        /// Acquires the lock (again, if this thread holds it), waiting at most `timeout`.
        ///
        /// - Returns: false if the time ran out.
        /// - Throws: ``CrewError/Code/ownerDied`` if the last holder died holding it.
        @discardableResult
        public func acquire(timeout: Duration? = nil) throws -> Bool {
            try lock.acquire(timeout: timeout)
        }

        /// Acquires the lock only if that needs no waiting.
        public func tryAcquire() throws -> Bool {
            try lock.tryAcquire()
        }

        /// Releases one level of the lock.
        public func release() throws {
            try lock.release()
        }

        /// Runs `body` holding the lock.
        public func withLock<R>(_ body: () throws -> R) throws -> R {
            try lock.withLock(body)
        }

        /// Writes a handle that a child started with these arguments turns back into this lock.
        public func encode(to encoder: any Encoder) throws {
            try lock.encode(to: encoder)
        }

        /// Takes the lock handed to this child by its parent.
        public init(from decoder: any Decoder) throws {
            lock = try Lock.handed(kind: "RLock", from: decoder)
        }
    }

    /// A counting semaphore shared between processes: Python's `multiprocessing.Semaphore`.
    ///
    /// A semaphore has no owner, so a process that dies after `acquire` does not give its unit back: use a
    /// ``Lock`` where that matters, or a timeout.
    public final class Semaphore: Codable, Sendable {
        let region: SharedRegion
        private var semaphore: UnsafeMutableRawPointer { region.pointer(64) }

        /// A semaphore with `value` units.
        ///
        /// - Throws: ``CrewError/Code/invalidArgument`` for a negative value.
        public init(value: Int = 1) throws {
            guard value >= 0, value <= Int(Int32.max) else {
                throw CrewError(.invalidArgument, "a semaphore's value must be 0...\(Int32.max), not \(value)")
            }
            region = try SharedRegion.create(name: "crew-semaphore", size: 4096)
            let rc = crew_shared_semaphore_init(region.pointer(64), UInt32(value))
            guard rc == 0 else { throw systemCallError("sem_init", rc) }
            region.word(0).pointee = 3
        }

        private init(adopting region: SharedRegion) throws {
            guard crew_load32(region.word(0)) == 3 else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "the handed region is not a semaphore"))
            }
            self.region = region
        }

        /// Takes a unit, waiting at most `timeout` for one (no limit when nil).
        ///
        /// - Returns: false if the time ran out.
        @discardableResult
        public func acquire(timeout: Duration? = nil) throws -> Bool {
            let rc = crew_semaphore_wait_until(semaphore, deadline(after: timeout))
            if rc == ETIMEDOUT { return false }
            guard rc == 0 else { throw systemCallError("sem_wait", rc) }
            return true
        }

        /// Takes a unit if one is free now.
        public func tryAcquire() throws -> Bool {
            let rc = crew_semaphore_trywait(semaphore)
            if rc == EAGAIN { return false }
            guard rc == 0 else { throw systemCallError("sem_trywait", rc) }
            return true
        }

        /// Gives a unit back.
        public func release() throws {
            let rc = crew_semaphore_post(semaphore)
            guard rc == 0 else { throw systemCallError("sem_post", rc) }
        }

        /// The units free now (a snapshot).
        public var value: Int { Int(crew_semaphore_value(semaphore)) }

        /// Writes a handle that a child started with these arguments turns back into this semaphore.
        public func encode(to encoder: any Encoder) throws {
            try HandedDescriptors.encode("Semaphore", fd: region.fd, owner: self, to: encoder)
        }

        /// Takes the semaphore handed to this child by its parent.
        public convenience init(from decoder: any Decoder) throws {
            let handed = try HandedDescriptors.decode("Semaphore", as: Semaphore.self, from: decoder) { fd in
                try Semaphore(adopting: SharedRegion.adopt(fd, minimumSize: 4096))
            }
            try self.init(adopting: handed.region)
        }
    }

    /// A flag processes can wait for: Python's `multiprocessing.Event`.
    public final class Event: Codable, Sendable {
        let region: SharedRegion
        private var flag: UnsafeMutablePointer<UInt32> { region.word(64) }

        /// A new event, not set.
        public init() throws {
            region = try SharedRegion.create(name: "crew-event", size: 4096)
            region.word(0).pointee = 4
        }

        private init(adopting region: SharedRegion) throws {
            guard crew_load32(region.word(0)) == 4 else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "the handed region is not an event"))
            }
            self.region = region
        }

        /// True once ``set()`` was called (and ``clear()`` not since).
        public var isSet: Bool { crew_load32(flag) != 0 }

        /// Sets the flag and wakes every waiter.
        public func set() {
            crew_store32(flag, 1)
            _ = crew_futex_wake(flag, Int32.max)
        }

        /// Clears the flag.
        public func clear() {
            crew_store32(flag, 0)
        }

        /// Waits until the flag is set or `timeout` passes (no limit when nil).
        ///
        /// - Returns: whether the flag is set.
        @discardableResult
        public func wait(timeout: Duration? = nil) -> Bool {
            let limit = deadline(after: timeout)
            while crew_load32(flag) == 0 {
                var remaining: Int64 = -1
                if limit >= 0 {
                    remaining = limit - Int64(monotonicNanos())
                    if remaining <= 0 { return isSet }
                }
                _ = crew_futex_wait(flag, 0, remaining)
            }
            return true
        }

        /// Writes a handle that a child started with these arguments turns back into this event.
        public func encode(to encoder: any Encoder) throws {
            try HandedDescriptors.encode("Event", fd: region.fd, owner: self, to: encoder)
        }

        /// Takes the event handed to this child by its parent.
        public convenience init(from decoder: any Decoder) throws {
            let handed = try HandedDescriptors.decode("Event", as: Event.self, from: decoder) { fd in
                try Event(adopting: SharedRegion.adopt(fd, minimumSize: 4096))
            }
            try self.init(adopting: handed.region)
        }
    }

    /// A condition variable shared between processes, with its lock: Python's `multiprocessing.Condition`.
    ///
    /// ```swift
    /// try condition.withLock {
    ///     while !ready { try condition.wait() }
    /// }
    /// ```
    public final class Condition: Codable, Sendable {
        /// The lock the condition waits with.
        public let lock: Lock
        let region: SharedRegion
        private var cond: UnsafeMutableRawPointer { region.pointer(64) }

        /// A condition on `lock` (a new lock when nil).
        public init(lock: Lock? = nil) throws {
            self.lock = try lock ?? Lock()
            region = try SharedRegion.create(name: "crew-condition", size: 4096)
            let rc = crew_shared_cond_init(region.pointer(64))
            guard rc == 0 else { throw systemCallError("pthread_cond_init", rc) }
            region.word(0).pointee = 5
        }

        private init(lock: Lock, adopting region: SharedRegion) throws {
            guard crew_load32(region.word(0)) == 5 else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "the handed region is not a condition"))
            }
            self.lock = lock
            self.region = region
        }

        /// Acquires the condition's lock.
        @discardableResult
        public func acquire(timeout: Duration? = nil) throws -> Bool {
            try lock.acquire(timeout: timeout)
        }

        /// Releases the condition's lock.
        public func release() throws {
            try lock.release()
        }

        /// Runs `body` holding the condition's lock.
        public func withLock<R>(_ body: () throws -> R) throws -> R {
            try lock.withLock(body)
        }

        /// Releases the lock, waits for a notification or `timeout`, and takes the lock again. Call it holding the
        /// lock.
        ///
        /// - Returns: false if the time ran out.
        /// - Throws: ``CrewError/Code/ownerDied`` if, while this waited, a holder of the lock died holding it.
        @discardableResult
        public func wait(timeout: Duration? = nil) throws -> Bool {
            let rc = crew_cond_wait_until(cond, lock.mutex.address, deadline(after: timeout))
            switch rc {
            case 0: return true
            case ETIMEDOUT: return false
            case EOWNERDEAD:
                _ = crew_mutex_consistent(lock.mutex.address)
                throw CrewError(.ownerDied, "a holder of this condition's lock died holding it; this thread holds it now")
            case EPERM: throw CrewError(.invalidArgument, "wait() needs the condition's lock held by this thread")
            default: throw systemCallError("pthread_cond_wait", rc)
            }
        }

        /// Waits until `predicate` is true, or `timeout` passes. Call it holding the lock.
        ///
        /// - Returns: the predicate's last value.
        @discardableResult
        public func wait(for predicate: () throws -> Bool, timeout: Duration? = nil) throws -> Bool {
            let limit = timeout.map { ContinuousClock.now + $0 }
            while try !predicate() {
                if let limit {
                    let left = limit - ContinuousClock.now
                    if left <= .zero { return try predicate() }
                    try wait(timeout: left)
                } else {
                    try wait()
                }
            }
            return true
        }

        /// Wakes one waiter (Python's `notify()`); `all` wakes every one (`notify_all()`).
        public func notify(all: Bool = false) {
            _ = crew_cond_signal(cond, all ? 1 : 0)
        }

        /// Wakes every waiter.
        public func notifyAll() {
            notify(all: true)
        }

        private enum Keys: CodingKey {
            case condition, lock
        }

        /// Writes a handle (and one for its lock) that a child started with these arguments turns back into this
        /// condition.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.unkeyedContainer()
            try container.encode(lock)
            try container.encode(Handle(condition: self))
        }

        /// Takes the condition handed to this child by its parent.
        public convenience init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            let lock = try container.decode(Lock.self)
            let handle = try container.decode(Handle.self)
            try self.init(lock: lock, adopting: handle.region)
        }

        /// The condition's own region, as a handed descriptor.
        private struct Handle: Codable {
            let region: SharedRegion

            init(condition: Condition) {
                region = condition.region
            }

            func encode(to encoder: any Encoder) throws {
                try HandedDescriptors.encode("Condition", fd: region.fd, owner: region, to: encoder)
            }

            init(from decoder: any Decoder) throws {
                region = try HandedDescriptors.decode("Condition", as: SharedRegion.self, from: decoder) { fd in
                    try SharedRegion.adopt(fd, minimumSize: 4096)
                }
            }
        }
    }

    /// A barrier for a fixed number of parties across processes: Python's `multiprocessing.Barrier`.
    ///
    /// Every party calls ``wait(timeout:)``; all return once the last arrives. A wait that times out breaks the
    /// barrier for everyone (``CrewError/Code/brokenBarrier``), as in Python — so that a party that died never
    /// leaves the others waiting forever, give the waits a timeout.
    public final class Barrier: Codable, Sendable {
        let region: SharedRegion
        /// How many parties must arrive.
        public let parties: Int
        private let defaultTimeout: Duration?

        // Layout: 0 kind, 4 parties, 8 arrived, 12 generation, 16 broken; 64 mutex; 128 + mutex size: condition.
        private var mutex: SharedMutex { SharedMutex(address: region.pointer(64)) }
        private var cond: UnsafeMutableRawPointer { region.pointer(64 + 128) }
        private var arrived: UnsafeMutablePointer<UInt32> { region.word(8) }
        private var generation: UnsafeMutablePointer<UInt32> { region.word(12) }
        private var brokenFlag: UnsafeMutablePointer<UInt32> { region.word(16) }

        /// A barrier for `parties` parties; `timeout` is the default for ``wait(timeout:)``.
        public init(parties: Int, timeout: Duration? = nil) throws {
            guard parties >= 1, parties <= Int(Int32.max) else {
                throw CrewError(.invalidArgument, "a barrier needs at least one party, not \(parties)")
            }
            precondition(SharedMutex.size <= 128 && Int(crew_cond_size()) <= 4096 - 192)
            region = try SharedRegion.create(name: "crew-barrier", size: 4096)
            _ = try SharedMutex.initialize(at: region.pointer(64), recursive: false)
            let rc = crew_shared_cond_init(region.pointer(64 + 128))
            guard rc == 0 else { throw systemCallError("pthread_cond_init", rc) }
            region.word(4).pointee = UInt32(parties)
            region.word(0).pointee = 6
            self.parties = parties
            self.defaultTimeout = timeout
        }

        private init(adopting region: SharedRegion, timeout: Duration?) throws {
            guard crew_load32(region.word(0)) == 6 else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "the handed region is not a barrier"))
            }
            self.region = region
            self.parties = Int(crew_load32(region.word(4)))
            self.defaultTimeout = timeout
        }

        /// True once a wait timed out or ``abort()`` was called, until ``reset()``.
        public var isBroken: Bool { crew_load32(brokenFlag) != 0 }

        /// How many parties are waiting now.
        public var waiting: Int { Int(crew_load32(arrived)) }

        /// Waits until all parties have arrived.
        ///
        /// - Returns: this party's arrival index, `0..<parties` (Python's return value).
        /// - Throws: ``CrewError/Code/brokenBarrier`` if the barrier is or becomes broken (a timeout breaks it).
        @discardableResult
        public func wait(timeout: Duration? = nil) throws -> Int {
            let limit = deadline(after: timeout ?? defaultTimeout)
            _ = try lockSurvivingOwnerDeath()
            defer { _ = crew_mutex_unlock(mutex.address) }
            guard crew_load32(brokenFlag) == 0 else { throw broken() }
            let index = Int(crew_load32(arrived))
            let myGeneration = crew_load32(generation)
            if index + 1 == parties {
                crew_store32(arrived, 0)
                crew_store32(generation, myGeneration &+ 1)
                _ = crew_cond_signal(cond, 1)
                return index
            }
            crew_store32(arrived, UInt32(index + 1))
            while crew_load32(generation) == myGeneration && crew_load32(brokenFlag) == 0 {
                let rc = crew_cond_wait_until(cond, mutex.address, limit)
                if rc == EOWNERDEAD { _ = crew_mutex_consistent(mutex.address) }
                if rc == ETIMEDOUT && crew_load32(generation) == myGeneration {
                    breakLocked()
                    throw broken()
                }
            }
            guard crew_load32(generation) != myGeneration else { throw broken() }
            return index
        }

        /// Breaks the barrier: current and future waits throw ``CrewError/Code/brokenBarrier``.
        public func abort() throws {
            _ = try lockSurvivingOwnerDeath()
            breakLocked()
            _ = crew_mutex_unlock(mutex.address)
        }

        /// Returns the barrier to its empty, unbroken state (waiters now throw).
        public func reset() throws {
            _ = try lockSurvivingOwnerDeath()
            breakLocked()
            crew_store32(brokenFlag, 0)
            _ = crew_mutex_unlock(mutex.address)
        }

        private func breakLocked() {
            crew_store32(brokenFlag, 1)
            crew_store32(arrived, 0)
            _ = crew_cond_signal(cond, 1)
        }

        private func lockSurvivingOwnerDeath() throws -> Bool {
            let rc = crew_mutex_lock_until(mutex.address, -1)
            if rc == EOWNERDEAD { _ = crew_mutex_consistent(mutex.address); return true }
            guard rc == 0 else { throw systemCallError("pthread_mutex_lock", rc) }
            return true
        }

        private func broken() -> CrewError {
            CrewError(.brokenBarrier, "the barrier is broken (a wait timed out, or abort() was called)")
        }

        /// Writes a handle that a child started with these arguments turns back into this barrier.
        public func encode(to encoder: any Encoder) throws {
            try HandedDescriptors.encode("Barrier", fd: region.fd, owner: self, to: encoder)
        }

        /// Takes the barrier handed to this child by its parent (its default timeout does not travel).
        public convenience init(from decoder: any Decoder) throws {
            let handed = try HandedDescriptors.decode("Barrier", as: Barrier.self, from: decoder) { fd in
                try Barrier(adopting: SharedRegion.adopt(fd, minimumSize: 4096), timeout: nil)
            }
            try self.init(adopting: handed.region, timeout: nil)
        }
    }
}
