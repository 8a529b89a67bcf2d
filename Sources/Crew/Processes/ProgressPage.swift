import CCrewShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Memory a pool worker shares with its parent: the worker writes there the id of each synchronous call it starts
/// and finishes, and a copy of the answers it has not yet sent; the parent reads them when the worker dies.
///
/// With it the parent knows exactly which call a dead worker was running and which it never started, and it gets
/// the answers of the calls the worker had finished but not yet sent (a worker sends answers in batches, and may
/// die, killed or trapping, in the call after). So a call that finished is answered, whatever the next call does,
/// without the worker sending each answer before it starts the next call. Stores are plain: the parent reads only
/// after the worker has exited.
final class ProgressPage: @unchecked Sendable {
    // @unchecked Sendable: written by one process (the worker), read by the other after the writer is dead.
    static let size = 256 << 10
    /// Where the copy of unsent answers starts; the words before it are the ids and the copy's length.
    static let answersOffset = 64
    /// The most bytes of unsent answers the page holds; a worker sends its answers before it holds more.
    static var answersCapacity: Int { size - answersOffset }

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

    /// How many bytes of the worker's unsent output the page holds a copy of.
    var answersLength: Int {
        get { Int(address.load(fromByteOffset: 16, as: UInt64.self)) }
        set { address.storeBytes(of: UInt64(newValue), toByteOffset: 16, as: UInt64.self) }
    }

    /// Copies `output[from...]` to the same place in the page and makes the page's copy `output.count` bytes
    /// long (the worker, before it starts a call). `output.count` must not exceed ``answersCapacity``.
    func mirror(_ output: [UInt8], from: Int) {
        precondition(output.count <= Self.answersCapacity && from <= output.count)
        if from < output.count {
            output.withUnsafeBytes { raw in
                (address + Self.answersOffset + from).copyMemory(
                    from: raw.baseAddress! + from, byteCount: raw.count - from)
            }
        }
        answersLength = output.count
    }

    /// The copy of the worker's unsent output (the parent, once the worker is dead): whole frames, in order.
    var unsentOutput: [UInt8] {
        let length = min(max(0, answersLength), Self.answersCapacity)
        return [UInt8](UnsafeRawBufferPointer(start: address + Self.answersOffset, count: length))
    }
}
