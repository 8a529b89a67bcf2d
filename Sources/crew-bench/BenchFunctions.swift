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

    /// Puts `count` messages of `size` bytes on the queue.
    static let produce = Function("bench.produce") { (job: QueueBench) throws -> Int in
        let message = [UInt8](repeating: 7, count: job.size)
        for _ in 0..<job.count { try job.queue.put(message) }
        return job.count
    }
    /// Puts the numbers `first..<first + count` on the queue.
    static let produceNumbers = Function("bench.produceNumbers") { (job: NumberBench) throws -> Int in
        for value in job.first..<(job.first + job.count) { try job.queue.put(value) }
        return job.count
    }
    /// Gets numbers until -1; returns how many and their sum.
    static let consumeNumbers = Function("bench.consumeNumbers") { (queue: Queue<Int>) throws -> [Int] in
        var count = 0
        var sum = 0
        while true {
            let value = try queue.get()
            if value == -1 { return [count, sum] }
            count += 1
            sum &+= value
        }
    }
    /// Sends back every message it receives until the peer closes.
    static let echoPipe = Function("bench.echoPipe") { (connection: Connection) -> Int in
        var count = 0
        while let bytes = try? connection.recvBytes() {
            do { try connection.sendBytes(bytes) } catch { break }
            count += 1
        }
        return count
    }
    /// Adds 1 to the counter `times` times, each under its lock.
    static let increment = Function("bench.increment") { (job: CounterBench) throws -> Int in
        for _ in 0..<job.times { try job.counter.withLock { $0 += 1 } }
        return job.times
    }

    /// An I/O-bound call: sleeps `ms` milliseconds as a task.
    static let sleepMs = Function("bench.sleepMs") { (ms: Int) async throws -> Int in
        try await Task.sleep(for: .milliseconds(ms))
        return ms
    }

    static let all: [any AnyFunction] = [
        double, echoByte, square, burn, sleepLong, produce, produceNumbers, consumeNumbers, echoPipe, increment,
        sleepMs,
    ]
}

struct QueueBench: Codable, Sendable {
    var queue: Queue<[UInt8]>
    var count: Int
    var size: Int
}

struct NumberBench: Codable, Sendable {
    var queue: Queue<Int>
    var first: Int
    var count: Int
}

struct CounterBench: Codable, Sendable {
    var counter: SharedValue<Int>
    var times: Int
}
