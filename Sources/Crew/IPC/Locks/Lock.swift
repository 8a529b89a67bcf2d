import CCrewShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

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
                throw DecodingError.dataCorrupted(
                    .init(codingPath: [], debugDescription: "the handed region is not a lock"))
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
}
