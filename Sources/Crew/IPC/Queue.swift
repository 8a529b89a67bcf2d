import Synchronization

// Python's multiprocessing.Queue, JoinableQueue and SimpleQueue, typed. The bytes travel through `QueueCore`.

extension Crew {
    /// A queue between processes: Python's `multiprocessing.Queue`, for `Codable` values.
    ///
    /// Create it in the parent and hand it to children in their arguments, as the seed does:
    ///
    /// ```swift
    /// let q = try Crew.Queue<String>()
    /// let writer = Crew.Process(target: Demo.write, args: q)
    /// let reader = Crew.Process(target: Demo.read, args: q)
    /// ```
    ///
    /// Any number of processes (and threads) may put and get. Messages travel through a ring in shared memory —
    /// no pipe, no feeder thread — so a message put is at once visible to every holder, in order. Beyond Python:
    /// once the queue has been handed to another process, a ``get(timeout:)`` that waits while no other process
    /// holds the queue any more (they exited, died or called ``close()``) ends with ``CrewError/Code/closed``
    /// instead of blocking forever, and so does a ``put(_:timeout:)`` waiting for room.
    ///
    /// With the forkserver start method, a queue travels the same way (its descriptor goes to the fork server with
    /// the request). A queue cannot be an argument of a pool's `apply` or `map`: hand it to the workers through the
    /// pool's `initializer`, as in Python.
    public final class Queue<Element: Codable & Sendable>: Codable, Sendable {
        @usableFromInline
        let core: QueueCore

        /// The default size of the ring, in bytes: messages up to a quarter of it travel in one piece.
        public static var defaultCapacity: Int { 4 << 20 }

        /// A new, empty queue.
        ///
        /// - Parameters:
        ///   - maxSize: The most messages it holds; ``put(_:timeout:)`` waits for room beyond that. 0: no limit but
        ///     the ring's bytes.
        ///   - capacity: The size in bytes of the shared ring (rounded up to a power of two, at least 64 KiB).
        ///     Bigger messages are carried in pieces.
        /// - Throws: ``CrewError/Code/invalidArgument`` for a negative size; ``CrewError/Code/systemCallFailed`` if
        ///   the shared memory cannot be made.
        public init(maxSize: Int = 0, capacity: Int = Queue.defaultCapacity) throws {
            guard maxSize >= 0 else {
                throw CrewError(.invalidArgument, "maxSize must be 0 (no limit) or more, not \(maxSize)")
            }
            guard capacity > 0, capacity <= 1 << 40 else {
                throw CrewError(.invalidArgument, "capacity must be 1 byte to 1 TiB, not \(capacity)")
            }
            core = try QueueCore(capacity: capacity, maxSize: maxSize, spinNanoseconds: Self.spin)
        }

        init(core: QueueCore) {
            self.core = core
        }

        static var spin: UInt64 {
            Crew.current.map { Crew.effectiveSpinNanoseconds($0.options) } ?? 50_000
        }

        // MARK: Put

        /// Puts `item`, waiting at most `timeout` for room (no limit when nil): Python's `put(item, timeout=...)`.
        ///
        /// - Throws: ``CrewError/Code/full`` if there was no room in time; ``CrewError/Code/closed`` if this
        ///   process closed the queue, or it waited for room while no other process held the queue;
        ///   ``CrewError/Code/encodingFailed`` if `item` does not encode.
        @inlinable
        public func put(_ item: Element, timeout: Duration? = nil) throws {
            try put(item, until: deadline(after: timeout))
        }

        /// Puts `item` if there is room now: Python's `put_nowait`.
        ///
        /// - Throws: ``CrewError/Code/full`` if there is none.
        @inlinable
        public func putNowait(_ item: Element) throws {
            try put(item, until: 0)
        }

        /// Puts `item`, suspending (not blocking a thread of the cooperative pool) while there is no room.
        ///
        /// - Throws: as ``put(_:timeout:)``; `CancellationError` if the task is cancelled while it waits.
        public func put(_ item: Element) async throws {
            do {
                return try putNowait(item)
            } catch let error as CrewError where error.code == .full {
                try await offload { [self] in try put(item, until: deadline(after: .milliseconds(50))) }
            }
        }

