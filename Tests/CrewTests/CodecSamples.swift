import CrewTestHelpers
import Foundation

/// Every Codable shape the wire must carry.
struct Sample: Codable, Equatable, Sendable {
    enum Shape: Codable, Equatable, Sendable {
        case circle(radius: Double)
        case rect(width: Int, height: Int)
        case point
        case labeled(String, Int?)
        indirect case group([Shape])
    }

    enum Color: String, Codable, Sendable {
        case red, green, blue
    }

    struct Inner: Codable, Equatable, Sendable {
        var name: String
        var tags: Set<String>
        var child: [Inner]
    }

    var int: Int
    var i8: Int8
    var i16: Int16
    var i32: Int32
    var i64: Int64
    var uint: UInt
    var u8: UInt8
    var u16: UInt16
    var u32: UInt32
    var u64: UInt64
    var i128: Int128
    var u128: UInt128
    var float: Float
    var double: Double
    var flag: Bool
    var text: String
    var optional: Int?
    var optionalText: String?
    var doubleOptional: Int??
    var data: Data
    var bytes: [UInt8]
    var ints: [Int]
    var int32s: [Int32]
    var doubles: [Double]
    var floats: [Float]
    var strings: [String]
    var nested: [[Int?]]
    var dictionary: [String: Int]
    var intKeys: [Int: String]
    var shape: Shape
    var shapes: [Shape]
    var inner: Inner?
    var color: Color
    var empty: EmptyStruct
    var date: Date
    var uuid: UUID
    var url: URL?
    var tuple: Pair

    struct EmptyStruct: Codable, Equatable, Sendable {}

    struct Pair: Codable, Equatable, Sendable {
        var first: Int
        var second: String
    }
}

/// SplitMix64: small, fast, seedable, so that fuzz failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Sample {
    static func random<G: RandomNumberGenerator>(using rng: inout G, depth: Int = 0) -> Sample {
        func string() -> String {
            let alphabet = Array("abcXYZ 0123_é漢字🙂\u{0}\n\"\\")
            return String((0..<Int.random(in: 0...12, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
        }
        func shape(_ level: Int) -> Shape {
            switch Int.random(in: 0..<(level < 3 ? 5 : 4), using: &rng) {
            case 0: .circle(radius: Double.random(in: -1e6...1e6, using: &rng))
            case 1:
                .rect(width: Int.random(in: .min ... .max, using: &rng), height: Int.random(in: -5...5, using: &rng))
            case 2: .point
            case 3: .labeled(string(), Bool.random(using: &rng) ? nil : Int.random(in: -100...100, using: &rng))
            default: .group((0..<Int.random(in: 0...3, using: &rng)).map { _ in shape(level + 1) })
            }
        }
        func inner(_ level: Int) -> Inner {
            Inner(
                name: string(),
                tags: Set((0..<Int.random(in: 0...3, using: &rng)).map { _ in string() }),
                child: level < 2 ? (0..<Int.random(in: 0...2, using: &rng)).map { _ in inner(level + 1) } : []
            )
        }
        let count = Int.random(in: 0...20, using: &rng)
        return Sample(
            int: Int.random(in: .min ... .max, using: &rng),
            i8: Int8.random(in: .min ... .max, using: &rng),
            i16: Int16.random(in: .min ... .max, using: &rng),
            i32: Int32.random(in: .min ... .max, using: &rng),
            i64: Int64.random(in: .min ... .max, using: &rng),
            uint: UInt.random(in: .min ... .max, using: &rng),
            u8: UInt8.random(in: .min ... .max, using: &rng),
            u16: UInt16.random(in: .min ... .max, using: &rng),
            u32: UInt32.random(in: .min ... .max, using: &rng),
            u64: UInt64.random(in: 0...200, using: &rng),
            i128: Int128(Int64.random(in: .min ... .max, using: &rng)) << Int.random(in: 0...60, using: &rng),
            u128: UInt128(UInt64.random(in: .min ... .max, using: &rng)) << Int.random(in: 0...64, using: &rng),
            float: Float.random(in: -1e30...1e30, using: &rng),
            double: Double.random(in: -1e300...1e300, using: &rng),
            flag: Bool.random(using: &rng),
            text: string(),
            optional: Bool.random(using: &rng) ? nil : Int.random(in: -1000...1000, using: &rng),
            optionalText: Bool.random(using: &rng) ? nil : string(),
            doubleOptional: Bool.random(using: &rng) ? .none : .some(Int.random(in: 0...9, using: &rng)),
            data: Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }),
            bytes: (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) },
            ints: (0..<count).map { _ in Int.random(in: .min ... .max, using: &rng) },
            int32s: (0..<count).map { _ in Int32.random(in: .min ... .max, using: &rng) },
            doubles: (0..<count).map { _ in Double.random(in: -1...1, using: &rng) },
            floats: (0..<count).map { _ in Float.random(in: -1...1, using: &rng) },
            strings: (0..<Int.random(in: 0...4, using: &rng)).map { _ in string() },
            nested: (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                    Bool.random(using: &rng) ? nil : Int.random(in: -9...9, using: &rng)
                }
            },
            dictionary: Dictionary(
                (0..<Int.random(in: 0...4, using: &rng)).map { _ in (string(), Int.random(in: -9...9, using: &rng)) },
                uniquingKeysWith: { a, _ in a }
            ),
            intKeys: Dictionary(
                (0..<Int.random(in: 0...4, using: &rng)).map { _ in (Int.random(in: -99...99, using: &rng), string()) },
                uniquingKeysWith: { a, _ in a }
            ),
            shape: shape(0),
            shapes: (0..<Int.random(in: 0...3, using: &rng)).map { _ in shape(1) },
            inner: Bool.random(using: &rng) ? inner(0) : nil,
            color: [Color.red, .green, .blue].randomElement(using: &rng)!,
            empty: EmptyStruct(),
            date: Date(timeIntervalSince1970: Double(Int.random(in: 0...2_000_000_000, using: &rng))),
            uuid: UUID(),
            url: Bool.random(using: &rng)
                ? URL(string: "https://example.com/\(Int.random(in: 0...99, using: &rng))") : nil,
            tuple: Pair(first: Int.random(in: -5...5, using: &rng), second: string())
        )
    }
}
