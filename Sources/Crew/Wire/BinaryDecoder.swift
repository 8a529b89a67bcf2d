// Over 500 lines: one `Decoder` and its keyed, unkeyed and single-value containers, which share the cursor, the
// bounds checks and the direct forms (BinaryDirect.swift); Swift's decoding protocols need all of them together.

/// Decodes any `Decodable` value from Crew's binary format (see `BinaryFormat.swift`).
///
/// The bytes may come from anywhere: every read is bounds-checked, every length is checked against the
/// container it is in, nesting is limited to ``maxDepth``, and every failure is a `DecodingError`, never a
/// trap. Unknown keys are skipped; keys may come in any order.
@usableFromInline
struct BinaryDecoder {
    /// The deepest nesting of containers accepted; deeper input is rejected before it can exhaust the stack.
    var maxDepth = 128

    @usableFromInline
    init() {}

    init(maxDepth: Int) {
        self.maxDepth = maxDepth
    }

    /// Decodes a `T` from all of `bytes`.
    @usableFromInline
    func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try decode(type, from: bytes, range: bytes.startIndex..<bytes.endIndex)
    }

    /// Decodes a `T` that occupies exactly `range` of `bytes`.
    ///
    /// Inlinable so that, where `T` is known, the check for a direct form is decided when compiling rather than
    /// by a conformance lookup at run time on every call.
    @inlinable
    func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], range: Range<Int>) throws -> T {
        // Numbers, strings, byte blobs and arrays of numbers need no decoder object.
        if let direct = T.self as? any BinaryDirectCodable.Type, !range.isEmpty,
            let value = try Self.decodeDirect(direct, from: bytes, range: range)
        {
            return value as! T  // decodeDirect returns a `direct`, and `direct` is T.
        }
        return try decodeCoded(type, from: bytes, range: range)
    }

    /// A `[UInt8]` read straight from an encoded byte blob in `raw` (tag, length, bytes: as the encoder writes
    /// one), without first copying the encoding into an array.
    @usableFromInline
    static func byteArray(from raw: UnsafeRawBufferPointer) throws -> [UInt8] {
        func corrupted(_ what: String) -> DecodingError {
            .dataCorrupted(DecodingError.Context(codingPath: [], debugDescription: what))
        }
        guard raw.count >= 2, raw[0] == BinaryTag.bytes else {
            // Not a byte blob: the general decoder explains what it is instead.
            return try BinaryDecoder().decode([UInt8].self, from: Array(raw))
        }
        var length: UInt64 = 0
        var shift: UInt64 = 0
        var i = 1
        while true {
            guard i < raw.count, shift <= 63 else { throw corrupted("truncated length of a byte array") }
            let b = raw[i]
            i += 1
            length |= UInt64(b & 0x7F) << shift
            if b < 0x80 { break }
            shift += 7
        }
        guard length == UInt64(raw.count - i) else {
            throw corrupted("a byte array of \(length) bytes in \(raw.count - i) bytes")
        }
        return Array(UnsafeRawBufferPointer(rebasing: raw[i...]))
    }

    /// The value at `range` in `type`'s direct form, or nil if it is not in that form.
    @usableFromInline
    static func decodeDirect(
        _ type: any BinaryDirectCodable.Type,
        from bytes: [UInt8],
        range: Range<Int>
    ) throws -> (any BinaryDirectCodable)? {
        let reader = ByteReader(bytes: bytes)
        do {
            let end = try reader.valueEnd(at: range.lowerBound, end: range.upperBound)
            guard end == range.upperBound else { return nil }
            return try type.decodeDirect(reader, start: range.lowerBound, end: end)
        } catch {
            throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: [], debugDescription: error.message))
        }
    }

    /// Decodes a `T` through the `Decoder` protocol.
    @usableFromInline
    func decodeCoded<T: Decodable>(_ type: T.Type, from bytes: [UInt8], range: Range<Int>) throws -> T {
        let decoder = BinaryDecoding(bytes: bytes, maxDepth: maxDepth)
        let end = try decoder.checked { () throws(BinaryFormatError) in
            try decoder.reader.valueEnd(at: range.lowerBound, end: range.upperBound)
        }
        guard end == range.upperBound else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: [],
                    debugDescription: "\(range.upperBound - end) unexpected bytes after the value"
                )
            )
        }
        return try decoder.decodeValue(type, start: range.lowerBound, end: end)
    }
}

