import CCrewShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
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
                throw DecodingError.dataCorrupted(
                    .init(codingPath: [], debugDescription: "the handed region is not a semaphore"))
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
}
