import CCrewShims

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A page of memory a pool worker shares with its parent: the worker writes the id of each synchronous call it
/// starts and finishes there, and the parent reads the two words when the worker dies.
///
/// With it the parent knows exactly which call a dead worker was running, which calls it had finished (whose
/// results may not have been sent yet) and which it never started — without the worker sending each result
/// before it starts the next call. Stores are plain: the parent reads only after the worker has exited.
final class ProgressPage: @unchecked Sendable {
    // @unchecked Sendable: written by one process (the worker), read by the other after the writer is dead.
    static let size = 4096

    private let address: UnsafeMutableRawPointer

    private init(address: UnsafeMutableRawPointer) {
        self.address = address
    }

    deinit {
        crew_unmap(address, UInt(Self.size))
    }

    /// Makes a new shared page; returns it and the descriptor to hand to the worker (close it once handed).
    static func create() -> (page: ProgressPage, fd: Int32)? {
        var raw: UnsafeMutableRawPointer?
        let fd = crew_shared_region(UInt(size), &raw)
        guard fd >= 0, let raw else { return nil }
        return (ProgressPage(address: raw), fd)
    }

    /// Maps the page a parent handed this worker as descriptor `fd` (and closes the descriptor).
    static func map(_ fd: Int32) -> ProgressPage? {
        let raw = crew_map_shared(fd, UInt(size))
        close(fd)
        return raw.map { ProgressPage(address: $0) }
    }

    /// The id of the last synchronous call the worker started (0: none yet).
    var started: UInt64 {
        get { address.load(fromByteOffset: 0, as: UInt64.self) }
        set { address.storeBytes(of: newValue, toByteOffset: 0, as: UInt64.self) }
    }

    /// The id of the last synchronous call the worker finished (0: none yet).
    var finished: UInt64 {
        get { address.load(fromByteOffset: 8, as: UInt64.self) }
        set { address.storeBytes(of: newValue, toByteOffset: 8, as: UInt64.self) }
    }
}
