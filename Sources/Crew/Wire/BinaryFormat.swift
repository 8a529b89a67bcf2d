// Crew's binary value format: a compact, self-delimiting encoding of any Codable value.
//
// Every value starts with a tag byte:
//
//   0x00 nil            0x01 false            0x02 true
//   0x03 unsigned integer, LEB128 varint       0x04 signed integer, zigzag LEB128 varint
//   0x05 Float, 4 bytes little-endian          0x06 Double, 8 bytes little-endian
//   0x07 String: varint byte count + UTF-8     0x08 bytes (Data, [UInt8]): varint count + raw bytes
//   0x09 unkeyed container: varint byte length + values
//   0x0A keyed container: varint byte length + entries (varint key length + 1, UTF-8 key, value)
//   0x0B packed array of a trivial number type: varint byte length + element kind byte + raw little-endian
//   0x0C Int128, 16 bytes little-endian        0x0D UInt128, 16 bytes little-endian
//   0x80 | n: the unsigned integer n (0...127) in a single byte
//
// Containers carry their byte length, so any value can be skipped in O(1) and a decoder never reads past the
// container it is in. Keys are written in order as strings, so the common in-order decode compares bytes
// and nothing else, and decoding by key in any order, `allKeys` and `contains` still work.

@usableFromInline
enum BinaryTag {
    static let null: UInt8 = 0x00
    static let falseValue: UInt8 = 0x01
    static let trueValue: UInt8 = 0x02
    static let unsigned: UInt8 = 0x03
    static let signed: UInt8 = 0x04
    static let float32: UInt8 = 0x05
    static let float64: UInt8 = 0x06
    static let string: UInt8 = 0x07
    static let bytes: UInt8 = 0x08
    static let unkeyed: UInt8 = 0x09
    static let keyed: UInt8 = 0x0A
    static let packed: UInt8 = 0x0B
    static let int128: UInt8 = 0x0C
    static let uint128: UInt8 = 0x0D
    static let smallIntFlag: UInt8 = 0x80

    static func name(_ tag: UInt8) -> String {
        switch tag {
        case null: "nil"
        case falseValue, trueValue: "Bool"
        case unsigned, signed, smallIntFlag...0xFF: "integer"
        case float32: "Float"
        case float64: "Double"
        case string: "String"
        case bytes: "bytes"
        case unkeyed: "unkeyed container"
        case keyed: "keyed container"
        case packed: "packed array"
        case int128: "Int128"
        case uint128: "UInt128"
        default: "unknown tag 0x\(String(tag, radix: 16))"
        }
    }
}

/// The element kinds of a packed array (tag 0x0B).
@usableFromInline
enum PackedKind: UInt8 {
    case int8 = 1
    case int16, int32, int64
    case uint16 = 6
    case uint32, uint64, float32, float64

    var size: Int {
        switch self {
        case .int8: 1
        case .int16, .uint16: 2
        case .int32, .uint32, .float32: 4
        case .int64, .uint64, .float64: 8
        }
    }
}

/// Appends varints and fixed-width integers to a byte array.
extension Array where Element == UInt8 {
    @inlinable
    mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(truncatingIfNeeded: v))
    }

    @inlinable
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    @inlinable
    static func varintSize(_ value: UInt64) -> Int {
        var v = value
        var n = 1
        while v >= 0x80 {
            v >>= 7
            n += 1
        }
        return n
    }
}

@inlinable
func zigzag(_ value: Int64) -> UInt64 {
    UInt64(bitPattern: (value << 1) ^ (value >> 63))
}

@inlinable
func unzigzag(_ value: UInt64) -> Int64 {
    Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
}

/// Why a byte sequence is not a valid encoding. Turned into `DecodingError.dataCorrupted` by the decoder.
@usableFromInline
struct BinaryFormatError: Error {
    var message: String
}

/// Bounds-checked reads from a byte array. Every read checks its bounds and throws; nothing here can trap on
/// any input.
@usableFromInline
struct ByteReader {
    let bytes: [UInt8]

    @inline(__always)
    func byte(at index: Int, end: Int) throws(BinaryFormatError) -> UInt8 {
        guard index < end else { throw BinaryFormatError(message: "unexpected end of data at offset \(index)") }
        return bytes[index]
    }

    /// Reads an unsigned LEB128 varint at `index`, advancing it.
    @inline(__always)
    func varint(_ index: inout Int, end: Int) throws(BinaryFormatError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard index < end else { throw BinaryFormatError(message: "truncated varint at offset \(index)") }
            let b = bytes[index]
            index += 1
            if shift == 63 && b > 1 {
                throw BinaryFormatError(message: "varint overflows 64 bits at offset \(index - 1)")
            }
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
            if shift > 63 { throw BinaryFormatError(message: "varint too long at offset \(index - 1)") }
        }
    }

    /// Reads a varint that is a length of something that must fit between `index` and `end`.
    @inline(__always)
    func length(_ index: inout Int, end: Int) throws(BinaryFormatError) -> Int {
        let raw = try varint(&index, end: end)
        guard raw <= UInt64(end - index) else {
            throw BinaryFormatError(message: "length \(raw) at offset \(index) runs past the end of its container")
        }
        return Int(raw)
    }

    func fixed<T: FixedWidthInteger>(_: T.Type, _ index: inout Int, end: Int) throws(BinaryFormatError) -> T {
        let size = MemoryLayout<T>.size
        guard end - index >= size else { throw BinaryFormatError(message: "truncated \(T.self) at offset \(index)") }
        var value = T.zero
        withUnsafeMutableBytes(of: &value) { dst in
            bytes.withUnsafeBytes { src in
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[index..<index + size]))
            }
        }
        index += size
        return T(littleEndian: value)
    }

    /// The offset just past the value that starts at `index`. O(1) for every kind of value.
    func valueEnd(at index: Int, end: Int) throws(BinaryFormatError) -> Int {
        var i = index
        let tag = try byte(at: i, end: end)
        i += 1
        switch tag {
        case BinaryTag.null, BinaryTag.falseValue, BinaryTag.trueValue, BinaryTag.smallIntFlag...0xFF:
            return i
        case BinaryTag.unsigned, BinaryTag.signed:
            _ = try varint(&i, end: end)
            return i
        case BinaryTag.float32:
            guard end - i >= 4 else { throw BinaryFormatError(message: "truncated Float at offset \(i)") }
            return i + 4
        case BinaryTag.float64:
            guard end - i >= 8 else { throw BinaryFormatError(message: "truncated Double at offset \(i)") }
            return i + 8
        case BinaryTag.int128, BinaryTag.uint128:
            guard end - i >= 16 else { throw BinaryFormatError(message: "truncated 128-bit integer at offset \(i)") }
            return i + 16
        case BinaryTag.string, BinaryTag.bytes, BinaryTag.unkeyed, BinaryTag.keyed, BinaryTag.packed:
            let n = try length(&i, end: end)
            return i + n
        default:
            throw BinaryFormatError(message: "unknown tag 0x\(String(tag, radix: 16)) at offset \(index)")
        }
    }
}
