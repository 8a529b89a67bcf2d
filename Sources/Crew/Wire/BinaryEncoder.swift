// Over 500 lines: one `Encoder` and its keyed, unkeyed and single-value containers, which share the output buffer,
// the back-patched lengths and the direct forms (BinaryDirect.swift); Swift's encoding protocols need all of them.

internal import FoundationEssentials

/// Encodes any `Encodable` value in Crew's binary format (see `BinaryFormat.swift`).
///
/// Values are written in one pass into one byte array. A container's byte length is back-patched when the
/// container closes: it closes when the value that opened it is finished or when its parent container
/// writes its next value. Writing into a container that has been closed that way (two sibling containers
/// used in turns) is reported as an `EncodingError`, never encoded wrongly.
@usableFromInline
struct BinaryEncoder {
    @usableFromInline
    init() {}

    /// Returns the encoding of `value`.
    @usableFromInline
    func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try Self.encode(value, appendingTo: &bytes)
        return bytes
    }

    /// Appends the encoding of `value` to `bytes`.
    ///
    /// Inlinable so that, where `T` is known, the check for a direct form is decided when compiling rather than
    /// by a conformance lookup at run time on every call.
    @inlinable
    static func encode<T: Encodable>(_ value: T, appendingTo bytes: inout [UInt8]) throws {
        // Numbers, strings, byte blobs and arrays of numbers need no encoder object.
        if let direct = value as? any BinaryDirectCodable {
            direct.encodeDirect(into: &bytes)
            return
        }
        try encodeCoded(value, appendingTo: &bytes)
    }

    /// Writes the header of a `[UInt8]` of `count` bytes (the byte-blob tag and the length) into the first bytes
    /// of `storage`; returns how many. The bytes themselves follow it.
    @usableFromInline
    static func byteArrayHeader<Storage>(count: Int, into storage: inout Storage) -> Int {
        var header: [UInt8] = [BinaryTag.bytes]
        header.appendVarint(UInt64(count))
        withUnsafeMutableBytes(of: &storage) { raw in
            precondition(raw.count >= header.count)
            raw.copyBytes(from: header)
        }
        return header.count
    }

    /// Appends the encoding of `value` through the `Encoder` protocol.
    @usableFromInline
    static func encodeCoded<T: Encodable>(_ value: T, appendingTo bytes: inout [UInt8]) throws {
        let encoder = BinaryEncoding(bytes: bytes)
        bytes = []
        defer { bytes = encoder.bytes }
        try encoder.encodeValue(value)
        encoder.closeContainers(downTo: 0)
        if let error = encoder.deferredError { throw error }
    }
}

/// Types with a direct binary form that bypasses `Encoder`/`Decoder` (numbers, strings, byte blobs and
/// arrays of numbers, which are written with one copy).
@usableFromInline
protocol BinaryDirectCodable {
    func encodeDirect(into bytes: inout [UInt8])
    /// Decodes a value of this type from the value at `start..<end`, or returns nil when that value is not in
    /// this type's direct form (the caller then falls back to `init(from:)`).
    static func decodeDirect(_ reader: ByteReader, start: Int, end: Int) throws(BinaryFormatError) -> Self?
}

final class BinaryEncoding: Encoder {
    struct OpenContainer {
        let id: Int
        /// Offset of the one byte reserved for the container's length.
        let lengthAt: Int
    }

    /// What the value currently being encoded through the `Encoder` protocol has done.
    struct ValueState {
        var level: Int
        var containerID = 0
        var containerKind: UInt8 = 0
        var wroteSingleValue = false
    }

    var bytes: [UInt8]
    var open: [OpenContainer] = []
    var nextContainerID = 1
    var codingPath: [any CodingKey] = []
    var current = ValueState(level: 0)
    /// An error found where `Encoder` cannot throw (requesting a container); thrown at the end.
    var deferredError: EncodingError?

    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    // MARK: Values

    func encodeNil() {
        bytes.append(BinaryTag.null)
    }

    func encodeValue<T: Encodable>(_ value: T) throws {
        if let direct = value as? any BinaryDirectCodable {
            direct.encodeDirect(into: &bytes)
            return
        }
        if let direct = value as? any BinaryDirectPrivate {
            direct.encodeDirect(into: &bytes)
            return
        }
        let saved = current
        current = ValueState(level: open.count)
        defer { current = saved }
        let start = bytes.count
        try value.encode(to: self)
        closeContainers(downTo: current.level)
        if bytes.count == start {
            // The value wrote nothing (an empty struct): write an empty keyed container, as JSON writes {}.
            bytes.append(BinaryTag.keyed)
            bytes.append(0)
        }
        if let error = deferredError { throw error }
    }