final class BinaryDecoding: Decoder {
    let reader: ByteReader
    let maxDepth: Int
    var depth = 0
    var codingPath: [any CodingKey] = []
    /// The value that `container(keyedBy:)`, `unkeyedContainer()` and `singleValueContainer()` refer to.
    var valueStart = 0
    var valueEnd = 0
    /// Per nesting depth: the start of the keyed container last used there, and where its next entry is.
    /// Keyed containers use it to find the next key without searching (decoding follows encoding order).
    var keyedHintStart: [Int] = []
    var keyedHintCursor: [Int] = []

    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(bytes: [UInt8], maxDepth: Int) {
        self.reader = ByteReader(bytes: bytes)
        self.maxDepth = maxDepth
    }

    func corrupted(_ message: String) -> DecodingError {
        DecodingError.dataCorrupted(DecodingError.Context(codingPath: codingPath, debugDescription: message))
    }

    func mismatch(_ type: Any.Type, at start: Int) -> DecodingError {
        let found = BinaryTag.name(reader.bytes[start])
        if reader.bytes[start] == BinaryTag.null {
            return DecodingError.valueNotFound(
                type,
                DecodingError.Context(codingPath: codingPath, debugDescription: "expected \(type), found nil")
            )
        }
        return DecodingError.typeMismatch(
            type,
            DecodingError.Context(codingPath: codingPath, debugDescription: "expected \(type), found \(found)")
        )
    }

    /// Runs a format-level read and turns its error into a `DecodingError`.
    @inline(__always)
    func checked<R>(_ body: () throws(BinaryFormatError) -> R) throws -> R {
        do {
            return try body()
        } catch {
            throw corrupted(error.message)
        }
    }

    /// Decodes the value at `start..<end` (its extent already checked) as a `T`.
    func decodeValue<T: Decodable>(_ type: T.Type, start: Int, end: Int) throws -> T {
        if let direct = T.self as? any BinaryDirectCodable.Type {
            if let value = try checked({ () throws(BinaryFormatError) in
                try direct.decodeDirect(reader, start: start, end: end)
            }) {
                return value as! T  // decodeDirect returns Self, and Self is T.
            }
        }
        if let direct = T.self as? any BinaryDirectPrivate.Type {
            if let value = try checked({ () throws(BinaryFormatError) in
                try direct.decodeDirect(reader, start: start, end: end)
            }) {
                return value as! T
            }
        }
        guard depth < maxDepth else { throw corrupted("containers nested deeper than \(maxDepth) levels") }
        let savedStart = valueStart
        let savedEnd = valueEnd
        valueStart = start
        valueEnd = end
        depth += 1
        defer {
            depth -= 1
            valueStart = savedStart
            valueEnd = savedEnd
        }
        return try T(from: self)
    }

    /// Decodes a primitive through its direct form, or throws a type mismatch.
    @inline(__always)
    func decodePrimitive<T: BinaryDirectCodable>(_ type: T.Type, start: Int, end: Int) throws -> T {
        if let value = try checked({ () throws(BinaryFormatError) in
            try T.decodeDirect(reader, start: start, end: end)
        }) {
            return value
        }
        throw mismatch(T.self, at: start)
    }

    /// The content range of the container at `start..<end`, if the value there has tag `kind`.
    func containerContent(kind: UInt8, start: Int, end: Int, type: Any.Type) throws -> Range<Int> {
        guard reader.bytes[start] == kind else { throw mismatch(type, at: start) }
        var i = start + 1
        _ = try checked { () throws(BinaryFormatError) in try reader.varint(&i, end: end) }
        return i..<end
    }

