// A dictionary for the pool's hot tables, keyed by ids that the pool hands out in order (task and worker ids).
//
// `Dictionary` hashes an integer key with SipHash, which showed in the pool's profiles (a few lookups per call on
// the I/O thread). Ids handed out in order need no such mixing: taken as they are, consecutive ids fall into
// consecutive buckets. The per-table seed is still mixed in, so that copying one table into another does not
// degrade into long probe runs.

/// An integer id whose hash is the id itself, mixed with the table's seed.
struct SequentialKey<ID: FixedWidthInteger>: Hashable {
    let id: ID

    @inline(__always)
    init(_ id: ID) {
        self.id = id
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(id)
    }

    @inline(__always)
    func _rawHashValue(seed: Int) -> Int {
        // An odd multiplier permutes the low bits (the bucket) of consecutive ids and spreads them over the table.
        Int(truncatingIfNeeded: UInt64(truncatingIfNeeded: id) &* 0x9E37_79B9_7F4A_7C15) ^ seed
    }
}

/// The subset of `Dictionary` the pool uses, over ``SequentialKey``.
struct IDMap<ID: FixedWidthInteger, Value> {
    private var storage: [SequentialKey<ID>: Value] = [:]

    init() {}

    @inline(__always)
    subscript(id: ID) -> Value? {
        get { storage[SequentialKey(id)] }
        set { storage[SequentialKey(id)] = newValue }
        _modify { yield &storage[SequentialKey(id)] }
    }

    @discardableResult
    @inline(__always)
    mutating func removeValue(forKey id: ID) -> Value? {
        storage.removeValue(forKey: SequentialKey(id))
    }

    var isEmpty: Bool { storage.isEmpty }
    var count: Int { storage.count }
    var keys: [ID] { storage.keys.map(\.id) }

    mutating func reserveCapacity(_ capacity: Int) {
        storage.reserveCapacity(capacity)
    }
}

extension IDMap: Equatable where Value: Equatable {}
