import Synchronization

extension Crew {
    /// A ``Crew/Queue`` whose consumers report each item done, so that a producer can wait for all of them: Python's
    /// `multiprocessing.JoinableQueue`.
    public final class JoinableQueue<Element: Codable & Sendable>: Codable, Sendable {
        /// The queue items travel through.
        public let queue: Crew.Queue<Element>

        /// A new, empty joinable queue (see ``Crew/Queue/init(maxSize:capacity:)``).
        public init(maxSize: Int = 0, capacity: Int = Crew.Queue<Element>.defaultCapacity) throws {
            queue = try Crew.Queue(maxSize: maxSize, capacity: capacity)
        }

        /// Puts `item` (see ``Crew/Queue/put(_:timeout:)``); it counts as unfinished until a ``taskDone()``.
        @inlinable
        public func put(_ item: Element, timeout: Duration? = nil) throws {
            try queue.put(item, timeout: timeout)
        }

        /// Puts `item`, suspending while there is no room.
        public func put(_ item: Element) async throws {
            try await queue.put(item)
        }

        /// Takes the oldest item (see ``Crew/Queue/get(timeout:)``).
        @inlinable
        public func get(timeout: Duration? = nil) throws -> Element {
            try queue.get(timeout: timeout)
        }

        /// Takes the oldest item, suspending while there is none.
        public func get() async throws -> Element {
            try await queue.get()
        }

        /// Marks one item taken from the queue as processed: Python's `task_done()`.
        ///
        /// - Throws: ``CrewError/Code/invalidArgument`` if called more times than items were put (Python's
        ///   `ValueError`).
        public func taskDone() throws {
            try queue.core.taskDone()
        }

        /// Waits until every item put has been marked done, or `timeout` passes: Python's `join()`.
        ///
        /// - Returns: false if the time ran out.
        /// - Throws: ``CrewError/Code/closed`` if items stay unfinished while no other process holds the queue.
        @discardableResult
        public func join(timeout: Duration? = nil) throws -> Bool {
            try queue.core.join(until: deadline(after: timeout))
        }

        /// Waits, suspending, until every item put has been marked done.
        public func join() async throws {
            if try queue.core.join(until: 0) { return }
            _ = try await offload { [self] () throws -> Bool in
                guard try queue.core.join(until: deadline(after: .milliseconds(50))) else {
                    throw CrewError(.empty, "not yet")
                }
                return true
            }
        }

        /// Items put and not yet marked done.
        public var unfinished: Int { queue.core.unfinished }

        /// How many items the queue holds now (approximate).
        public var count: Int { queue.count }

        /// This process will put and get no more (see ``Crew/Queue/close()``).
        public func close() {
            queue.close()
        }

        /// Writes a handle that a child started with these arguments turns back into this queue.
        public func encode(to encoder: any Encoder) throws {
            try queue.encode(to: encoder)
        }

        /// Takes the queue handed to this child by its parent.
        public init(from decoder: any Decoder) throws {
            queue = try Crew.Queue(from: decoder)
        }
    }
}