    func keyedContainer<Key: CodingKey>(keyedBy type: Key.Type, start: Int, end: Int) throws
        -> KeyedDecodingContainer<Key>
    {
        let content = try containerContent(
            kind: BinaryTag.keyed,
            start: start,
            end: end,
            type: [String: Any].self
        )
        while keyedHintStart.count <= depth {
            keyedHintStart.append(-1)
            keyedHintCursor.append(0)
        }
        keyedHintStart[depth] = content.lowerBound
        keyedHintCursor[depth] = content.lowerBound
        return KeyedDecodingContainer(
            BinaryKeyedDecodingContainer<Key>(decoder: self, content: content, depth: depth, codingPath: codingPath)
        )
    }

    func unkeyedContainer(start: Int, end: Int) throws -> any UnkeyedDecodingContainer {
        if reader.bytes[start] == BinaryTag.packed {
            return try BinaryPackedDecodingContainer(decoder: self, start: start, end: end, codingPath: codingPath)
        }
        let content = try containerContent(kind: BinaryTag.unkeyed, start: start, end: end, type: [Any].self)
        return BinaryUnkeyedDecodingContainer(decoder: self, content: content, depth: depth, codingPath: codingPath)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        try keyedContainer(keyedBy: type, start: valueStart, end: valueEnd)
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try unkeyedContainer(start: valueStart, end: valueEnd)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        BinarySingleValueDecodingContainer(decoder: self, start: valueStart, end: valueEnd, codingPath: codingPath)
    }
}

// MARK: - Keyed

