import CCrewShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
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
                throw DecodingError.dataCorrupted(
                    .init(codingPath: [], debugDescription: "the handed region is not a barrier"))
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
            if rc == EOWNERDEAD {
                _ = crew_mutex_consistent(mutex.address)
                return true
            }
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