    func encodeKey(_ key: some CodingKey) {
        encodeKey(key.stringValue)
    }

    func encodeKey(_ string: String) {
        var utf8 = string.utf8
        let count = utf8.withContiguousStorageIfAvailable { $0.count } ?? utf8.count
        bytes.appendVarint(UInt64(count) + 1)
        if utf8.withContiguousStorageIfAvailable({ bytes.append(contentsOf: $0) }) == nil {
            var copy = string
            copy.makeContiguousUTF8()
            utf8 = copy.utf8
            bytes.append(contentsOf: utf8)
        }
    }

    // MARK: Containers

    /// Opens a container of `kind` at the current end of the bytes and returns its id and level.
    func openContainer(kind: UInt8) -> (id: Int, level: Int) {
        let id = nextContainerID
        nextContainerID += 1
        bytes.append(kind)
        open.append(OpenContainer(id: id, lengthAt: bytes.count))
        bytes.append(0)
        return (id, open.count - 1)
    }

    /// Checks that the container `id` at `level` is still open and closes every container opened after it.
    func prepareWrite(id: Int, level: Int) throws {
        guard level < open.count, open[level].id == id else {
            throw EncodingError.invalidValue(
                (),
                EncodingError.Context(
                    codingPath: codingPath,
                    debugDescription:
                        "a container was written after a sibling container had been written to; Crew's binary "
                        + "encoder needs each container finished before its parent's next value"
                )
            )
        }
        closeContainers(downTo: level + 1)
    }

    /// Writes the byte lengths of every open container above `level` and closes them.
    func closeContainers(downTo level: Int) {
        while open.count > level {
            let container = open.removeLast()
            let contentStart = container.lengthAt + 1
            let length = UInt64(bytes.count - contentStart)
            if length < 0x80 {
                bytes[container.lengthAt] = UInt8(length)
                continue
            }
            let size = [UInt8].varintSize(length)
            bytes.insert(contentsOf: repeatElement(0, count: size - 1), at: contentStart)
            var v = length
            var i = container.lengthAt
            while v >= 0x80 {
                bytes[i] = UInt8(truncatingIfNeeded: v) | 0x80
                v >>= 7
                i += 1
            }
            bytes[i] = UInt8(truncatingIfNeeded: v)
        }
    }

    private func containerForCurrentValue(kind: UInt8) -> (id: Int, level: Int) {
        if current.containerID != 0 {
            if current.containerKind == kind, current.level < open.count, open[current.level].id == current.containerID
            {
                // Asked again for the same container (a subclass and its superclass sharing one encoder).
                closeContainers(downTo: current.level + 1)
                return (current.containerID, current.level)
            }
            deferredError = EncodingError.invalidValue(
                (),
                EncodingError.Context(
                    codingPath: codingPath,
                    debugDescription: "a value asked for two different containers"
                )
            )
        }
        closeContainers(downTo: current.level)
        let opened = openContainer(kind: kind)
        current.containerID = opened.id
        current.containerKind = kind
        return opened
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let opened = containerForCurrentValue(kind: BinaryTag.keyed)
        return KeyedEncodingContainer(
            BinaryKeyedEncodingContainer<Key>(encoder: self, id: opened.id, level: opened.level))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let opened = containerForCurrentValue(kind: BinaryTag.unkeyed)
        return BinaryUnkeyedEncodingContainer(encoder: self, id: opened.id, level: opened.level)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        BinarySingleValueEncodingContainer(encoder: self)
    }
}

// MARK: - Keyed