struct BinaryKeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: BinaryDecoding
    let content: Range<Int>
    let depth: Int
    let codingPath: [any CodingKey]

    private var reader: ByteReader { decoder.reader }

    /// Reads the entry at `i`: its key bytes and its value's extent.
    private func entry(at i: Int) throws(BinaryFormatError) -> (key: Range<Int>, value: Range<Int>) {
        var j = i
        let header = try reader.varint(&j, end: content.upperBound)
        guard header >= 1, header - 1 <= UInt64(content.upperBound - j) else {
            throw BinaryFormatError(message: "bad key length at offset \(i)")
        }
        let key = j..<j + Int(header - 1)
        let valueEnd = try reader.valueEnd(at: key.upperBound, end: content.upperBound)
        return (key, key.upperBound..<valueEnd)
    }

    private func matches(_ key: String, _ range: Range<Int>) -> Bool {
        var string = key
        return string.withUTF8 { utf8 in
            guard utf8.count == range.count else { return false }
            return reader.bytes.withUnsafeBufferPointer { bytes in
                utf8.elementsEqual(UnsafeBufferPointer(rebasing: bytes[range]))
            }
        }
    }

    /// Finds the value for `key`: first at the entry after the last one used, then anywhere. `advance` moves
    /// the hint past the value found (not done by `contains` and `decodeNil`, which are followed by a decode).
    private func find(_ key: Key, advance: Bool = true) throws -> Range<Int>? {
        try find(raw: key.stringValue, advance: advance)
    }

    private func find(raw key: String, advance: Bool = true) throws -> Range<Int>? {
        try decoder.checked { () throws(BinaryFormatError) -> Range<Int>? in
            let hinted =
                depth < decoder.keyedHintStart.count && decoder.keyedHintStart[depth] == content.lowerBound
                ? decoder.keyedHintCursor[depth] : content.lowerBound
            if hinted < content.upperBound {
                let e = try entry(at: hinted)
                if matches(key, e.key) {
                    if advance { remember(next: e.value.upperBound) }
                    return e.value
                }
            }
            var i = content.lowerBound
            while i < content.upperBound {
                let e = try entry(at: i)
                if matches(key, e.key) {
                    if advance { remember(next: e.value.upperBound) }
                    return e.value
                }
                i = e.value.upperBound
            }
            return nil
        }
    }

    private func remember(next: Int) {
        guard depth < decoder.keyedHintStart.count else { return }
        decoder.keyedHintStart[depth] = content.lowerBound
        decoder.keyedHintCursor[depth] = next
    }

    private func value(_ key: Key, advance: Bool = true) throws -> Range<Int> {
        guard let range = try find(key, advance: advance) else {
            throw DecodingError.keyNotFound(
                key,
                DecodingError.Context(
                    codingPath: codingPath, debugDescription: "no value for key \"\(key.stringValue)\"")
            )
        }
        return range
    }

    var allKeys: [Key] {
        var keys: [Key] = []
        var i = content.lowerBound
        while i < content.upperBound {
            guard let e = try? entry(at: i) else { break }
            let name = reader.bytes.withUnsafeBufferPointer { bytes in
                String(validating: UnsafeBufferPointer(rebasing: bytes[e.key]), as: UTF8.self)
            }
            if let name, let key = Key(stringValue: name) { keys.append(key) }
            i = e.value.upperBound
        }
        return keys
    }

    func contains(_ key: Key) -> Bool {
        (try? find(key, advance: false)) != nil
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        let range = try value(key, advance: false)
        guard reader.bytes[range.lowerBound] == BinaryTag.null else { return false }
        remember(next: range.upperBound)
        return true
    }

    private func primitiveIfPresent<T: BinaryDirectCodable>(_ type: T.Type, _ key: Key) throws -> T? {
        guard let range = try find(key), reader.bytes[range.lowerBound] != BinaryTag.null else { return nil }
        do {
            return try decoder.decodePrimitive(type, start: range.lowerBound, end: range.upperBound)
        } catch {
            throw error.adding(key)
        }
    }

    private func primitive<T: BinaryDirectCodable>(_ type: T.Type, _ key: Key) throws -> T {
        let range = try value(key)
        do {
            return try decoder.decodePrimitive(type, start: range.lowerBound, end: range.upperBound)
        } catch {
            throw error.adding(key)
        }
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try primitive(type, key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try primitive(type, key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try primitive(type, key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try primitive(type, key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try primitive(type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try primitive(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try primitive(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try primitive(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try primitive(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try primitive(type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try primitive(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try primitive(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try primitive(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try primitive(type, key) }
    func decode(_ type: Int128.Type, forKey key: Key) throws -> Int128 { try primitive(type, key) }
    func decode(_ type: UInt128.Type, forKey key: Key) throws -> UInt128 { try primitive(type, key) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let range = try value(key)
        decoder.codingPath.append(key)
        defer { decoder.codingPath.removeLast() }
        return try decoder.decodeValue(type, start: range.lowerBound, end: range.upperBound)
    }

    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent(_ type: Int128.Type, forKey key: Key) throws -> Int128? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent(_ type: UInt128.Type, forKey key: Key) throws -> UInt128? {
        try primitiveIfPresent(type, key)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let range = try find(key), reader.bytes[range.lowerBound] != BinaryTag.null else { return nil }
        decoder.codingPath.append(key)
        defer { decoder.codingPath.removeLast() }
        return try decoder.decodeValue(type, start: range.lowerBound, end: range.upperBound)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let range = try value(key)
        guard decoder.depth < decoder.maxDepth else { throw decoder.corrupted("containers nested too deeply") }
        // Nested containers live one level deeper than this one for the key-order hint.
        decoder.depth += 1
        defer { decoder.depth -= 1 }
        return try decoder.keyedContainer(keyedBy: type, start: range.lowerBound, end: range.upperBound)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let range = try value(key)
        return try decoder.unkeyedContainer(start: range.lowerBound, end: range.upperBound)
    }

    func superDecoder() throws -> any Decoder {
        guard let range = try find(raw: "super") else {
            throw DecodingError.keyNotFound(
                SuperKey(),
                DecodingError.Context(codingPath: codingPath, debugDescription: "no value for key \"super\"")
            )
        }
        return BinarySuperDecoder(decoder: decoder, start: range.lowerBound, end: range.upperBound, path: codingPath)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        let range = try value(key)
        return BinarySuperDecoder(
            decoder: decoder, start: range.lowerBound, end: range.upperBound, path: codingPath + [key])
    }
}

/// The key `superDecoder()` reads, which need not be one of the container's keys.
struct SuperKey: CodingKey {
    var stringValue: String { "super" }
    var intValue: Int? { nil }
    init() {}
    init?(stringValue: String) { nil }
    init?(intValue: Int) { nil }
}

extension Error {
    /// Adds `key` to the coding path of a `DecodingError` thrown for a value under that key.
    func adding(_ key: some CodingKey) -> any Error {
        guard let error = self as? DecodingError else { return self }
        func extend(_ context: DecodingError.Context) -> DecodingError.Context {
            DecodingError.Context(codingPath: context.codingPath + [key], debugDescription: context.debugDescription)
        }
        switch error {
        case .typeMismatch(let type, let context): return DecodingError.typeMismatch(type, extend(context))
        case .valueNotFound(let type, let context): return DecodingError.valueNotFound(type, extend(context))
        case .dataCorrupted(let context): return DecodingError.dataCorrupted(extend(context))
        default: return error
        }
    }
}

// MARK: - Unkeyed

struct BinaryUnkeyedDecodingContainer: UnkeyedDecodingContainer {
    let decoder: BinaryDecoding
    let content: Range<Int>
    let depth: Int
    let codingPath: [any CodingKey]
    private(set) var currentIndex = 0
    private var cursor: Int
    private var countCache: Int?

    init(decoder: BinaryDecoding, content: Range<Int>, depth: Int, codingPath: [any CodingKey]) {
        self.decoder = decoder
        self.content = content
        self.depth = depth
        self.codingPath = codingPath
        self.cursor = content.lowerBound
    }

    var count: Int? {
        var n = 0
        var i = content.lowerBound
        while i < content.upperBound {
            guard let next = try? decoder.reader.valueEnd(at: i, end: content.upperBound) else { return nil }
            i = next
            n += 1
        }
        return n
    }

    var isAtEnd: Bool { cursor >= content.upperBound }

    private mutating func next(_ type: Any.Type) throws -> Range<Int> {
        guard cursor < content.upperBound else {
            throw DecodingError.valueNotFound(
                type,
                DecodingError.Context(codingPath: codingPath, debugDescription: "unkeyed container is at its end")
            )
        }
        let start = cursor
        let end = try decoder.checked { () throws(BinaryFormatError) in
            try decoder.reader.valueEnd(at: start, end: content.upperBound)
        }
        return start..<end
    }

    private mutating func advance(to range: Range<Int>) {
        cursor = range.upperBound
        currentIndex += 1
    }

    mutating func decodeNil() throws -> Bool {
        let range = try next(Never.self)
        guard decoder.reader.bytes[range.lowerBound] == BinaryTag.null else { return false }
        advance(to: range)
        return true
    }

    private mutating func primitive<T: BinaryDirectCodable>(_ type: T.Type) throws -> T {
        let range = try next(type)
        let value = try decoder.decodePrimitive(type, start: range.lowerBound, end: range.upperBound)
        advance(to: range)
        return value
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try primitive(type) }
    mutating func decode(_ type: String.Type) throws -> String { try primitive(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try primitive(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try primitive(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try primitive(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try primitive(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try primitive(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try primitive(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try primitive(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try primitive(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try primitive(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try primitive(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try primitive(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try primitive(type) }
    mutating func decode(_ type: Int128.Type) throws -> Int128 { try primitive(type) }
    mutating func decode(_ type: UInt128.Type) throws -> UInt128 { try primitive(type) }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let range = try next(type)
        let value = try decoder.decodeValue(type, start: range.lowerBound, end: range.upperBound)
        advance(to: range)
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let range = try next(type)
        guard decoder.depth < decoder.maxDepth else { throw decoder.corrupted("containers nested too deeply") }
        decoder.depth += 1
        defer { decoder.depth -= 1 }
        let container = try decoder.keyedContainer(keyedBy: type, start: range.lowerBound, end: range.upperBound)
        advance(to: range)
        return container
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let range = try next([Any].self)
        let container = try decoder.unkeyedContainer(start: range.lowerBound, end: range.upperBound)
        advance(to: range)
        return container
    }

    mutating func superDecoder() throws -> any Decoder {
        let range = try next(Any.self)
        advance(to: range)
        return BinarySuperDecoder(decoder: decoder, start: range.lowerBound, end: range.upperBound, path: codingPath)
    }
}

/// Elements of a packed array of numbers, read one by one (when an array of numbers is decoded as something
/// other than an array of that number type).
struct BinaryPackedDecodingContainer: UnkeyedDecodingContainer {
    let decoder: BinaryDecoding
    let codingPath: [any CodingKey]
    let kind: PackedKind
    let elements: Int
    let base: Int
    private(set) var currentIndex = 0

    init(decoder: BinaryDecoding, start: Int, end: Int, codingPath: [any CodingKey]) throws {
        self.decoder = decoder
        self.codingPath = codingPath
        var i = start + 1
        let length = try decoder.checked { () throws(BinaryFormatError) in try decoder.reader.length(&i, end: end) }
        guard length >= 1, let kind = PackedKind(rawValue: decoder.reader.bytes[i]), (length - 1) % kind.size == 0
        else { throw decoder.corrupted("malformed packed array at offset \(start)") }
        self.kind = kind
        self.elements = (length - 1) / kind.size
        self.base = i + 1
    }

    var count: Int? { elements }
    var isAtEnd: Bool { currentIndex >= elements }

    mutating func decodeNil() throws -> Bool { false }

    private mutating func number<T: BinaryInteger64>(_ type: T.Type) throws -> T {
        guard !isAtEnd else { throw decoder.corrupted("packed array is at its end") }
        var i = base + currentIndex * kind.size
        let reader = decoder.reader
        let end = i + kind.size
        let converted: T? = try decoder.checked { () throws(BinaryFormatError) -> T? in
            switch kind {
            case .int8: T(exactly: try reader.fixed(Int8.self, &i, end: end))
            case .int16: T(exactly: try reader.fixed(Int16.self, &i, end: end))
            case .int32: T(exactly: try reader.fixed(Int32.self, &i, end: end))
            case .int64: T(exactly: try reader.fixed(Int64.self, &i, end: end))
            case .uint16: T(exactly: try reader.fixed(UInt16.self, &i, end: end))
            case .uint32: T(exactly: try reader.fixed(UInt32.self, &i, end: end))
            case .uint64: T(exactly: try reader.fixed(UInt64.self, &i, end: end))
            case .float32, .float64: nil
            }
        }
        guard let converted else {
            throw DecodingError.typeMismatch(
                T.self, .init(codingPath: codingPath, debugDescription: "packed element is not a \(T.self)"))
        }
        currentIndex += 1
        return converted
    }

    private mutating func float() throws -> Double {
        guard !isAtEnd else { throw decoder.corrupted("packed array is at its end") }
        var i = base + currentIndex * kind.size
        let reader = decoder.reader
        let end = i + kind.size
        let value: Double? = try decoder.checked { () throws(BinaryFormatError) -> Double? in
            switch kind {
            case .float32: Double(Float(bitPattern: try reader.fixed(UInt32.self, &i, end: end)))
            case .float64: Double(bitPattern: try reader.fixed(UInt64.self, &i, end: end))
            default: nil
            }
        }
        guard let value else {
            throw DecodingError.typeMismatch(
                Double.self,
                .init(codingPath: codingPath, debugDescription: "packed element is not a floating-point number"))
        }
        currentIndex += 1
        return value
    }

    private func notNumber(_ type: Any.Type) -> DecodingError {
        DecodingError.typeMismatch(
            type, .init(codingPath: codingPath, debugDescription: "a packed array holds numbers"))
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { throw notNumber(type) }
    mutating func decode(_ type: String.Type) throws -> String { throw notNumber(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try float() }
    mutating func decode(_ type: Float.Type) throws -> Float { Float(try float()) }
    mutating func decode(_ type: Int.Type) throws -> Int { try number(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try number(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try number(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try number(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try number(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try number(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try number(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try number(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try number(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try number(type) }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        switch type {
        case is Int.Type: return try number(Int.self) as! T
        case is Int8.Type: return try number(Int8.self) as! T
        case is Int16.Type: return try number(Int16.self) as! T
        case is Int32.Type: return try number(Int32.self) as! T
        case is Int64.Type: return try number(Int64.self) as! T
        case is UInt.Type: return try number(UInt.self) as! T
        case is UInt8.Type: return try number(UInt8.self) as! T
        case is UInt16.Type: return try number(UInt16.self) as! T
        case is UInt32.Type: return try number(UInt32.self) as! T
        case is UInt64.Type: return try number(UInt64.self) as! T
        case is Double.Type: return try float() as! T
        case is Float.Type: return Float(try float()) as! T
        default:
            // Another type that reads a number (an optional, a wrapper): give it the element in the general form.
            guard !isAtEnd else { throw decoder.corrupted("packed array is at its end") }
            var i = base + currentIndex * kind.size
            let reader = decoder.reader
            let end = i + kind.size
            var scratch: [UInt8] = []
            try decoder.checked { () throws(BinaryFormatError) in
                switch kind {
                case .int8: Int64(try reader.fixed(Int8.self, &i, end: end)).encodeDirect(into: &scratch)
                case .int16: Int64(try reader.fixed(Int16.self, &i, end: end)).encodeDirect(into: &scratch)
                case .int32: Int64(try reader.fixed(Int32.self, &i, end: end)).encodeDirect(into: &scratch)
                case .int64: try reader.fixed(Int64.self, &i, end: end).encodeDirect(into: &scratch)
                case .uint16: UInt64(try reader.fixed(UInt16.self, &i, end: end)).encodeDirect(into: &scratch)
                case .uint32: UInt64(try reader.fixed(UInt32.self, &i, end: end)).encodeDirect(into: &scratch)
                case .uint64: try reader.fixed(UInt64.self, &i, end: end).encodeDirect(into: &scratch)
                case .float32:
                    Float(bitPattern: try reader.fixed(UInt32.self, &i, end: end)).encodeDirect(into: &scratch)
                case .float64:
                    Double(bitPattern: try reader.fixed(UInt64.self, &i, end: end)).encodeDirect(into: &scratch)
                }
            }
            let value = try BinaryDecoder(maxDepth: max(0, decoder.maxDepth - decoder.depth)).decode(
                T.self, from: scratch)
            currentIndex += 1
            return value
        }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> { throw notNumber(type) }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { throw notNumber([Any].self) }

    mutating func superDecoder() throws -> any Decoder { throw notNumber(Any.self) }
}

// MARK: - Single value

struct BinarySingleValueDecodingContainer: SingleValueDecodingContainer {
    let decoder: BinaryDecoding
    let start: Int
    let end: Int
    let codingPath: [any CodingKey]

    func decodeNil() -> Bool { decoder.reader.bytes[start] == BinaryTag.null }

    private func primitive<T: BinaryDirectCodable>(_ type: T.Type) throws -> T {
        try decoder.decodePrimitive(type, start: start, end: end)
    }

    func decode(_ type: Bool.Type) throws -> Bool { try primitive(type) }
    func decode(_ type: String.Type) throws -> String { try primitive(type) }
    func decode(_ type: Double.Type) throws -> Double { try primitive(type) }
    func decode(_ type: Float.Type) throws -> Float { try primitive(type) }
    func decode(_ type: Int.Type) throws -> Int { try primitive(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try primitive(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try primitive(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try primitive(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try primitive(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try primitive(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try primitive(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try primitive(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try primitive(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try primitive(type) }
    func decode(_ type: Int128.Type) throws -> Int128 { try primitive(type) }
    func decode(_ type: UInt128.Type) throws -> UInt128 { try primitive(type) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try decoder.decodeValue(type, start: start, end: end)
    }
}

// MARK: - Super decoder

final class BinarySuperDecoder: Decoder {
    let decoder: BinaryDecoding
    let start: Int
    let end: Int
    let codingPath: [any CodingKey]

    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(decoder: BinaryDecoding, start: Int, end: Int, path: [any CodingKey]) {
        self.decoder = decoder
        self.start = start
        self.end = end
        self.codingPath = path
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard decoder.depth < decoder.maxDepth else { throw decoder.corrupted("containers nested too deeply") }
        decoder.depth += 1
        defer { decoder.depth -= 1 }
        return try decoder.keyedContainer(keyedBy: type, start: start, end: end)
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try decoder.unkeyedContainer(start: start, end: end)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        BinarySingleValueDecodingContainer(decoder: decoder, start: start, end: end, codingPath: codingPath)
    }
}
