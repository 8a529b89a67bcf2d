import CCrewShims

// Python's multiprocessing.Value and Array for plain (bitwise-copyable) types: the values live in an owner-only
// shared region, optionally guarded by a robust process-shared lock in the same region.
//
// Layout: 0 kind (u32: 8), 4 has a lock (u32), 8 element size (u64), 16 count (u64), 24 element alignment
// (u64); 64 the mutex; 256 the elements.

/// The region, lock and layout under ``SharedValue`` and ``SharedArray``.
final class SharedCells: Sendable {
    let region: SharedRegion
    let mutex: SharedMutex?
    let count: Int

    static let dataOffset = 256

    init<T: BitwiseCopyable>(_: T.Type, count: Int, lock: Bool) throws {
        guard count >= 0 else {
            throw CrewError(.invalidArgument, "a shared array's count must be 0 or more, not \(count)")
        }
        guard MemoryLayout<T>.alignment <= 64 else {
            throw CrewError(
                .invalidArgument, "\(T.self) needs an alignment over 64 bytes, which shared memory here lacks")
        }
        let bytes = Self.dataOffset + max(1, count) * MemoryLayout<T>.stride
        region = try SharedRegion.create(name: "crew-shared-value", size: (bytes + 4095) & ~4095)
        mutex = lock ? try SharedMutex.initialize(at: region.pointer(64), recursive: true) : nil
        region.word(4).pointee = lock ? 1 : 0
        region.pointer(8).storeBytes(of: UInt64(MemoryLayout<T>.stride), as: UInt64.self)
        region.pointer(16).storeBytes(of: UInt64(count), as: UInt64.self)
        region.pointer(24).storeBytes(of: UInt64(MemoryLayout<T>.alignment), as: UInt64.self)
        region.word(0).pointee = 8
        self.count = count
    }

    init<T: BitwiseCopyable>(_: T.Type, adopting region: SharedRegion) throws {
        func damaged(_ what: String) -> DecodingError {
            .dataCorrupted(.init(codingPath: [], debugDescription: what))
        }
        guard crew_load32(region.word(0)) == 8 else { throw damaged("the handed region is not a shared value") }
        let stride = Int(region.pointer(8).load(as: UInt64.self))
        let alignment = Int(region.pointer(24).load(as: UInt64.self))
        let count = Int(region.pointer(16).load(as: UInt64.self))
        guard stride == MemoryLayout<T>.stride, alignment == MemoryLayout<T>.alignment else {
            throw damaged("the handed shared value holds elements of \(stride) bytes, not \(T.self)")
        }
        guard Self.dataOffset + count * stride <= region.size else {
            throw damaged("the handed shared value is damaged")
        }
        self.region = region
        self.count = count
        self.mutex = crew_load32(region.word(4)) == 1 ? SharedMutex(address: region.pointer(64)) : nil
    }

    func elements<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        region.pointer(Self.dataOffset).assumingMemoryBound(to: T.self)
    }

    /// Runs `body` holding the lock, if there is one. `reportOwnerDeath` false: a dead holder's lock is taken
    /// over silently (for single loads and stores, which cannot see a half-done update of their own).
    func locked<R>(reportOwnerDeath: Bool, _ body: () throws -> R) throws -> R {
        guard let mutex else { return try body() }
        while true {
            do {
                _ = try mutex.lock(until: -1, what: "shared value's lock")
                break
            } catch let error as CrewError where error.code == .ownerDied && !reportOwnerDeath {
                continue
            }
        }
        defer { _ = crew_mutex_unlock(mutex.address) }
        return try body()
    }

    /// `body` under the lock, for the plain `value` and subscript accessors, which cannot throw. A holder's
    /// death is not an error there (as in ``locked(reportOwnerDeath:_:)``); any other failure of the lock — taking
    /// it again inside the same holder's `withLock`, which would hang in Python — stops the program with its
    /// reason rather than drop a write or make up a read.
    func lockedForAccessor<R>(_ body: () -> R) -> R {
        do {
            return try locked(reportOwnerDeath: false, body)
        } catch {
            preconditionFailure("a shared value's lock failed: \(String(reflecting: error))")
        }
    }
}

/// One plain value shared between processes: Python's `multiprocessing.Value`.
///
/// ```swift
/// let counter = try SharedValue(0)
/// try counter.withLock { $0 += 1 }      // Python: with counter.get_lock(): counter.value += 1
/// print(counter.value)
/// ```
///
/// `Value` must be bitwise-copyable (numbers, `Bool`, tuples and structs of them): the bytes themselves are
/// shared. Hand it to children in their arguments.
public final class SharedValue<Value: BitwiseCopyable>: Codable, Sendable {
    let cells: SharedCells

    /// A shared value, guarded by a lock unless `lock` is false (Python's `lock=False`: a raw value).
    public init(_ initial: Value, lock: Bool = true) throws {
        cells = try SharedCells(Value.self, count: 1, lock: lock)
        cells.elements(Value.self).initialize(to: initial)
    }