        // Inlinable, like the other hot paths: where `Element` is known, encoding and decoding run specialized
        // instead of looking its type up at run time for every message.
        @inlinable
        func put(_ item: Element, until deadline: Int64) throws {
            if let raw = item as? [UInt8] {
                // Bytes, the commonest message, go into the ring straight from the array (decided when compiling).
                var header: (UInt8, UInt64, UInt64) = (0, 0, 0)
                let headerCount = BinaryEncoder.byteArrayHeader(count: raw.count, into: &header)
                return try withUnsafeBytes(of: &header) { head in
                    try raw.withUnsafeBytes { body in
                        try core.put(
                            prefix: UnsafeRawBufferPointer(rebasing: head[0..<headerCount]), body, until: deadline)
                    }
                }
            }
            var bytes: [UInt8] = []
            do {
                try BinaryEncoder.encode(item, appendingTo: &bytes)
            } catch {
                throw CrewError(.encodingFailed, "the item did not encode: \(error)")
            }
            try bytes.withUnsafeBytes { try core.put($0, until: deadline) }
        }

        // MARK: Get

        /// Takes the oldest item, waiting at most `timeout` for one (no limit when nil): Python's
        /// `get(timeout=...)`.
        ///
        /// - Throws: ``CrewError/Code/empty`` if none came in time; ``CrewError/Code/closed`` if this process
        ///   closed the queue, or it waited while no other process held the queue; ``CrewError/Code/decodingFailed``
        ///   if the message is not an `Element` (it is taken off the queue; the queue goes on).
        @inlinable
        public func get(timeout: Duration? = nil) throws -> Element {
            try get(until: deadline(after: timeout))
        }

        /// Takes the oldest item if there is one now: Python's `get_nowait`.
        ///
        /// - Throws: ``CrewError/Code/empty`` if there is none.
        @inlinable
        public func getNowait() throws -> Element {
            try get(until: 0)
        }

        /// Takes the oldest item, suspending (not blocking a thread of the cooperative pool) while there is none.
        ///
        /// - Throws: as ``get(timeout:)``; `CancellationError` if the task is cancelled while it waits.
        public func get() async throws -> Element {
            do {
                return try getNowait()
            } catch let error as CrewError where error.code == .empty {
                return try await offload { [self] in try get(until: deadline(after: .milliseconds(50))) }
            }
        }

        @inlinable
        func get(until deadline: Int64) throws -> Element {
            var item: Element?
            try core.get(until: deadline) { bytes in
                do {
                    if Element.self == [UInt8].self {
                        // Bytes, the commonest message, straight from the ring (decided when compiling).
                        item = try BinaryDecoder.byteArray(from: bytes) as? Element
                    } else {
                        item = try BinaryDecoder().decode(Element.self, from: Array(bytes))
                    }
                } catch {
                    throw CrewError(.decodingFailed, "a message on the queue is not a \(Element.self): \(error)")
                }
            }
            return item!
        }

        // MARK: State

        /// How many items the queue holds now; approximate while others put and get (Python's `qsize`).
        public var count: Int { core.count }

        /// True if the queue holds nothing now (approximate, as Python's `empty()`).
        public var isEmpty: Bool { core.count == 0 }

        /// True if a bounded queue is at its `maxSize` now (approximate, as Python's `full()`).
        public var isFull: Bool { core.maxSize > 0 && core.count >= core.maxSize }

        /// This process will put and get no more: Python's `close()`. Processes waiting on the queue elsewhere stop
        /// counting on this one; this object's puts and gets then throw ``CrewError/Code/closed``. Items already
        /// put stay for the other holders.
        public func close() {
            core.close()
        }

        // MARK: Handing to a child

        /// Writes a handle that a child started with these arguments turns back into this queue.
        public func encode(to encoder: any Encoder) throws {
            try HandedDescriptors.encode("Queue", fd: core.region.fd, owner: core, to: encoder)
        }

        /// Takes the queue handed to this child by its parent.
        public convenience init(from decoder: any Decoder) throws {
            let core = try HandedDescriptors.decode("Queue", as: QueueCore.self, from: decoder) { fd in
                try QueueCore(
                    adopting: SharedRegion.adopt(fd, minimumSize: QueueCore.Layout.data + 1), spinNanoseconds: Self.spin
                )
            }
            self.init(core: core)
        }
    }
}
