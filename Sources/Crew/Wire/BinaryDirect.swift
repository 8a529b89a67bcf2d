internal import FoundationEssentials

#if !_endian(little)
    #error("Crew's binary format copies arrays of numbers as they are in memory: it needs a little-endian machine")
#endif

// The direct forms of the standard library's scalar types, strings, byte blobs and arrays of numbers.

extension Bool: BinaryDirectCodable {
    @usableFromInline
    func encodeDirect(into bytes: inout [UInt8]) {
        bytes.append(self ? BinaryTag.trueValue : BinaryTag.falseValue)
    }

    @usableFromInline
    static func decodeDirect(_ reader: ByteReader, start: Int, end: Int) throws(BinaryFormatError) -> Bool? {
        switch reader.bytes[start] {
        case BinaryTag.trueValue: true
        case BinaryTag.falseValue: false
        default: nil
        }
    }
}

extension String: BinaryDirectCodable {
    @usableFromInline
    func encodeDirect(into bytes: inout [UInt8]) {
        bytes.append(BinaryTag.string)
        var copy = self
        copy.withUTF8 { utf8 in
            bytes.appendVarint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    @usableFromInline
    static func decodeDirect(_ reader: ByteReader, start: Int, end: Int) throws(BinaryFormatError) -> String? {
        guard reader.bytes[start] == BinaryTag.string else { return nil }
        var i = start + 1
        let n = try reader.length(&i, end: end)
        let decoded: String? = reader.bytes.withUnsafeBufferPointer { buffer in
            String(validating: UnsafeBufferPointer(rebasing: buffer[i..<i + n]), as: UTF8.self)
        }
        guard let decoded else { throw BinaryFormatError(message: "invalid UTF-8 in a string at offset \(i)") }
        return decoded
    }
}

/// Integers: non-negative values as a small integer or an unsigned varint, negative ones as a zigzag varint.
@usableFromInline
protocol BinaryInteger64: FixedWidthInteger, BinaryDirectCodable {}

extension BinaryInteger64 {
    @usableFromInline
    func encodeDirect(into bytes: inout [UInt8]) {
        if self >= 0 {
            if self < 0x80 {
                bytes.append(BinaryTag.smallIntFlag | UInt8(truncatingIfNeeded: self))
            } else {
                bytes.append(BinaryTag.unsigned)
                bytes.appendVarint(UInt64(truncatingIfNeeded: self))
            }
        } else {
            bytes.append(BinaryTag.signed)
            bytes.appendVarint(zigzag(Int64(truncatingIfNeeded: self)))
        }
    }

    @usableFromInline
    static func decodeDirect(_ reader: ByteReader, start: Int, end: Int) throws(BinaryFormatError) -> Self? {
        let tag = reader.bytes[start]
        var i = start + 1
        let converted: Self?
        switch tag {
        case BinaryTag.smallIntFlag...0xFF:
            converted = Self(exactly: tag & 0x7F)
        case BinaryTag.unsigned:
            converted = Self(exactly: try reader.varint(&i, end: end))
        case BinaryTag.signed:
            converted = Self(exactly: unzigzag(try reader.varint(&i, end: end)))
        default:
            return nil
        }
        guard let converted else {
            throw BinaryFormatError(message: "integer at offset \(start) does not fit in \(Self.self)")
        }
        return converted
    }
}

extension Int: BinaryInteger64 {}
extension Int8: BinaryInteger64 {}
extension Int16: BinaryInteger64 {}
extension Int32: BinaryInteger64 {}
extension Int64: BinaryInteger64 {}
extension UInt: BinaryInteger64 {}
extension UInt8: BinaryInteger64 {}
extension UInt16: BinaryInteger64 {}
extension UInt32: BinaryInteger64 {}
extension UInt64: BinaryInteger64 {}

extension Int128: BinaryDirectCodable {
    @usableFromInline
    func encodeDirect(into bytes: inout [UInt8]) {
        bytes.append(BinaryTag.int128)
        bytes.appendLittleEndian(self)
    }

    @usableFromInline
    static func decodeDirect(_ reader: ByteReader, start: Int, end: Int) throws(BinaryFormatError) -> Int128? {
        guard reader.bytes[start] == BinaryTag.int128 else {
            return try Int64.decodeDirect(reader, start: start, end: end).map { Int128($0) }
        }
        var i = start + 1
        return try reader.fixed(Int128.self, &i, end: end)
    }
}

extension UInt128: BinaryDirectCodable {
    @usableFromInline
    func encodeDirect(into bytes: inout [UInt8]) {
        bytes.append(BinaryTag.uint128)
        bytes.appendLittleEndian(self)
    }

    @usableFromInline
    static func decodeDirect(_ reader: ByteReader, start: Int, end: Int) throws(BinaryFormatError) -> UInt128? {
        guard reader.bytes[start] == BinaryTag.uint128 else {
            return try UInt64.decodeDirect(reader, start: start, end: end).map { UInt128($0) }
        }
        var i = start + 1
        return try reader.fixed(UInt128.self, &i, end: end)
    }
}

extension Float: BinaryDirectCodable {
    @usableFromInline
    func encodeDirect(into bytes: inout [UInt8]) {
        bytes.append(BinaryTag.float32)
        bytes.appendLittleEndian(bitPattern)
    }

    @usableFromInline
    static func decodeDirect(_ reader: ByteReader, start: Int, end: Int) throws(BinaryFormatError) -> Float? {
        var i = start + 1
        switch reader.bytes[start] {
        case BinaryTag.float32:
            return Float(bitPattern: try reader.fixed(UInt32.self, &i, end: end))
        case BinaryTag.float64:
            let double = Double(bitPattern: try reader.fixed(UInt64.self, &i, end: end))
            let narrowed = Float(double)
            guard narrowed.isFinite || !double.isFinite else {
                throw BinaryFormatError(message: "\(double) at offset \(start) does not fit in Float")
            }
            return narrowed
        default:
            return nil
        }
    }
}

extension Double: BinaryDirectCodable {
    @usableFromInline
    func encodeDirect(into bytes: inout [UInt8]) {
        bytes.append(BinaryTag.float64)
        bytes.appendLittleEndian(bitPattern)
    }

    @usableFromInline
    static func decodeDirect(_ reader: ByteReader, start: Int, end: Int) throws(BinaryFormatError) -> Double? {
        var i = start + 1
        switch reader.bytes[start] {
        case BinaryTag.float64:
            return Double(bitPattern: try reader.fixed(UInt64.self, &i, end: end))
        case BinaryTag.float32:
            return Double(Float(bitPattern: try reader.fixed(UInt32.self, &i, end: end)))
        default:
            return nil
        }
    }
}

/// A direct form for a type from a module Crew imports privately (`Data`): the same requirements as
/// `BinaryDirectCodable`, which inlinable code checks, while this is checked out of line by the encoder and
/// decoder objects.
protocol BinaryDirectPrivate {
    func encodeDirect(into bytes: inout [UInt8])
    static func decodeDirect(_ reader: ByteReader, start: Int, end: Int) throws(BinaryFormatError) -> Self?
}

extension Data: BinaryDirectPrivate {
    func encodeDirect(into bytes: inout [UInt8]) {
        bytes.append(BinaryTag.bytes)
        bytes.appendVarint(UInt64(count))
        bytes.append(contentsOf: self)
    }

    static func decodeDirect(_ reader: ByteReader, start: Int, end: Int) throws(BinaryFormatError) -> Data? {
        guard reader.bytes[start] == BinaryTag.bytes else { return nil }
        var i = start + 1
        let n = try reader.length(&i, end: end)
        return Data(reader.bytes[i..<i + n])
    }
}

/// Number types whose arrays are written as one copy of their memory (tag 0x0B; `[UInt8]` as bytes, 0x08).
protocol BinaryPackable: BinaryDirectCodable, BitwiseCopyable {
    static var packedKind: PackedKind? { get }
}

extension Int: BinaryPackable { static var packedKind: PackedKind? { .int64 } }
extension Int8: BinaryPackable { static var packedKind: PackedKind? { .int8 } }
extension Int16: BinaryPackable { static var packedKind: PackedKind? { .int16 } }
extension Int32: BinaryPackable { static var packedKind: PackedKind? { .int32 } }
extension Int64: BinaryPackable { static var packedKind: PackedKind? { .int64 } }
extension UInt: BinaryPackable { static var packedKind: PackedKind? { .uint64 } }
extension UInt8: BinaryPackable { static var packedKind: PackedKind? { nil } }
extension UInt16: BinaryPackable { static var packedKind: PackedKind? { .uint16 } }
extension UInt32: BinaryPackable { static var packedKind: PackedKind? { .uint32 } }
extension UInt64: BinaryPackable { static var packedKind: PackedKind? { .uint64 } }
extension Float: BinaryPackable { static var packedKind: PackedKind? { .float32 } }
extension Double: BinaryPackable { static var packedKind: PackedKind? { .float64 } }

extension BinaryPackable {
    /// Writes the memory of a run of these numbers as a packed array (bytes for `UInt8`).
    static func encodePacked(_ raw: UnsafeRawBufferPointer, into bytes: inout [UInt8]) {
        if let kind = packedKind {
            bytes.append(BinaryTag.packed)
            bytes.appendVarint(UInt64(raw.count + 1))
            bytes.append(kind.rawValue)
        } else {
            bytes.append(BinaryTag.bytes)
            bytes.appendVarint(UInt64(raw.count))
        }
        bytes.append(contentsOf: raw)
    }
}

extension Array: BinaryDirectCodable where Element: BinaryPackable {
    @usableFromInline
    func encodeDirect(into bytes: inout [UInt8]) {
        withUnsafeBytes { Element.encodePacked($0, into: &bytes) }
    }

    @usableFromInline
    static func decodeDirect(_ reader: ByteReader, start: Int, end: Int) throws(BinaryFormatError) -> [Element]? {
        var i = start + 1
        let tag = reader.bytes[start]
        let count: Int
        if let kind = Element.packedKind {
            guard tag == BinaryTag.packed else { return nil }
            let length = try reader.length(&i, end: end)
            guard length >= 1 else { throw BinaryFormatError(message: "packed array without a kind at \(start)") }
            guard reader.bytes[i] == kind.rawValue else {
                throw BinaryFormatError(message: "packed array at offset \(start) does not hold \(Element.self)")
            }
            i += 1
            guard (length - 1) % kind.size == 0 else {
                throw BinaryFormatError(message: "packed array at offset \(start) has a partial element")
            }
            count = (length - 1) / kind.size
        } else {
            guard tag == BinaryTag.bytes else { return nil }
            count = try reader.length(&i, end: end)
        }
        let byteCount = count * MemoryLayout<Element>.stride
        let from = i
        return [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            reader.bytes.withUnsafeBytes { src in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: src[from..<from + byteCount])
                )
            }
            initialized = count
        }
    }
}

extension ArraySlice: BinaryDirectCodable where Element: BinaryPackable {
    // A slice is written exactly as the array of its elements (so that a chunk of an array travels without
    // being copied into an array first), and read back as one.
    @usableFromInline
    func encodeDirect(into bytes: inout [UInt8]) {
        withUnsafeBytes { Element.encodePacked($0, into: &bytes) }
    }

    @usableFromInline
    static func decodeDirect(_ reader: ByteReader, start: Int, end: Int) throws(BinaryFormatError) -> ArraySlice<
        Element
    >? {
        try [Element].decodeDirect(reader, start: start, end: end).map { $0[...] }
    }
}
