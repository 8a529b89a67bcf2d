import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
    /// One end of a ``Crew/Pipe``: Python's `multiprocessing.connection.Connection`.
    ///
    /// Values travel as frames (a 4-byte length, then Crew's binary encoding); bytes as frames of their own. A
    /// connection may be used from several threads: sends are serialized, and so are receives. A waiting receive
    /// polls for a short while before it sleeps, so a ping-pong between two processes costs a few microseconds.
    public final class Connection: Codable, Sendable {
        /// Received bytes: `buffer[start..<end]` are those not yet taken as messages; the buffer is allocated once
        /// (and grown for a large message), never filled or trimmed per read.
        private struct ReadState {
            var buffer: [UInt8] = []
            var start = 0
            var end = 0
        }

        private let fdState: Atomic<Int32>
        let readable: Bool
        let writable: Bool
        private let reading = Locked(ReadState())
        private let writing = WriterRight()
        private let maxFrameSize: Int
        private let spinNanoseconds: UInt64

        init(fd: Int32, readable: Bool, writable: Bool) {
            // Blocking: a receive with no time limit sleeps in the read itself, one system call, as a plain blocking
            // read does (a read, a `poll`, then a read again cost a fifth more per round trip on a small VM). Reads
            // and sends that must not wait pass MSG_DONTWAIT.
            setBlocking(fd)
            fdState = Atomic(fd)
            self.readable = readable
            self.writable = writable
            maxFrameSize = Crew.current?.options.maxFrameSize ?? Crew.Options().maxFrameSize
            spinNanoseconds = Crew.current.map { Crew.effectiveSpinNanoseconds($0.options) } ?? 50_000
        }

        deinit {
            let fd = fdState.load(ordering: .acquiring)
            if fd >= 0 { Glibc.close(fd) }
        }

        private func descriptor() throws -> Int32 {
            let fd = fdState.load(ordering: .acquiring)
            guard fd >= 0 else { throw CrewError(.closed, "this connection is closed") }
            return fd
        }

        /// True after ``close()``.
        public var isClosed: Bool { fdState.load(ordering: .acquiring) < 0 }

        /// The descriptor of this end, for use with `poll`, `select` or an event loop: Python's `fileno()`. It stays
        /// owned by the connection (do not close it); it is in blocking mode.
        ///
        /// - Throws: ``CrewError/Code/closed`` after ``close()``.
        public func fileno() throws -> Int32 {
            try descriptor()
        }

        /// Closes this end. The peer's receives then end with ``CrewError/Code/closed`` (once no other process holds
        /// this end open).
        public func close() {
            let fd = fdState.exchange(-1, ordering: .acquiringAndReleasing)
            if fd >= 0 { Glibc.close(fd) }
        }

        // MARK: Sending

        /// Sends `value`: Python's `send(obj)`. Blocks while the pipe is full (its reader is behind).
        ///
        /// - Throws: ``CrewError/Code/closed`` if the peer is gone or this end is closed;
        ///   ``CrewError/Code/encodingFailed``; ``CrewError/Code/frameTooLarge``.
        public func send<T: Encodable>(_ value: T) throws {
            var frame = try Self.frame(of: value)
            try sendFrame(&frame)
        }

        /// Sends `value`, suspending (not blocking a thread of the cooperative pool) while the pipe is full.
        ///
        /// - Throws: as the blocking `send(_:)`.
        public func send<T: Encodable & Sendable>(_ value: T) async throws {
            var frame = try Self.frame(of: value)
            try await sendFrame(&frame)
        }

        /// Sends `bytes` as one message: Python's `send_bytes`. Blocks while the pipe is full.
        public func sendBytes(_ bytes: some Collection<UInt8>) throws {
            var frame = Self.frame(ofBytes: bytes)
            try sendFrame(&frame)
        }

        /// Sends `bytes` as one message, suspending (not blocking a thread of the cooperative pool) while the pipe
        /// is full.
        public func sendBytes(_ bytes: some Collection<UInt8>) async throws {
            var frame = Self.frame(ofBytes: bytes)
            try await sendFrame(&frame)
        }

        private static func frame<T: Encodable>(of value: T) throws -> [UInt8] {
            var frame: [UInt8] = [0, 0, 0, 0]
            do {
                try BinaryEncoder.encode(value, appendingTo: &frame)
            } catch {
                throw CrewError(.encodingFailed, "the value did not encode: \(error)")
            }
            return frame
        }

        private static func frame(ofBytes bytes: some Collection<UInt8>) -> [UInt8] {
            var frame: [UInt8] = [0, 0, 0, 0]
            frame.reserveCapacity(4 + bytes.count)
            frame.append(contentsOf: bytes)
            return frame
        }

        /// Checks the frame's size and writes its length into its first four bytes.
        private func seal(_ frame: inout [UInt8]) throws {
            guard writable else { throw CrewError(.invalidArgument, "this end of a one-way pipe only receives") }
            let length = frame.count - 4
            guard length <= maxFrameSize else {
                throw CrewError(.frameTooLarge, "a message of \(length) bytes is over the limit of \(maxFrameSize)")
            }
            withUnsafeBytes(of: UInt32(length).littleEndian) { header in
                for i in 0..<4 { frame[i] = header[i] }
            }
        }

        private func sendFrame(_ frame: inout [UInt8]) throws {
            try seal(&frame)
            let fd = try descriptor()
            writing.take()
            defer { writing.release() }
            var offset = 0
            try Self.send(frame, from: &offset, to: fd, wait: true)
        }

        /// Sends what the socket takes at once on this thread; while it is full, waits for room on a thread of the
        /// blocking pool, at most `roomWaitMilliseconds` at a time, so that however many sends wait, none holds a
        /// thread for long (a receive's wait needs one too). Waiting for another writer holds no thread at all.
        private func sendFrame(_ frame: inout [UInt8]) async throws {
            try seal(&frame)
            let fd = try descriptor()
            let whole = frame
            await writing.take()
            defer { writing.release() }
            var offset = 0
            try Self.send(whole, from: &offset, to: fd, wait: false)
            while offset < whole.count {
                offset = try await BlockingPool.shared.run { [offset] in
                    var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = Glibc.poll(&poller, 1, Self.roomWaitMilliseconds)
                    var sent = offset
                    try Self.send(whole, from: &sent, to: fd, wait: false)
                    return sent
                }
            }
        }

        /// The longest an async send waits for room on one thread of the blocking pool before it lets go of it.
        static let roomWaitMilliseconds: Int32 = 50

        /// Sends `bytes[offset...]`, advancing `offset`. Without `wait`, returns when the socket is full; with it,
        /// waits for room (the descriptor may have been made non-blocking by its user).
        private static func send(_ bytes: [UInt8], from offset: inout Int, to fd: Int32, wait: Bool) throws {
            try bytes.withUnsafeBytes { raw in
                while offset < raw.count {
                    let flags = Int32(MSG_NOSIGNAL) | (wait ? 0 : Int32(MSG_DONTWAIT))
                    let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, flags)
                    if n > 0 {
                        offset += n
                        continue
                    }
                    switch errno {
                    case EINTR:
                        continue
                    case EAGAIN:
                        guard wait else { return }
                        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                        _ = Glibc.poll(&poller, 1, -1)
                    case EPIPE, ECONNRESET:
                        throw CrewError(
                            .closed, "the other end of the pipe is closed: its holders exited or closed it")
                    case EBADF:
                        throw CrewError(.closed, "this connection is closed")
                    default:
                        throw systemCallError("send")
                    }
                }
            }
        }

        // MARK: Receiving

        /// Receives the next value, waiting at most `timeout` for it (no limit when nil): Python's `recv()`.
        ///
        /// - Throws: ``CrewError/Code/closed`` if the peer is gone (every holder of the other end exited or closed
        ///   it) and nothing is left to read — never a hang; ``CrewError/Code/timedOut``;
        ///   ``CrewError/Code/decodingFailed`` if the message is not a `T` (it is consumed; the connection goes on).
        public func recv<T: Decodable>(_ type: T.Type = T.self, timeout: Duration? = nil) throws -> T {
            try receiveFrame(until: deadline(after: timeout)) { bytes, range in
                do {
                    return try BinaryDecoder().decode(T.self, from: bytes, range: range)
                } catch {
                    throw CrewError(.decodingFailed, "the message is not a \(T.self): \(error)")
                }
            }
        }

        /// Receives the next message as bytes: Python's `recv_bytes`.
        public func recvBytes(timeout: Duration? = nil) throws -> [UInt8] {
            try receiveFrame(until: deadline(after: timeout)) { bytes, range in Array(bytes[range]) }
        }

        /// Receives the next value, suspending (not blocking a thread of the cooperative pool) until it comes.
        public func recv<T: Decodable & Sendable>(_ type: T.Type = T.self) async throws -> T {
            // On this thread only what needs no wait: a whole message already there, and this end free. Otherwise
            // the wait (a message arriving in parts, another receiver) happens on a thread of the blocking pool.
            if let value = try receiveNow(T.self) { return value }
            return try await offload { [self] in
                do {
                    return try recv(T.self, timeout: .milliseconds(50))
                } catch let error as CrewError where error.code == .timedOut {
                    throw CrewError(.empty, "not yet")
                }
            }
        }

        /// The next value if a whole message can be read at once; nil if none has arrived whole, or another thread is
        /// receiving on this end.
        private func receiveNow<T: Decodable>(_ type: T.Type) throws -> T? {
            guard readable else { throw CrewError(.invalidArgument, "this end of a one-way pipe only sends") }
            let fd = try descriptor()
            do {
                return try reading.withLockIfAvailable { state in
                    try receive(&state, fd: fd, until: 0) { bytes, range in
                        do {
                            return try BinaryDecoder().decode(T.self, from: bytes, range: range)
                        } catch {
                            throw CrewError(.decodingFailed, "the message is not a \(T.self): \(error)")
                        }
                    }
                }
            } catch let error as CrewError where error.code == .timedOut {
                return nil
            }
        }

        /// True if a message (or the peer's end) can be read now, or within `timeout` (nil: wait as long as it
        /// takes): Python's `poll(timeout)`.
        public func poll(timeout: Duration? = .zero) throws -> Bool {
            guard readable else { throw CrewError(.invalidArgument, "this end of a one-way pipe only sends") }
            if reading.withLock({ state in Self.frameEnd(state) != nil }) { return true }
            let fd = try descriptor()
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let limit = deadline(after: timeout)
            while true {
                var wait: Int32 = -1
                if limit >= 0 {
                    let left = limit - Int64(monotonicNanos())
                    wait = left <= 0 ? 0 : Int32(clamping: (left + 999_999) / 1_000_000)
                }
                let rc = Glibc.poll(&poller, 1, wait)
                if rc < 0 && errno == EINTR { continue }
                if rc < 0 { throw systemCallError("poll") }
                return rc > 0
            }
        }

        /// The offset just past the first complete frame in the buffer, if there is one.
        private static func frameEnd(_ state: ReadState) -> Int? {
            let available = state.end - state.start
            guard available >= 4 else { return nil }
            let length = state.buffer.withUnsafeBytes {
                Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: state.start, as: UInt32.self)))
            }
            return available - 4 >= length ? state.start + 4 + length : nil
        }

        private func receiveFrame<R>(until deadline: Int64, _ body: ([UInt8], Range<Int>) throws -> R) throws -> R {
            guard readable else { throw CrewError(.invalidArgument, "this end of a one-way pipe only sends") }
            let fd = try descriptor()
            guard deadline >= 0 else {
                return try reading.withLock { state in try receive(&state, fd: fd, until: -1, body) }
            }
            // With a time limit, waiting for another receiver counts against it too.
            let left = UInt64(max(0, deadline - Int64(monotonicNanos())))
            guard
                let value = try reading.withLock(
                    waitingAtMost: left, { state in try receive(&state, fd: fd, until: deadline, body) })
            else { throw CrewError(.timedOut, "no message came within the timeout (another receiver held this end)") }
            return value
        }

        /// Reads until a whole message is buffered and hands it to `body`, or throws ``CrewError/Code/timedOut`` at
        /// `deadline` (0: at once, without sleeping). `reading` is held.
        private func receive<R>(
            _ state: inout ReadState,
            fd: Int32,
            until deadline: Int64,
            _ body: ([UInt8], Range<Int>) throws -> R
        ) throws -> R {
            var spinUntil: UInt64 = 0
            while true {
                if let end = Self.frameEnd(state) {
                    let range = (state.start + 4)..<end
                    state.start = end
                    defer {
                        if state.start == state.end {
                            state.start = 0
                            state.end = 0
                        }
                    }
                    return try body(state.buffer, range)
                }
                var needed = 4
                if state.end - state.start >= 4 {
                    let length = state.buffer.withUnsafeBytes {
                        Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: state.start, as: UInt32.self)))
                    }
                    if length > maxFrameSize {
                        close()
                        throw CrewError(
                            .frameTooLarge,
                            "a message of \(length) bytes is over the limit of \(maxFrameSize); the connection was closed"
                        )
                    }
                    needed = 4 + length
                }
                if state.start > 0 {
                    // Move what is left of a message to the front.
                    let (start, count) = (state.start, state.end - state.start)
                    if count > 0 {
                        state.buffer.withUnsafeMutableBytes { raw in
                            raw.baseAddress!.copyMemory(from: raw.baseAddress! + start, byteCount: count)
                        }
                    }
                    state.start = 0
                    state.end = count
                }
                let wanted = max(65_536, needed)
                if state.buffer.count < wanted {
                    var grown = [UInt8](repeating: 0, count: wanted)
                    let count = state.end
                    if count > 0 {
                        grown.withUnsafeMutableBytes { to in
                            state.buffer.withUnsafeBytes { from in
                                to.baseAddress!.copyMemory(from: from.baseAddress!, byteCount: count)
                            }
                        }
                    }
                    state.buffer = grown
                }
                let from = state.end
                // Nothing to wait for yet: take what is there. Once the spin is over with no time limit, wait in the
                // read itself.
                let now = monotonicNanos()
                let waitInRead = deadline < 0 && spinUntil != 0 && now >= spinUntil
                let n = state.buffer.withUnsafeMutableBytes {
                    Glibc.recv(fd, $0.baseAddress! + from, $0.count - from, waitInRead ? 0 : Int32(MSG_DONTWAIT))
                }
                if n > 0 {
                    state.end += n
                    continue
                }
                if n == 0 {
                    throw CrewError(.closed, "the other end of the pipe is closed: its holders exited or closed it")
                }
                switch errno {
                case EINTR: continue
                case EAGAIN: break
                case EBADF: throw CrewError(.closed, "this connection is closed")
                case ECONNRESET: throw CrewError(.closed, "the other end of the pipe is gone")
                default: throw systemCallError("read")
                }
                // Nothing yet: poll for a short while (calls that follow each other closely need no sleep), then sleep:
                // in the read (no time limit, above) or in poll(2) until the deadline.
                if spinUntil == 0 { spinUntil = now &+ spinNanoseconds }
                if now < spinUntil && (deadline < 0 || Int64(now) < deadline) { continue }
                if deadline < 0 { continue }
                var wait: Int32 = -1
                if deadline >= 0 {
                    let left = deadline - Int64(now)
                    if left <= 0 { throw CrewError(.timedOut, "no message came within the timeout") }
                    wait = Int32(clamping: (left + 999_999) / 1_000_000)
                }
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = Glibc.poll(&poller, 1, wait)
            }
        }

        // MARK: Handing to a child

        private struct Shape: Codable {
            var readable: Bool
            var writable: Bool
        }

        /// Writes a handle that a child started with these arguments turns back into this end.
        public func encode(to encoder: any Encoder) throws {
            let fd = try descriptor()
            var container = encoder.unkeyedContainer()
            try container.encode(Shape(readable: readable, writable: writable))
            try container.encode(Handle(fd: fd, owner: self))
        }

        /// Takes the end of a pipe handed to this child by its parent.
        public convenience init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            let shape = try container.decode(Shape.self)
            let handle = try container.decode(Handle.self)
            self.init(fd: handle.fd, readable: shape.readable, writable: shape.writable)
        }

        /// The descriptor, as a handed one.
        private struct Handle: Codable {
            let fd: Int32
            let owner: AnyObject?

            init(fd: Int32, owner: AnyObject) {
                self.fd = fd
                self.owner = owner
            }

            func encode(to encoder: any Encoder) throws {
                try HandedDescriptors.encode("Connection", fd: fd, owner: owner!, to: encoder)
            }

            init(from decoder: any Decoder) throws {
                // Each decode takes its own copy of the descriptor: a Connection owns (and closes) its descriptor.
                let box = try HandedDescriptors.decode("Connection", as: DescriptorBox.self, from: decoder) { fd in
                    DescriptorBox(fd: fd)
                }
                let copy = fcntl(box.fd, F_DUPFD_CLOEXEC, 0)
                guard copy >= 0 else { throw systemCallError("dup") }
                fd = copy
                owner = nil
            }
        }
    }
}
