import CCrewShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
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
}
