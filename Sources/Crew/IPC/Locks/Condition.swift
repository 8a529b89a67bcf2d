import CCrewShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
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
                throw DecodingError.dataCorrupted(
                    .init(codingPath: [], debugDescription: "the handed region is not a condition"))
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
                throw CrewError(
                    .ownerDied, "a holder of this condition's lock died holding it; this thread holds it now")
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
}
