import Synchronization

extension Crew {
    /// An unbounded ``Crew/Queue`` with only `put`, `get` and `isEmpty`: Python's `multiprocessing.SimpleQueue`.
    public final class SimpleQueue<Element: Codable & Sendable>: Codable, Sendable {
        let queue: Crew.Queue<Element>

        /// A new, empty queue.
        public init() throws {
            queue = try Crew.Queue()
        }

        /// Puts `item`.
        public func put(_ item: Element) throws {
            try queue.put(item)
        }

        /// Takes the oldest item, waiting for one.
        public func get() throws -> Element {
            try queue.get()
        }

        /// True if the queue holds nothing now.
        public var isEmpty: Bool { queue.isEmpty }

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