struct BinaryKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: BinaryEncoding
    let id: Int
    let level: Int

    var codingPath: [any CodingKey] { encoder.codingPath }

    private func begin(_ key: Key) throws {
        try encoder.prepareWrite(id: id, level: level)
        encoder.encodeKey(key)
    }

    private func begin(rawKey: String) throws {
        try encoder.prepareWrite(id: id, level: level)
        encoder.encodeKey(rawKey)
    }

    mutating func encodeNil(forKey key: Key) throws {
        try begin(key)
        encoder.encodeNil()
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: String, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Double, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Float, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Int, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Int8, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Int16, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Int32, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Int64, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: UInt, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: UInt8, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: UInt16, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: UInt32, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: UInt64, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Int128, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: UInt128, forKey key: Key) throws {
        try begin(key)
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try begin(key)
        encoder.codingPath.append(key)
        defer { encoder.codingPath.removeLast() }
        try encoder.encodeValue(value)
    }

    // Optionals are written as an explicit nil, so keys stay in order and decoding stays on its fast path.
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: Int128?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent(_ value: UInt128?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let opened = openNested(key, kind: BinaryTag.keyed)
        return KeyedEncodingContainer(
            BinaryKeyedEncodingContainer<NestedKey>(encoder: encoder, id: opened.id, level: opened.level)
        )
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let opened = openNested(key, kind: BinaryTag.unkeyed)
        return BinaryUnkeyedEncodingContainer(encoder: encoder, id: opened.id, level: opened.level)
    }

    // Written under the key "super", which need not be one of `Key`'s cases (as JSONEncoder does).
    mutating func superEncoder() -> any Encoder {
        let opened = openNested(rawKey: "super", kind: BinaryTag.keyed)
        return BinarySuperEncoder(encoder: encoder, id: opened.id, level: opened.level, path: encoder.codingPath)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let opened = openNested(rawKey: key.stringValue, kind: BinaryTag.keyed)
        return BinarySuperEncoder(
            encoder: encoder, id: opened.id, level: opened.level, path: encoder.codingPath + [key])
    }

    private func openNested(_ key: Key, kind: UInt8) -> (id: Int, level: Int) {
        openNested(rawKey: key.stringValue, kind: kind)
    }

    private func openNested(rawKey: String, kind: UInt8) -> (id: Int, level: Int) {
        do {
            try begin(rawKey: rawKey)
        } catch {
            encoder.deferredError = error as? EncodingError
        }
        return encoder.openContainer(kind: kind)
    }
}

// MARK: - Unkeyed

struct BinaryUnkeyedEncodingContainer: UnkeyedEncodingContainer {
    let encoder: BinaryEncoding
    let id: Int
    let level: Int
    private(set) var count = 0

    init(encoder: BinaryEncoding, id: Int, level: Int) {
        self.encoder = encoder
        self.id = id
        self.level = level
    }

    var codingPath: [any CodingKey] { encoder.codingPath }

    private mutating func begin() throws {
        try encoder.prepareWrite(id: id, level: level)
        count += 1
    }

    mutating func encodeNil() throws {
        try begin()
        encoder.encodeNil()
    }

    mutating func encode(_ value: Bool) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: String) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Double) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Float) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Int) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Int64) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: UInt8) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: UInt64) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Int128) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: UInt128) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try begin()
        try encoder.encodeValue(value)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        let opened = openNested(kind: BinaryTag.keyed)
        return KeyedEncodingContainer(
            BinaryKeyedEncodingContainer<NestedKey>(encoder: encoder, id: opened.id, level: opened.level)
        )
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let opened = openNested(kind: BinaryTag.unkeyed)
        return BinaryUnkeyedEncodingContainer(encoder: encoder, id: opened.id, level: opened.level)
    }

    mutating func superEncoder() -> any Encoder {
        let opened = openNested(kind: BinaryTag.keyed)
        return BinarySuperEncoder(encoder: encoder, id: opened.id, level: opened.level, path: encoder.codingPath)
    }

    private mutating func openNested(kind: UInt8) -> (id: Int, level: Int) {
        do {
            try begin()
        } catch {
            encoder.deferredError = error as? EncodingError
        }
        return encoder.openContainer(kind: kind)
    }
}

// MARK: - Single value

struct BinarySingleValueEncodingContainer: SingleValueEncodingContainer {
    let encoder: BinaryEncoding

    var codingPath: [any CodingKey] { encoder.codingPath }

    private func begin() throws {
        guard !encoder.current.wroteSingleValue, encoder.current.containerID == 0 else {
            throw EncodingError.invalidValue(
                (),
                EncodingError.Context(
                    codingPath: codingPath,
                    debugDescription: "a single value container was written twice, or after another container"
                )
            )
        }
        encoder.current.wroteSingleValue = true
        encoder.closeContainers(downTo: encoder.current.level)
    }

    mutating func encodeNil() throws {
        try begin()
        encoder.encodeNil()
    }

    mutating func encode(_ value: Bool) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: String) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Double) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Float) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Int) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Int8) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Int16) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Int32) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Int64) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: UInt) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: UInt8) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: UInt16) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: UInt32) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: UInt64) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: Int128) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode(_ value: UInt128) throws {
        try begin()
        value.encodeDirect(into: &encoder.bytes)
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try begin()
        try encoder.encodeValue(value)
    }
}

