#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A child's standard error, as its connection reads it on the I/O thread: copied through to ours as it comes,
/// and kept as a ``StderrTail`` to explain the child's death.
///
/// Copying never blocks the I/O thread: a standard error nobody reads must not stall every child. Writes of at
/// most `PIPE_BUF` bytes into a descriptor that polls writable do not block; what does not fit is dropped (and
/// said so once ours is writable again), while the tail keeps everything.
struct StderrRelay {
    /// The read end of the child's standard error pipe (non-blocking).
    let fd: Int32
    let pid: Int32
    private(set) var tail: StderrTail
    private(set) var isOpen = true
    /// Bytes not copied to ours because ours was full.
    private var dropped = 0
    /// Where copies go (2: our standard error).
    private let destination: Int32
    /// When set, the child's standard error goes here a line at a time (without its newline) instead of to
    /// `destination`: a supervisor logs its workers' lines through its own logger.
    private let lines: (@Sendable (String) -> Void)?
    /// The start of a line not yet ended, with `lines`.
    private var partialLine: [UInt8] = []
    /// A line longer than this is handed on in pieces of this size.
    static let longestLine = 16 << 10

    init(
        fd: Int32, pid: Int32, tailBytes: Int, destination: Int32 = 2, lines: (@Sendable (String) -> Void)? = nil
    ) {
        self.fd = fd
        self.pid = pid
        self.tail = StderrTail(limit: tailBytes)
        self.destination = destination
        self.lines = lines
    }

    /// Reads everything the pipe holds now. Returns false once the pipe has ended (the child closed it, or is
    /// gone): the caller stops watching it and calls ``close()``.
    mutating func readAvailable() -> Bool {
        guard isOpen else { return false }
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n > 0 {
                if let lines {
                    splitLines(chunk[0..<n], into: lines)
                } else {
                    chunk.withUnsafeBytes { passThrough(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                }
                tail.append(chunk[0..<n])
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN { return true }
            return false
        }
    }

    /// Closes the pipe (once), handing on a last line that had no newline.
    mutating func close() {
        guard isOpen else { return }
        isOpen = false
        if let lines, !partialLine.isEmpty {
            lines(String(decoding: partialLine, as: UTF8.self))
            partialLine = []
        }
        _ = Glibc.close(fd)
    }

    private mutating func splitLines(_ bytes: ArraySlice<UInt8>, into lines: @Sendable (String) -> Void) {
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                lines(String(decoding: partialLine, as: UTF8.self))
                partialLine.removeAll(keepingCapacity: true)
            } else {
                partialLine.append(byte)
                if partialLine.count >= Self.longestLine {
                    lines(String(decoding: partialLine, as: UTF8.self))
                    partialLine.removeAll(keepingCapacity: true)
                }
            }
        }
    }

    private mutating func passThrough(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            var p = pollfd(fd: destination, events: Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, 0) == 1, p.revents & Int16(POLLOUT) != 0 else { break }
            let n = write(destination, bytes.baseAddress! + offset, min(4096, bytes.count - offset))
            if n > 0 {
                offset += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        if offset < bytes.count {
            dropped += bytes.count - offset
        } else if dropped > 0 {
            var note = "[crew: \(dropped) bytes of child \(pid)'s standard error were dropped: ours was not writable]\n"
            dropped = 0
            note.withUTF8 { raw in
                var q = pollfd(fd: destination, events: Int16(POLLOUT), revents: 0)
                if poll(&q, 1, 0) == 1 { _ = write(destination, raw.baseAddress, raw.count) }
            }
        }
    }
}
