import CCrewShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
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
                throw DecodingError.dataCorrupted(
                    .init(codingPath: [], debugDescription: "the handed region is not an event"))
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
}
