import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// How queues, pipes, locks and shared values travel to a child, as Python's do with the `spawn` start method:
// with the child's start.
//
// While the arguments of a `Crew.Process` (or a pool's initializer) are encoded, a collector is in place. An IPC
// object's `encode(to:)` adds its descriptor to it and writes the descriptor's position. The child is then
// started with those descriptors as its 5, 6, ... (after 0–2, the socket at 3 and the progress page at 4) — by
// `posix_spawn`'s file actions, or, with the forkserver start method, sent to the fork server with the request
// (SCM_RIGHTS) and placed there in the forked child. The child's `init(from:)` takes the descriptor at that
// position. No path, name or key to guess: only a process that was handed the descriptor can open the object.
//
// Encoded anywhere else (a pool's `apply` arguments, a JSON encoder), an IPC object throws an `EncodingError`
// that says where it can go.

enum HandedDescriptors {
    /// The most descriptors one child can be handed.
    static let limit = 64
    /// The child's descriptor for position 0.
    static let first: Int32 = 5

    /// The descriptors of one child's arguments, as they are encoded.
    final class Collector: @unchecked Sendable {
        // @unchecked Sendable: used by the one thread that encodes the arguments, then read after.
        private(set) var descriptors: [Int32] = []
        /// The objects whose descriptors these are, kept alive until the child has started.
        private(set) var owners: [AnyObject] = []

        /// The position of `fd` among the handed descriptors (added once, however often it is encoded).
        func add(_ fd: Int32, owner: AnyObject) throws -> Int {
            if let index = descriptors.firstIndex(of: fd) { return index }
            guard descriptors.count < HandedDescriptors.limit else {
                throw CrewError(
                    .invalidArgument,
                    "a child can be handed at most \(HandedDescriptors.limit) queues, pipes, locks and shared values"
                )
            }
            descriptors.append(fd)
            owners.append(owner)
            return descriptors.count - 1
        }
    }

    /// The collector of the arguments being encoded on this task or thread, if any.
    @TaskLocal static var collector: Collector?

    /// Encodes `body` with a collector in place; returns what it collected.
    static func collecting<R>(_ body: () throws -> R) rethrows -> (R, Collector) {
        let collector = Collector()
        let result = try $collector.withValue(collector) { try body() }
        return (result, collector)
    }

    // MARK: In the child

    private static let handed = Atomic<Int>(0)
    /// Objects already made from a handed descriptor in this process, by position: one object handed twice (or
    /// decoded twice) is one object.
    private static let adopted = Mutex<[Int: AnyObject]>([:])

    /// Called once at a child's start: the parent handed `count` descriptors.
    static func adopt(count: Int) {
        for index in 0..<count { setCloseOnExec(first + Int32(index)) }
        handed.store(count, ordering: .releasing)
    }

    /// The object for the descriptor at `position`, made by `make` the first time.
    static func object<T: AnyObject>(
        at position: Int,
        as type: T.Type,
        codingPath: [any CodingKey],
        make: (Int32) throws -> T
    ) throws -> T {
        guard position >= 0, position < handed.load(ordering: .acquiring) else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: codingPath,
                    debugDescription: "\(T.self) refers to handed descriptor \(position), but this process was handed "
                        + "\(handed.load(ordering: .acquiring)); IPC objects decode only in the child they were passed to"
                ))
        }
        return try adopted.withLock { adopted in
            if let existing = adopted[position] {
                guard let object = existing as? T else {
                    throw DecodingError.dataCorrupted(
                        DecodingError.Context(
                            codingPath: codingPath,
                            debugDescription:
                                "handed descriptor \(position) is a \(Swift.type(of: existing)), not a \(T.self)"
                        ))
                }
                return object
            }
            let object = try make(first + Int32(position))
            adopted[position] = object
            return object
        }
    }

    // MARK: Encoding helpers for IPC objects

    /// Writes `kind` and the position of `fd` (see the file's comment), or throws where no child is being started.
    static func encode(_ kind: String, fd: Int32, owner: AnyObject, to encoder: any Encoder) throws {
        guard let collector else {
            throw EncodingError.invalidValue(
                owner,
                EncodingError.Context(
                    codingPath: encoder.codingPath,
                    debugDescription:
                        "a \(kind) travels to a child only in the arguments of Crew.Process(target:args:) "
                        + "or of a pool's initializer, which hand its descriptor to the child as it starts"
                ))
        }
        var container = encoder.unkeyedContainer()
        try container.encode(kind)
        try container.encode(try collector.add(fd, owner: owner))
    }

    /// Reads what ``encode(_:fd:owner:to:)`` wrote and returns the object for it.
    static func decode<T: AnyObject>(
        _ kind: String,
        as type: T.Type,
        from decoder: any Decoder,
        make: (Int32) throws -> T
    ) throws -> T {
        var container = try decoder.unkeyedContainer()
        let found = try container.decode(String.self)
        guard found == kind else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: decoder.codingPath,
                    debugDescription: "expected a handed \(kind), found a \(found)"
                ))
        }
        let position = try container.decode(Int.self)
        return try object(at: position, as: type, codingPath: decoder.codingPath, make: make)
    }
}

/// Memory shared between processes: an owner-only memfd, mapped; unmapped and closed when the last object that
/// uses it in this process goes.
final class SharedRegion: @unchecked Sendable {
    // @unchecked Sendable: the region's contents are synchronized by the objects built on it (atomics, futexes,
    // process-shared mutexes); this class only owns the mapping.
    let fd: Int32
    let address: UnsafeMutableRawPointer
    let size: Int

    private init(fd: Int32, address: UnsafeMutableRawPointer, size: Int) {
        self.fd = fd
        self.address = address
        self.size = size
    }

    deinit {
        crew_unmap(address, UInt(size))
        close(fd)
    }

    /// A new zero-filled region of `size` bytes.
    static func create(name: String, size: Int) throws -> SharedRegion {
        var raw: UnsafeMutableRawPointer?
        let fd = crew_shared_memory(name, UInt(size), &raw)
        guard fd >= 0, let raw else { throw systemCallError("memfd_create/mmap (\(size) bytes)") }
        return SharedRegion(fd: fd, address: raw, size: size)
    }

    /// Maps the region behind a handed descriptor, which must be at least `minimumSize` bytes.
    static func adopt(_ fd: Int32, minimumSize: Int) throws -> SharedRegion {
        let size = crew_fd_size(fd)
        guard size >= minimumSize else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: [],
                    debugDescription: "handed descriptor \(fd) is not a shared region of at least \(minimumSize) bytes"
                ))
        }
        guard let raw = crew_map_shared(fd, UInt(size)) else { throw systemCallError("mmap") }
        return SharedRegion(fd: fd, address: raw, size: size)
    }

    /// A pointer `offset` bytes into the region.
    @inline(__always)
    func pointer(_ offset: Int) -> UnsafeMutableRawPointer {
        address + offset
    }

    /// The 32-bit atomic word at `offset` (4-aligned).
    @inline(__always)
    func word(_ offset: Int) -> UnsafeMutablePointer<UInt32> {
        (address + offset).assumingMemoryBound(to: UInt32.self)
    }
}

/// Objects that own handed descriptors, kept alive by whoever starts children with them.
struct HandedOwners: @unchecked Sendable {
    // @unchecked Sendable: IPC objects are Sendable; they are only held here, never touched.
    let objects: [AnyObject]

    init(_ objects: [AnyObject]) {
        self.objects = objects
    }
}
