#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// Frames: a 4-byte little-endian payload length, then the payload. Writers put many frames into one buffer
// and send it with one system call; readers take as many frames as one read returned.

enum Frame {
    static let headerSize = 4

    /// Reserves a frame header at the end of `out` and returns where it is.
    static func begin(_ out: inout [UInt8]) -> Int {
        let at = out.count
        out.append(contentsOf: [0, 0, 0, 0])
        return at
    }

    /// Writes the length of the frame begun at `at`. If the payload is larger than `maxFrameSize`, removes the
    /// frame from `out` and throws ``CrewError/Code/frameTooLarge``.
    static func end(_ out: inout [UInt8], at: Int, maxFrameSize: Int) throws(CrewError) {
        let length = out.count - at - headerSize
        guard length <= maxFrameSize, length <= Int(UInt32.max) else {
            out.removeSubrange(at...)
            throw CrewError(
                .frameTooLarge,
                "a message of \(length) bytes is larger than the frame size limit of \(maxFrameSize) bytes"
            )
        }
        let value = UInt32(length)
        out[at] = UInt8(truncatingIfNeeded: value)
        out[at + 1] = UInt8(truncatingIfNeeded: value >> 8)
        out[at + 2] = UInt8(truncatingIfNeeded: value >> 16)
        out[at + 3] = UInt8(truncatingIfNeeded: value >> 24)
    }
}

/// Splits a byte stream into frames. Reads go into one growing buffer; payloads are handed out as ranges of
/// that buffer, valid until the next read.
struct FrameReader {
    private(set) var buffer: [UInt8]
    private var start = 0
    private var end = 0
    let maxFrameSize: Int
    let initialCapacity: Int
    /// Bytes the frame being assembled needs in total (header included), once its header has been seen.
    private var needed = 0

    init(maxFrameSize: Int, initialCapacity: Int = 64 << 10) {
        self.maxFrameSize = maxFrameSize
        self.initialCapacity = initialCapacity
        self.buffer = [UInt8](repeating: 0, count: initialCapacity)
    }

    /// Bytes received and not yet returned as frames.
    var buffered: Int { end - start }
    /// Whether the last `read` filled all the room it offered (so the socket may hold more).
    private(set) var lastReadFilled = false

    /// Reads once from `fd` into the buffer. Returns the byte count, 0 at end of stream, or -1 with `errno` set.
    /// Reads what `fd` (a socket) has into the buffer; returns what `recv` returns. Without `wait` it never
    /// blocks (`MSG_DONTWAIT`); with it, it sleeps in the read until input comes (or the socket's receive
    /// timeout passes), which on a socket in blocking mode is one system call where `poll` and a read are two.
    mutating func read(from fd: Int32, wait: Bool = false) -> Int {
        if start == end {
            start = 0
            end = 0
            if buffer.count > initialCapacity * 4 && needed == 0 {
                // Give back the memory of a large frame once it has been consumed.
                buffer = [UInt8](repeating: 0, count: initialCapacity)
            }
        }
        let want = max(needed, Frame.headerSize + 1)
        if buffer.count - start < want {
            // A frame larger than the buffer: grow (the header was checked against the limit).
            compact()
            if buffer.count < want { grow(to: want) }
        } else if buffer.count - end < 4096 {
            compact()
        }
        let from = end
        let n = buffer.withUnsafeMutableBytes { raw in
            recv(fd, raw.baseAddress! + from, raw.count - from, wait ? 0 : Int32(MSG_DONTWAIT))
        }
        if n > 0 { end += n }
        lastReadFilled = n == buffer.count - from
        return n
    }

    /// Appends bytes as if they had been read (for tests and fuzzing).
    mutating func append(_ bytes: some Collection<UInt8>) {
        compact()
        buffer.removeSubrange(end...)
        buffer.append(contentsOf: bytes)
        end = buffer.count
    }

    /// Grows the buffer to `size` bytes, keeping its contents (one allocation and one copy).
    private mutating func grow(to size: Int) {
        let old = buffer
        buffer = [UInt8](unsafeUninitializedCapacity: size) { storage, initialized in
            let raw = UnsafeMutableRawBufferPointer(storage)
            old.withUnsafeBytes { raw.copyMemory(from: $0) }
            raw.baseAddress!.advanced(by: old.count).initializeMemory(
                as: UInt8.self, repeating: 0, count: size - old.count)
            initialized = size
        }
    }

    /// A copy of the bytes in `range` of the buffer.
    func copy(_ range: Range<Int>) -> [UInt8] {
        buffer.withUnsafeBufferPointer { [UInt8](UnsafeBufferPointer(rebasing: $0[range])) }
    }

    private mutating func compact() {
        guard start > 0 else { return }
        let count = end - start
        if count > 0 {
            buffer.withUnsafeMutableBytes { raw in
                (raw.baseAddress! + 0).copyMemory(from: raw.baseAddress! + start, byteCount: count)
            }
        }
        start = 0
        end = count
    }

    /// The payload range of the next complete frame, or nil if more bytes are needed.
    ///
    /// - Throws: ``CrewError/Code/frameTooLarge`` when a header announces more than the limit; the stream
    ///   cannot be resynchronised after that.
    mutating func next() throws(CrewError) -> Range<Int>? {
        let available = end - start
        guard available >= Frame.headerSize else {
            needed = 0
            return nil
        }
        let length =
            Int(buffer[start]) | Int(buffer[start + 1]) << 8 | Int(buffer[start + 2]) << 16
            | Int(buffer[start + 3]) << 24
        guard length <= maxFrameSize else {
            throw CrewError(
                .frameTooLarge,
                "received a frame header announcing \(length) bytes, over the limit of \(maxFrameSize)"
            )
        }
        guard available >= Frame.headerSize + length else {
            needed = Frame.headerSize + length
            return nil
        }
        needed = 0
        let payload = (start + Frame.headerSize)..<(start + Frame.headerSize + length)
        start = payload.upperBound
        return payload
    }
}
