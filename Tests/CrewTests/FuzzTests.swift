import CrewTestHelpers
import Foundation
import Testing

@testable import Crew

/// Decoding untrusted bytes never traps: a million random and mutated inputs, every one of which must end in a
/// value or a thrown error. A trap here would crash the test run. The seed is printed; set CREW_FUZZ_SEED to
/// replay a run, CREW_FUZZ_COUNT to change its size.
@Suite struct FuzzTests {
    static let count = ProcessInfo.processInfo.environment["CREW_FUZZ_COUNT"].flatMap(Int.init) ?? 1_000_000
    static let seed =
        ProcessInfo.processInfo.environment["CREW_FUZZ_SEED"].flatMap(UInt64.init)
        ?? UInt64.random(in: 0...UInt64.max)

    /// Valid encodings to mutate: samples of every shape, and of smaller types.
    static func corpus(seed: UInt64) -> [[UInt8]] {
        var rng = SplitMix64(seed: seed)
        var corpus: [[UInt8]] = []
        for _ in 0..<64 { corpus.append(try! BinaryEncoder().encode(Sample.random(using: &rng))) }
        for _ in 0..<64 {
            let sample = Sample.random(using: &rng)
            corpus.append(try! BinaryEncoder().encode(sample.shapes))
            corpus.append(try! BinaryEncoder().encode(sample.dictionary))
            corpus.append(try! BinaryEncoder().encode(sample.nested))
            corpus.append(try! BinaryEncoder().encode(sample.inner))
        }
        return corpus
    }

    static func mutate(_ input: [UInt8], using rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let i = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<8, using: &rng) {
            case 0 where !bytes.isEmpty: bytes[i] ^= 1 << UInt8.random(in: 0...7, using: &rng)
            case 1 where !bytes.isEmpty: bytes[i] = UInt8.random(in: 0...255, using: &rng)
            case 2 where !bytes.isEmpty:
                bytes[i] = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x09, 0x0B].randomElement(using: &rng)!
            case 3: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: i)
            case 4 where !bytes.isEmpty: bytes.remove(at: i)
            case 5: bytes.removeLast(Int.random(in: 0...bytes.count, using: &rng))
            case 6 where !bytes.isEmpty:
                let j = Int.random(in: i..<bytes.count, using: &rng)
                bytes.insert(contentsOf: bytes[i...j], at: Int.random(in: 0...bytes.count, using: &rng))
            default:
                // A run of continuation bytes: the worst case for varints.
                bytes.insert(contentsOf: repeatElement(0xFF, count: Int.random(in: 1...12, using: &rng)), at: i)
            }
        }
        return bytes
    }

    /// Feeds one input to a decoder of one of several types (`target` picks it, so that a run covers them all
    /// without decoding every input five times) and to the frame and message parsers. Returns how many
    /// decodes succeeded.
    static func feed(_ bytes: [UInt8], target: Int? = nil) -> Int {
        func attempt<T: Decodable>(_ type: T.Type) -> Int {
            do {
                _ = try BinaryDecoder().decode(type, from: bytes)
                return 1
            } catch {
                return 0
            }
        }
        var decoded = 0
        if target == nil || target == 0 { decoded += attempt(Sample.self) }
        if target == nil || target == 1 { decoded += attempt([Sample.Shape].self) }
        if target == nil || target == 2 { decoded += attempt([String: Int].self) }
        if target == nil || target == 3 { decoded += attempt([[Int?]].self) }
        if target == nil || target == 4 { decoded += attempt(Sample.Inner?.self) }
        // The same bytes as a frame stream and as messages.
        var reader = FrameReader(maxFrameSize: 1 << 16, initialCapacity: 64)
        reader.append(bytes)
        while let payload = try? reader.next() {
            _ = try? Message.parseChildBound(reader.buffer, payload)
            _ = try? Message.parseParentBound(reader.buffer, payload)
        }
        if !bytes.isEmpty {
            _ = try? Message.parseChildBound(bytes, 0..<bytes.count)
            _ = try? Message.parseParentBound(bytes, 0..<bytes.count)
        }
        return decoded
    }

    @Test func aMillionRandomAndMutatedInputsNeverTrap() async {
        let seed = Self.seed
        let total = Self.count
        print("fuzz: \(total) inputs, CREW_FUZZ_SEED=\(seed)")
        let corpus = Self.corpus(seed: seed)
        // Split across the machine's cores, on threads of its own: CPU-bound work on the cooperative pool
        // would starve every other test of the run for its duration.
        let workers = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))
        let decodedCount = await withTaskGroup(of: Int.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
                        let thread = Thread {
                            var rng = SplitMix64(seed: seed &+ UInt64(worker) &* 0x9E37_79B9)
                            var decoded = 0
                            for n in 0..<(total / workers + (worker < total % workers ? 1 : 0)) {
                                let input: [UInt8]
                                if n % 10 < 3 {
                                    input = (0..<Int.random(in: 0...48, using: &rng)).map { _ in
                                        UInt8.random(in: 0...255, using: &rng)
                                    }
                                } else {
                                    input = Self.mutate(
                                        corpus[Int.random(in: 0..<corpus.count, using: &rng)], using: &rng)
                                }
                                decoded += Self.feed(input, target: n % 5)
                            }
                            continuation.resume(returning: decoded)
                        }
                        thread.stackSize = 8 << 20
                        thread.start()
                    }
                }
            }
            return await group.reduce(0, +)
        }
        // Some mutations leave a valid value (a changed number); most must be rejected.
        print("fuzz: \(decodedCount) decodes succeeded")
        #expect(decodedCount < total)
    }

    @Test func theCorpusItselfDecodes() {
        for (i, bytes) in Self.corpus(seed: Self.seed).enumerated() {
            #expect(Self.feed(bytes) >= 1, "corpus item \(i): \(bytes.prefix(40))")
        }
    }
}
