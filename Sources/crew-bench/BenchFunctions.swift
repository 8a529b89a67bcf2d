import Crew

/// The functions the benchmark runs in child processes.
enum BenchFunctions {
    static let double = Function("bench.double") { (x: Int) in x * 2 }
    static let echoByte = Function("bench.echoByte") { (b: UInt8) in b }
    static let square = Function("bench.square") { (x: Int) in x * x }
    /// CPU-bound work: `rounds` × 10 million steps of a linear congruential generator.
    static let burn = Function("bench.burn") { (rounds: Int) -> UInt64 in
        var x: UInt64 = 0
        for i in 0..<(rounds * 10_000_000) { x = x &* 6364136223846793005 &+ UInt64(truncatingIfNeeded: i) }
        return x
    }
    static let sleepLong = Function("bench.sleepLong") { () async throws in
        try await Task.sleep(for: .seconds(60))
    }

    static let all: [any AnyFunction] = [double, echoByte, square, burn, sleepLong]
}
