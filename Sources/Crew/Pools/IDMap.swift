// A table for the pool's hot lookups, keyed by ids that the pool hands out in order (task and worker ids).
//
// `Dictionary` hashes an integer key with SipHash, which showed in the pool's profiles (a few lookups per call on
// the I/O thread). Ids handed out in order need no such mixing: an open-addressing table multiplies the id by an
// odd constant (Fibonacci hashing) and takes the top bits as the slot, which spreads consecutive ids over the
// table, and probes linearly from there. Removal shifts the entries after it back, so no tombstones build up.

/// The subset of `Dictionary` the pool uses, keyed by an integer id.
struct IDMap<ID: FixedWidthInteger, Value> {
    private var slots: [(id: ID, value: Value)?]
    /// log2 of the number of slots.
    private var bits: Int
    private(set) var count = 0

    init() {
        bits = 4
        slots = Array(repeating: nil, count: 1 << 4)
    }

    @inline(__always)
    private func home(_ id: ID) -> Int {
        let mixed = UInt64(truncatingIfNeeded: id) &* 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: mixed >> UInt64(64 - bits))
    }

    /// The slot holding `id`, or the empty slot where it would go.
    @inline(__always)
    private func find(_ id: ID) -> (index: Int, found: Bool) {
        let mask = slots.count - 1
        var index = home(id)
        while let slot = slots[index] {
            if slot.id == id { return (index, true) }
            index = (index + 1) & mask
        }
        return (index, false)
    }

    subscript(id: ID) -> Value? {
        get {
            let (index, found) = find(id)
            return found ? slots[index]!.value : nil
        }
        set {
            guard let newValue else {
                removeValue(forKey: id)
                return
            }
            let (index, found) = find(id)
            slots[index] = (id, newValue)
            if !found {
                count += 1
                if count * 2 > slots.count { resize(bits: bits + 1) }
            }
        }
    }

    @discardableResult
    mutating func removeValue(forKey id: ID) -> Value? {
        let (found, present) = find(id)
        guard present else { return nil }
        let value = slots[found]!.value
        // Backward-shift deletion: move each later entry of the run into the hole if its home allows it.
        let mask = slots.count - 1
        var hole = found
        var next = (hole + 1) & mask
        while let slot = slots[next] {
            let home = home(slot.id)
            // The entry may move to the hole unless its home lies cyclically in (hole, next].
            let distanceToNext = (next - home) & mask
            let distanceToHole = (hole - home) & mask
            if distanceToHole < distanceToNext {
                slots[hole] = slot
                hole = next
            }
            next = (next + 1) & mask
        }
        slots[hole] = nil
        count -= 1
        return value
    }

    var isEmpty: Bool { count == 0 }
    var keys: [ID] { slots.compactMap { $0?.id } }

    mutating func reserveCapacity(_ capacity: Int) {
        var needed = bits
        while (1 << needed) < capacity * 2 { needed += 1 }
        if needed > bits { resize(bits: needed) }
    }

    private mutating func resize(bits newBits: Int) {
        let old = slots
        bits = newBits
        slots = Array(repeating: nil, count: 1 << newBits)
        for case let slot? in old {
            let (index, _) = find(slot.id)
            slots[index] = slot
        }
    }
}

extension IDMap: Equatable where Value: Equatable {
    static func == (lhs: IDMap, rhs: IDMap) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for case let slot? in lhs.slots where rhs[slot.id] != slot.value { return false }
        return true
    }
}
