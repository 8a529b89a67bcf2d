import CCrewShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A ``CrewError`` for a failed system call, with `errno`'s name and text.
func systemCallError(_ call: String, _ code: Int32 = errno) -> CrewError {
    let text = strerror(code).map { String(cString: $0) } ?? "errno \(code)"
    return CrewError(.systemCallFailed, "\(call) failed: \(text) (errno \(code))")
}

/// Makes `fd` non-blocking.
func setNonBlocking(_ fd: Int32) {
    let flags = fcntl(fd, F_GETFL)
    if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
}

/// Makes `fd` blocking.
func setBlocking(_ fd: Int32) {
    let flags = fcntl(fd, F_GETFL)
    if flags >= 0 && flags & O_NONBLOCK != 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
}

/// Makes blocking receives on the socket `fd` give up (EAGAIN) after `milliseconds`.
func setReceiveTimeout(_ fd: Int32, milliseconds: Int) {
    var limit = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
    _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
}

/// Sets or clears close-on-exec on `fd`.
func setCloseOnExec(_ fd: Int32, _ on: Bool = true) {
    let flags = fcntl(fd, F_GETFD)
    if flags >= 0 { _ = fcntl(fd, F_SETFD, on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC)) }
}

/// Nanoseconds on the monotonic clock.
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to 0...Int64.max.
    var clampedNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow || whole > UInt64(Int64.max) { return UInt64(Int64.max) }
        return min(UInt64(Int64.max), whole + UInt64(attoseconds / 1_000_000_000))
    }
}

/// Writes all of `bytes` to a blocking descriptor, retrying on EINTR; gives up on any other error.
@discardableResult
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if n < 0 {
            if errno == EINTR { continue }
            if errno == EAGAIN {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, -1)
                continue
            }
            return false
        }
        offset += n
    }
    return true
}
