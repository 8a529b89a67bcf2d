import CCrewShims
import FoundationEssentials
import Synchronization

// The durable queue's data: jobs as a broker stores them. Arguments and results are JSON text, so that rows stay
// readable and another language can enqueue by name.

/// A job's id: a UUID, as text (new ids are version 7: time-ordered, so that a broker's index of ids grows at its
/// end).
public struct JobID: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The id's text.
    public let rawValue: String

    /// An id from its text.
    public init(_ rawValue: String) {
        self.rawValue = rawValue
    }

    /// A new, unique id: a UUID version 7 (48 bits of Unix milliseconds, then 74 random bits).
    public static func make() -> JobID {
        let (first, second) = randomBits.withLock { $0.next() }
        let milliseconds = UInt64(Date().timeIntervalSince1970 * 1000)
        let high = (milliseconds << 16) | 0x7000 | (first & 0x0FFF)
        let low = (second & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(36)
        for (index, word) in [high, low].enumerated() {
            for nibble in 0..<16 {
                let position = index * 16 + nibble
                if position == 8 || position == 12 || position == 16 || position == 20 {
                    text.append(UInt8(ascii: "-"))
                }
                text.append(digits[Int((word >> UInt64(60 - nibble * 4)) & 0xF)])
            }
        }
        return JobID(String(decoding: text, as: UTF8.self))
    }

    /// The id's text.
    public var description: String { rawValue }
}

/// The system's random bits, taken 4 KiB at a time (one `getrandom` call per 256 ids instead of two per id).
private struct RandomPool {
    private var words = [UInt64](repeating: 0, count: 512)
    private var used = 512

    mutating func next() -> (UInt64, UInt64) {
        if used + 2 > words.count {
            let filled = words.withUnsafeMutableBytes { buffer in
                crew_random_bytes(buffer.baseAddress, UInt(buffer.count))
            }
            if filled != words.count * 8 {
                // Not filled at once (an old kernel, a signal): one word at a time from the standard library.
                var generator = SystemRandomNumberGenerator()
                for index in words.indices { words[index] = generator.next() }
            }
            used = 0
        }
        defer { used += 2 }
        return (words[used], words[used + 1])
    }
}

private let randomBits = Mutex(RandomPool())