    private init(cells: SharedCells) {
        self.cells = cells
    }

    /// The value. Each read and each write takes the lock (if any) by itself; for a read-modify-write such as
    /// `+= 1` use ``withLock(_:)``, as in Python.
    public var value: Value {
        get { cells.lockedForAccessor { cells.elements(Value.self).pointee } }
        set { cells.lockedForAccessor { cells.elements(Value.self).pointee = newValue } }
    }

    /// Runs `body` on the value holding its lock: Python's `with v.get_lock(): ...`.
    ///
    /// - Throws: ``CrewError/Code/ownerDied`` if a holder of the lock died holding it (the value may be
    ///   half-updated; the lock is released, so call again to go on); ``CrewError/Code/invalidArgument`` for a
    ///   value made with `lock: false`.
    public func withLock<R>(_ body: (inout Value) throws -> R) throws -> R {
        guard cells.mutex != nil else {
            throw CrewError(.invalidArgument, "this shared value was made with lock: false")
        }
        return try cells.locked(reportOwnerDeath: true) { try body(&cells.elements(Value.self).pointee) }
    }

    /// Writes a handle that a child started with these arguments turns back into this value.
    public func encode(to encoder: any Encoder) throws {
        try HandedDescriptors.encode("SharedValue", fd: cells.region.fd, owner: cells, to: encoder)
    }

    /// Takes the shared value handed to this child by its parent.
    public convenience init(from decoder: any Decoder) throws {
        let cells = try HandedDescriptors.decode("SharedValue", as: SharedCells.self, from: decoder) { fd in
            try SharedCells(Value.self, adopting: SharedRegion.adopt(fd, minimumSize: SharedCells.dataOffset))
        }
        guard cells.count == 1 else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath, debugDescription: "the handed region is a shared array, not a value"
                ))
        }
        self.init(cells: cells)
    }
}

/// A fixed-size array of plain values shared between processes: Python's `multiprocessing.Array`.
public final class SharedArray<Element: BitwiseCopyable>: Codable, Sendable {
    let cells: SharedCells

    /// A shared array of `count` copies of `repeating`, guarded by a lock unless `lock` is false.
    public init(repeating value: Element, count: Int, lock: Bool = true) throws {
        cells = try SharedCells(Element.self, count: count, lock: lock)
        cells.elements(Element.self).initialize(repeating: value, count: count)
    }

    /// A shared array holding `elements`.
    public convenience init(_ elements: [Element], lock: Bool = true) throws {
        try self.init(repeating: elements.first ?? Self.zero, count: elements.count, lock: lock)
        let base = cells.elements(Element.self)
        for (i, element) in elements.enumerated() { base[i] = element }
    }

    private static var zero: Element {
        withUnsafeTemporaryAllocation(of: Element.self, capacity: 1) { buffer in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            return raw.load(as: Element.self)
        }
    }

    private init(cells: SharedCells) {
        self.cells = cells
    }

    /// How many elements the array has.
    public var count: Int { cells.count }

    /// The element at `index`, read or written under the lock (if any).
    ///
    /// - Precondition: `index` is in `0..<count`.
    public subscript(index: Int) -> Element {
        get {
            precondition(index >= 0 && index < count, "index \(index) out of range 0..<\(count)")
            return cells.lockedForAccessor { cells.elements(Element.self)[index] }
        }
        set {
            precondition(index >= 0 && index < count, "index \(index) out of range 0..<\(count)")
            cells.lockedForAccessor { cells.elements(Element.self)[index] = newValue }
        }
    }

    /// A copy of all the elements, taken under the lock.
    public var elements: [Element] {
        cells.lockedForAccessor { Array(UnsafeBufferPointer(start: cells.elements(Element.self), count: count)) }
    }

    /// Runs `body` on the elements holding the lock.
    ///
    /// - Throws: as ``SharedValue/withLock(_:)``.
    public func withLock<R>(_ body: (UnsafeMutableBufferPointer<Element>) throws -> R) throws -> R {
        guard cells.mutex != nil else {
            throw CrewError(.invalidArgument, "this shared array was made with lock: false")
        }
        return try cells.locked(reportOwnerDeath: true) {
            try body(UnsafeMutableBufferPointer(start: cells.elements(Element.self), count: count))
        }
    }

    /// Writes a handle that a child started with these arguments turns back into this array.
    public func encode(to encoder: any Encoder) throws {
        try HandedDescriptors.encode("SharedArray", fd: cells.region.fd, owner: cells, to: encoder)
    }

    /// Takes the shared array handed to this child by its parent.
    public convenience init(from decoder: any Decoder) throws {
        let cells = try HandedDescriptors.decode("SharedArray", as: SharedCells.self, from: decoder) { fd in
            try SharedCells(Element.self, adopting: SharedRegion.adopt(fd, minimumSize: SharedCells.dataOffset))
        }
        self.init(cells: cells)
    }
}