// MARK: - Super encoder

/// The encoder handed out by `superEncoder()`: a keyed container is already open for it; it is turned into
/// whatever kind of container the superclass asks for, as long as nothing has been written into it yet.
final class BinarySuperEncoder: Encoder {
    let encoder: BinaryEncoding
    let id: Int
    let level: Int
    let codingPath: [any CodingKey]

    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(encoder: BinaryEncoding, id: Int, level: Int, path: [any CodingKey]) {
        self.encoder = encoder
        self.id = id
        self.level = level
        self.codingPath = path
    }

    /// The placeholder container, if it is still open and empty.
    private func emptyPlaceholder() -> Int? {
        guard level < encoder.open.count, encoder.open[level].id == id else { return nil }
        encoder.closeContainers(downTo: level + 1)
        let lengthAt = encoder.open[level].lengthAt
        return encoder.bytes.count == lengthAt + 1 ? lengthAt : nil
    }

    private func fail(_ message: String) {
        encoder.deferredError = EncodingError.invalidValue(
            (),
            EncodingError.Context(codingPath: codingPath, debugDescription: message)
        )
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if let lengthAt = emptyPlaceholder() {
            encoder.bytes[lengthAt - 1] = BinaryTag.keyed
        } else if level < encoder.open.count, encoder.open[level].id == id,
            encoder.bytes[encoder.open[level].lengthAt - 1] != BinaryTag.keyed
        {
            fail("a super encoder was asked for a keyed container after writing to an unkeyed one")
        }
        return KeyedEncodingContainer(BinaryKeyedEncodingContainer<Key>(encoder: encoder, id: id, level: level))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if let lengthAt = emptyPlaceholder() {
            encoder.bytes[lengthAt - 1] = BinaryTag.unkeyed
        } else {
            fail("a super encoder was asked for an unkeyed container after writing to another one")
        }
        return BinaryUnkeyedEncodingContainer(encoder: encoder, id: id, level: level)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        if let lengthAt = emptyPlaceholder(), level == encoder.open.count - 1 {
            // Drop the placeholder: the single value is written in its place.
            encoder.open.removeLast()
            encoder.bytes.removeLast(encoder.bytes.count - (lengthAt - 1))
            let state = BinaryEncoding.ValueState(level: encoder.open.count)
            return BinarySuperSingleValueContainer(encoder: encoder, state: state, codingPath: codingPath)
        }
        fail("a super encoder was asked for a single value container after writing to another one")
        return BinarySingleValueEncodingContainer(encoder: encoder)
    }
}

/// A single value container written where a super encoder's placeholder was.
struct BinarySuperSingleValueContainer: SingleValueEncodingContainer {
    let encoder: BinaryEncoding
    let state: BinaryEncoding.ValueState
    let codingPath: [any CodingKey]

    private func write(_ body: (inout BinarySingleValueEncodingContainer) throws -> Void) throws {
        let saved = encoder.current
        encoder.current = state
        defer { encoder.current = saved }
        var inner = BinarySingleValueEncodingContainer(encoder: encoder)
        try body(&inner)
    }

    mutating func encodeNil() throws { try write { try $0.encodeNil() } }
    mutating func encode(_ value: Bool) throws { try write { try $0.encode(value) } }
    mutating func encode(_ value: String) throws { try write { try $0.encode(value) } }
    mutating func encode(_ value: Double) throws { try write { try $0.encode(value) } }
    mutating func encode(_ value: Float) throws { try write { try $0.encode(value) } }
    mutating func encode(_ value: Int) throws { try write { try $0.encode(value) } }
    mutating func encode(_ value: Int8) throws { try write { try $0.encode(value) } }
    mutating func encode(_ value: Int16) throws { try write { try $0.encode(value) } }
    mutating func encode(_ value: Int32) throws { try write { try $0.encode(value) } }
    mutating func encode(_ value: Int64) throws { try write { try $0.encode(value) } }
    mutating func encode(_ value: UInt) throws { try write { try $0.encode(value) } }
    mutating func encode(_ value: UInt8) throws { try write { try $0.encode(value) } }
    mutating func encode(_ value: UInt16) throws { try write { try $0.encode(value) } }
    mutating func encode(_ value: UInt32) throws { try write { try $0.encode(value) } }
    mutating func encode(_ value: UInt64) throws { try write { try $0.encode(value) } }
    mutating func encode<T: Encodable>(_ value: T) throws { try write { try $0.encode(value) } }
}
