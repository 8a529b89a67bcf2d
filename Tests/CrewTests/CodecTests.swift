import CrewTestHelpers
import Foundation
import PropertyBased
import Testing

@testable import Crew

func roundTrip<T: Codable>(_ value: T) throws -> T {
    let bytes = try BinaryEncoder().encode(value)
    return try BinaryDecoder().decode(T.self, from: bytes)
}

@Suite struct CodecTests {
    @Test func samplesRoundTrip() async {
        await propertyCheck(count: 300, input: Generator { rng in Sample.random(using: &rng) }) { sample throws in
            let decoded = try roundTrip(sample)
            #expect(decoded == sample)
        }
    }

    @Test func integersOfEveryWidthRoundTripAtTheirLimits() async throws {
        await propertyCheck(count: 200, input: Gen.int(), Gen.int8(), Gen.uint64(), Gen.int128()) { a, b, c, d throws in
            let (a2, b2, c2, d2) = (try roundTrip(a), try roundTrip(b), try roundTrip(c), try roundTrip(d))
            #expect(a2 == a && b2 == b && c2 == c && d2 == d)
        }
        for value in [Int.min, Int.max, 0, -1, 127, 128, -64, -65] { #expect(try roundTrip(value) == value) }
        for value in [UInt64.max, 0, 127, 128] { #expect(try roundTrip(value) == value) }
        for value in [Int128.min, Int128.max] { #expect(try roundTrip(value) == value) }
        for value in [UInt128.max, 0] { #expect(try roundTrip(value) == value) }
        #expect(try roundTrip([Int8.min, Int8.max]) == [Int8.min, Int8.max])
        #expect(try roundTrip([UInt16.max]) == [UInt16.max])
    }

    @Test func floatingPointSpecialValues() throws {
        for value in [0.0, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude, .pi] {
            #expect(try roundTrip(value).bitPattern == value.bitPattern)
        }
        #expect(try roundTrip(Double.nan).isNaN)
        #expect(try roundTrip(Float.nan).isNaN)
        #expect(try roundTrip([Float.infinity, -0.0]).map(\.bitPattern) == [Float.infinity, -0.0].map(\.bitPattern))
    }

    @Test func smallValuesAreCompact() throws {
        #expect(try BinaryEncoder().encode(5).count == 1)
        #expect(try BinaryEncoder().encode(true).count == 1)
        #expect(try BinaryEncoder().encode("hi").count == 4)
        // 1000 Ints are one copy of their memory plus a few bytes of header.
        #expect(try BinaryEncoder().encode(Array(0..<1000)).count <= 8000 + 4)
        #expect(try BinaryEncoder().encode(Data(count: 1000)).count <= 1000 + 3)
        struct Point: Codable {
            var x: Int
            var y: Int
        }
        #expect(try BinaryEncoder().encode(Point(x: 1, y: 2)).count == 8)
    }

    @Test func largeContainersPatchTheirLengths() throws {
        let strings = (0..<5000).map { "item \($0)" }
        #expect(try roundTrip(strings) == strings)
        let nested = (0..<300).map { i in (0..<i % 17).map { "\($0)" } }
        #expect(try roundTrip(nested) == nested)
        let dictionary = Dictionary(uniqueKeysWithValues: (0..<2000).map { ("k\($0)", [$0, -$0]) })
        #expect(try roundTrip(dictionary) == dictionary)
    }

    @Test func optionalsAtEveryLevel() throws {
        let values: [Int?] = [nil, 1, nil]
        #expect(try roundTrip(values) == values)
        let single: String? = nil
        #expect(try roundTrip(single) == nil)
        let nested: [String: [Int?]?] = ["a": nil, "b": [nil, 2]]
        #expect(try roundTrip(nested) == nested)
    }

    @Test func classInheritanceWithSuperEncoders() throws {
        class Base: Codable, Equatable {
            var base: Int
            init(base: Int) { self.base = base }
            static func == (a: Base, b: Base) -> Bool { a.base == b.base }
        }
        final class Derived: Base {
            var extra: String
            init(base: Int, extra: String) {
                self.extra = extra
                super.init(base: base)
            }
            enum CodingKeys: String, CodingKey { case extra }
            required init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                extra = try container.decode(String.self, forKey: .extra)
                try super.init(from: container.superDecoder())
            }
            override func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(extra, forKey: .extra)
                try super.encode(to: container.superEncoder())
            }
        }
        let value = try roundTrip(Derived(base: 7, extra: "x"))
        #expect(value.base == 7 && value.extra == "x")

        // A subclass that shares its encoder with its superclass (no super encoder).
        final class Shared: Base {
            var more: Bool = true
            enum CodingKeys: String, CodingKey { case more }
            init() { super.init(base: 3) }
            required init(from decoder: any Decoder) throws {
                more = try decoder.container(keyedBy: CodingKeys.self).decode(Bool.self, forKey: .more)
                try super.init(from: decoder)
            }
            override func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(more, forKey: .more)
                try super.encode(to: encoder)
            }
        }
        let shared = try roundTrip(Shared())
        #expect(shared.base == 3 && shared.more)
    }

    @Test func superEncoderAsSingleValueAndUnkeyed() throws {
        struct Wrapper: Codable, Equatable {
            var values: [Int]
            var name: String
            enum CodingKeys: String, CodingKey { case name }
            init(values: [Int], name: String) {
                self.values = values
                self.name = name
            }
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                name = try String(from: c.superDecoder(forKey: .name))
                values = try [Int](from: c.superDecoder())
            }
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try name.encode(to: c.superEncoder(forKey: .name))
                var inner = c.superEncoder().unkeyedContainer()
                for value in values { try inner.encode(value) }
            }
        }
        let value = Wrapper(values: [1, 2, 3], name: "w")
        #expect(try roundTrip(value) == value)
    }

    @Test func keysMayBeDecodedInAnyOrderAndUnknownKeysAreSkipped() throws {
        struct Wide: Codable {
            var a: Int
            var b: String
            var c: [Int]
            var d: Bool
        }
        struct Narrow: Codable, Equatable {
            var d: Bool
            var b: String
            enum CodingKeys: String, CodingKey { case d, b }
            init(d: Bool, b: String) {
                self.d = d
                self.b = b
            }
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                #expect(c.contains(.d) && c.contains(.b))
                #expect(Set(c.allKeys.map(\.stringValue)) == ["d", "b"])
                d = try c.decode(Bool.self, forKey: .d)
                b = try c.decode(String.self, forKey: .b)
            }
        }
        let bytes = try BinaryEncoder().encode(Wide(a: 1, b: "bee", c: [1, 2], d: true))
        #expect(try BinaryDecoder().decode(Narrow.self, from: bytes) == Narrow(d: true, b: "bee"))
    }

    @Test func aMissingKeyIsKeyNotFound() throws {
        struct Small: Codable { var a: Int }
        struct Big: Codable {
            var a: Int
            var b: Int
        }
        let bytes = try BinaryEncoder().encode(Small(a: 1))
        #expect {
            try BinaryDecoder().decode(Big.self, from: bytes)
        } throws: { error in
            guard case DecodingError.keyNotFound(let key, _) = error else { return false }
            return key.stringValue == "b"
        }
    }

    @Test func aTypeMismatchIsATypedError() throws {
        let bytes = try BinaryEncoder().encode("text")
        #expect { try BinaryDecoder().decode(Int.self, from: bytes) } throws: { error in
            if case DecodingError.typeMismatch = error { return true }
            return false
        }
        let big = try BinaryEncoder().encode(300)
        #expect { try BinaryDecoder().decode(UInt8.self, from: big) } throws: { error in
            if case DecodingError.dataCorrupted = error { return true }
            return false
        }
        let negative = try BinaryEncoder().encode(-1)
        #expect(throws: DecodingError.self) { try BinaryDecoder().decode(UInt.self, from: negative) }
        let none = try BinaryEncoder().encode(Int?.none)
        #expect { try BinaryDecoder().decode(Int.self, from: none) } throws: { error in
            if case DecodingError.valueNotFound = error { return true }
            return false
        }
    }

    @Test func trailingBytesAreRejected() throws {
        var bytes = try BinaryEncoder().encode(5)
        bytes.append(0)
        #expect(throws: DecodingError.self) { try BinaryDecoder().decode(Int.self, from: bytes) }
    }

    @Test func invalidUTF8IsRejected() throws {
        let bytes: [UInt8] = [BinaryTag.string, 2, 0xC3, 0x28]
        #expect(throws: DecodingError.self) { try BinaryDecoder().decode(String.self, from: bytes) }
    }

    @Test func deepNestingIsRejectedNotACrash() throws {
        indirect enum Tree: Codable, Equatable {
            case leaf
            case node(Tree)
        }
        var tree = Tree.leaf
        for _ in 0..<60 { tree = .node(tree) }
        #expect(try roundTrip(tree) == tree)
        // Hand-made input nested far deeper than any limit: an unkeyed container inside another, 100 000 deep.
        var bytes: [UInt8] = [BinaryTag.null]
        for _ in 0..<100_000 {
            var wrapped: [UInt8] = [BinaryTag.unkeyed]
            wrapped.appendVarint(UInt64(bytes.count))
            wrapped.append(contentsOf: bytes)
            bytes = wrapped
        }
        struct Nested: Decodable {
            init(from decoder: any Decoder) throws {
                var c = try decoder.unkeyedContainer()
                if try !c.decodeNil() { _ = try c.decode(Nested.self) }
            }
        }
        #expect(throws: DecodingError.self) { try BinaryDecoder().decode(Nested.self, from: bytes) }
        var deepTree: [UInt8] = []
        for _ in 0..<10_000 { deepTree.append(contentsOf: [BinaryTag.keyed]) }
        #expect(throws: DecodingError.self) { try BinaryDecoder().decode(Tree.self, from: deepTree) }
    }

    @Test func interleavedContainersAreAnEncodingError() {
        struct Interleaved: Encodable {
            enum Keys: String, CodingKey { case a, b }
            func encode(to encoder: any Encoder) throws {
                var outer = encoder.container(keyedBy: Keys.self)
                var first = outer.nestedUnkeyedContainer(forKey: .a)
                var second = outer.nestedUnkeyedContainer(forKey: .b)
                try second.encode(1)
                try first.encode(2)  // `first` was closed when `second` opened
            }
        }
        #expect(throws: EncodingError.self) { try BinaryEncoder().encode(Interleaved()) }
    }

    @Test func numberArraysDecodeElementByElementToo() throws {
        // An array of numbers written in its packed form can still be read through an unkeyed container.
        struct Triple: Decodable, Equatable {
            var x: Int64, y: Int64, z: Int64
            init(x: Int64, y: Int64, z: Int64) { (self.x, self.y, self.z) = (x, y, z) }
            init(from decoder: any Decoder) throws {
                var c = try decoder.unkeyedContainer()
                #expect(c.count == 3)
                x = try c.decode(Int64.self)
                y = try c.decode(Int64.self)
                z = try c.decode(Int64.self)
                #expect(c.isAtEnd)
            }
        }
        let bytes = try BinaryEncoder().encode([1, -2, 3])
        #expect(try BinaryDecoder().decode(Triple.self, from: bytes) == Triple(x: 1, y: -2, z: 3))
        let doubles = try BinaryEncoder().encode([1.5, 2.5])
        #expect(try BinaryDecoder().decode([Double?].self, from: doubles) == [1.5, 2.5])
        #expect(throws: DecodingError.self) { try BinaryDecoder().decode([Int8].self, from: bytes) }
    }

    @Test func foundationValuesRoundTrip() throws {
        let date = Date(timeIntervalSince1970: 1_700_000_000.25)
        #expect(try roundTrip(date) == date)
        let uuid = UUID()
        #expect(try roundTrip(uuid) == uuid)
        let url = URL(string: "https://example.com/a?b=c")!
        #expect(try roundTrip(url) == url)
        let decimal = Decimal(string: "12345.6789")!
        #expect(try roundTrip(decimal) == decimal)
    }
}
