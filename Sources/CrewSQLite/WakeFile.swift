import CCrewShims
import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// Wake-ups between the processes that share a broker file: two futex words in a small owner-only file beside
/// the database (`crew.db-wake`), mapped shared by every process. An enqueue bumps the first and wakes the
/// sleepers; a finished job bumps the second. Without it, idle workers and result waiters could only poll.
final class WakeFile: @unchecked Sendable {
    // @unchecked Sendable: the words are touched only with atomics and futex calls.
    private let address: UnsafeMutableRawPointer?
    static let size = 4096

    init(databasePath: String) {
        let fd = open(databasePath + "-wake", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            address = nil
            return
        }
        defer { close(fd) }
        if crew_fd_size(fd) < Self.size { _ = ftruncate(fd, off_t(Self.size)) }
        address = crew_map_shared(fd, UInt(Self.size))
    }

    deinit {
        if let address { crew_unmap(address, UInt(Self.size)) }
    }

    enum Word: Int {
        case jobs = 0
        case results = 64
    }

    /// The counter of `which`; the number of processes asleep on it is the next word.
    private func word(_ which: Word) -> UnsafeMutablePointer<UInt32>? {
        address.map { ($0 + which.rawValue).assumingMemoryBound(to: UInt32.self) }
    }

    /// The count of `which` now: pass it to ``wait(_:after:timeout:)``.
    func mark(_ which: Word) -> UInt64 {
        word(which).map { UInt64(crew_load32($0)) } ?? 0
    }

    /// Bumps `which` and wakes every process waiting on it (no system call when none is).
    func signal(_ which: Word) {
        guard let word = word(which) else { return }
        _ = crew_add32(word, 1)
        // The add above is sequentially consistent, as is a sleeper's count-then-check: one of the two sees the other.
        if crew_add32(word + 1, 0) > 0 {
            _ = crew_futex_wake(word, Int32.max)
        }
    }

    /// Returns when `which` has moved past `mark`, or after `timeout`. The wait runs on Crew's pool for blocking
    /// calls.
    func wait(_ which: Word, after mark: UInt64, timeout: Duration) async {
        guard let word = word(which) else {
            try? await Task.sleep(for: timeout)
            return
        }
        let seen = UInt32(truncatingIfNeeded: mark)
        guard crew_load32(word) == seen else { return }
        let nanoseconds = Int64(
            clamping: Int(timeout.components.seconds) * 1_000_000_000
                + Int(timeout.components.attoseconds / 1_000_000_000))
        let raw = UInt(bitPattern: word)
        _ = try? await Crew.blocking {
            let word = UnsafeMutablePointer<UInt32>(bitPattern: raw)!
            _ = crew_add32(word + 1, 1)
            _ = crew_futex_wait(word, seen, nanoseconds)
            _ = crew_add32(word + 1, UInt32.max)
        }
    }
}
