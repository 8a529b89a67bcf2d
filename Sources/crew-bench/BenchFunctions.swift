import Crew
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The functions the benchmark runs in child processes (each has its twin in bench/peers).
enum BenchFunctions {
    static let double = Crew.Function("bench.double") { (x: Int) in x * 2 }
    static let echoByte = Crew.Function("bench.echoByte") { (b: UInt8) in b }
    static let square = Crew.Function("bench.square") { (x: Int) in squareBody(x) }
    /// The square, as a function value: what Swift's floor calls for each item, as a pool calls a registered
    /// function's body.
    static let squareBody: @Sendable (Int) -> Int = { x in x * x }
    /// CPU-bound work, the same loop as the Python peers' `burn`: `steps` steps of a linear congruential generator
    /// from `seed`, modulo 2⁶⁴. The results are summed on both sides and must agree.
    static let burn = Crew.Function("bench.burn") { (job: BurnJob) -> UInt64 in
        BenchFunctions.burnLoop(seed: job.seed, steps: job.steps)
    }
    /// Traps at once, with a message (Swift's runtime prints `Fatal error: …` to standard error).
    static let trap = Crew.Function("bench.trap") { (n: Int) -> Int in
        fatalError("bench trap \(n)")
    }
    /// Traps at once on an index out of range (the runtime's own check, with no message of the program's).
    static let trapIndex = Crew.Function("bench.trapIndex") { (n: Int) -> Int in
        [1, 2, 3][n]
    }
    static let sleepLong = Crew.Function("bench.sleepLong") { () async throws in
        try await Task.sleep(for: .seconds(60))
    }

    /// Never inlined: every side of a CPU-bound row (a pool's worker, Swift's floor) runs this same machine code.
    @inline(never)
    static func burnLoop(seed: Int, steps: Int) -> UInt64 {
        var x = UInt64(truncatingIfNeeded: seed)
        for i in 0..<steps { x = x &* 6_364_136_223_846_793_005 &+ UInt64(truncatingIfNeeded: i) }
        return x
    }

    /// Waits at the start barrier, puts `count` messages of `size` bytes, then stays until told it is done (so
    /// that its CPU time can be read before it exits).
    static let produce = Crew.Function("bench.produce") { (job: ProduceJob) throws -> Int in
        let message = [UInt8](repeating: 7, count: job.size)
        _ = try job.start.wait()
        for _ in 0..<job.count { try job.queue.put(message) }
        _ = job.done.wait()
        return job.count
    }
    /// Waits at the start barrier, puts the numbers `first..<first + count` and then -1, and stays until done.
    static let produceNumbers = Crew.Function("bench.produceNumbers") { (job: NumbersJob) throws -> Int in
        _ = try job.start.wait()
        for value in job.first..<(job.first + job.count) { try job.queue.put(value) }
        try job.queue.put(-1)
        _ = job.done.wait()
        return job.count
    }
    /// Waits at the start barrier, gets numbers until a -1, puts how many it got and their sum on `results`, and
    /// stays until done.
    static let consumeNumbers = Crew.Function("bench.consumeNumbers") { (job: ConsumeJob) throws -> Int in
        _ = try job.start.wait()
        var count = 0
        var sum = 0
        while true {
            let value = try job.queue.get()
            if value == -1 { break }
            count += 1
            sum &+= value
        }
        try job.results.put([count, sum])
        _ = job.done.wait()
        return count
    }
    /// Waits at the start barrier, then sends back every message it receives until the peer closes.
    static let echoPipe = Crew.Function("bench.echoPipe") { (job: EchoJob) throws -> Int in
        _ = try job.start.wait()
        var count = 0
        while true {
            let bytes: [UInt8]
            do {
                bytes = try job.connection.recvBytes()
            } catch let error as CrewError where error.code == .closed {
                return count  // The parent closed its end: the run is over.
            }
            try job.connection.sendBytes(bytes)
            count += 1
        }
    }
    /// The floor of a round trip to another process: waits at the start barrier, then echoes single bytes on the
    /// connection's descriptor with plain blocking `recv` and `send` (no framing, no Crew), until the peer closes.
    static let rawEcho = Crew.Function("bench.rawEcho") { (job: EchoJob) throws -> Int in
        let fd = try job.connection.fileno()
        RawSocket.makeBlocking(fd)
        _ = try job.start.wait()
        var byte: UInt8 = 0
        var count = 0
        while RawSocket.read(fd, &byte, spin: job.spin) {
            guard RawSocket.write(fd, byte) else { break }
            count += 1
        }
        return count
    }

    /// Waits at the start barrier, adds 1 to the counter `times` times, each under its lock, says so on
    /// `results`, and stays until done.
    static let increment = Crew.Function("bench.increment") { (job: CounterJob) throws -> Int in
        _ = try job.start.wait()
        for _ in 0..<job.times { try job.counter.withLock { $0 += 1 } }
        try job.results.put(job.times)
        _ = job.done.wait()
        return job.times
    }

    /// An I/O-bound call: sleeps `ms` milliseconds as a task.
    static let sleepMs = Crew.Function("bench.sleepMs") { (ms: Int) async throws -> Int in
        try await Task.sleep(for: .milliseconds(ms))
        return ms
    }

    /// Waits at the start barrier, then sleeps `count` times, `concurrency` at once, as tasks of a task group: the
    /// floor of the processes × coroutines row. Returns how many sleeps ended.
    static let sleepMany = Crew.Function("bench.sleepMany") { (job: SleepManyJob) async throws -> Int in
        _ = try job.start.wait()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            var started = 0
            var ended = 0
            while started < min(job.concurrency, job.count) {
                group.addTask { try await Task.sleep(for: .milliseconds(job.milliseconds)) }
                started += 1
            }
            while try await group.next() != nil {
                ended += 1
                if started < job.count {
                    group.addTask { try await Task.sleep(for: .milliseconds(job.milliseconds)) }
                    started += 1
                }
            }
            return ended
        }
    }

    /// Parks `count` coroutines (or bare tasks, for Swift's floor) in this fresh process and returns the memory
    /// each added: [resident bytes, heap bytes in use] per coroutine.
    static let parked = Crew.Function("bench.parked") { (job: ParkJob) async throws -> [Double] in
        try await ParkedMemory.measure(job)
    }

    static let all: [any AnyFunction] = [
        double, echoByte, square, burn, trap, trapIndex, sleepLong, produce, produceNumbers, consumeNumbers, echoPipe,
        increment,
        sleepMs, sleepMany, parked, rawEcho,
    ]
}

/// Plain system calls on a socket, for the floor rows.
enum RawSocket {
    static func makeBlocking(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
    }

    /// Reads one byte, waiting for it (sleeping in the read, or with `spin` asking again and again); false at
    /// the end of the stream or on an error.
    static func read(_ fd: Int32, _ byte: inout UInt8, spin: Bool = false) -> Bool {
        while true {
            let n = Glibc.recv(fd, &byte, 1, spin ? Int32(MSG_DONTWAIT) : 0)
            if n == 1 { return true }
            if n < 0 && (errno == EINTR || (spin && errno == EAGAIN)) { continue }
            return false
        }
    }

    static func write(_ fd: Int32, _ byte: UInt8) -> Bool {
        var byte = byte
        while true {
            let n = Glibc.send(fd, &byte, 1, Int32(MSG_NOSIGNAL))
            if n == 1 { return true }
            if n < 0 && errno == EINTR { continue }
            return false
        }
    }
}

struct BurnJob: Codable, Sendable {
    var seed: Int
    var steps: Int
}

struct ProduceJob: Codable, Sendable {
    var queue: Crew.Queue<[UInt8]>
    var count: Int
    var size: Int
    var start: Crew.Barrier
    var done: Crew.Event
}

struct NumbersJob: Codable, Sendable {
    var queue: Crew.Queue<Int>
    var first: Int
    var count: Int
    var start: Crew.Barrier
    var done: Crew.Event
}

struct ConsumeJob: Codable, Sendable {
    var queue: Crew.Queue<Int>
    var results: Crew.Queue<[Int]>
    var start: Crew.Barrier
    var done: Crew.Event
}

struct EchoJob: Codable, Sendable {
    var connection: Crew.Connection
    var start: Crew.Barrier
    /// Read without ever sleeping.
    var spin = false
}

struct CounterJob: Codable, Sendable {
    var counter: SharedValue<Int>
    var times: Int
    var results: Crew.Queue<Int>
    var start: Crew.Barrier
    var done: Crew.Event
}

struct SleepManyJob: Codable, Sendable {
    var count: Int
    var concurrency: Int
    var milliseconds: Int
    var start: Crew.Barrier
}

struct ParkJob: Codable, Sendable {
    /// "crew" (``Crew/spawn(priority:_:)`` waiting on an ``AsyncEvent``) or "floor" (a bare `Task` waiting on a
    /// continuation).
    var kind: String
    var count: Int
}

/// Memory per parked coroutine, measured in the process it runs in (a fresh child of the benchmark).
enum ParkedMemory {
    final class Started: Sendable {
        let count = Atomic<Int>(0)
        let continuations = Mutex<[UnsafeContinuation<Void, Never>]>([])
    }

    static func measure(_ job: ParkJob) async throws -> [Double] {
        let started = Started()
        started.continuations.withLock { $0.reserveCapacity(job.count) }
        let residentBefore = Machine.residentBytes()
        let heapBefore = Machine.heapBytesInUse()
        var release: () async throws -> Void
        switch job.kind {
        case "crew":
            let event = AsyncEvent()
            let parked = (0..<job.count).map { _ in
                Crew.spawn {
                    started.count.add(1, ordering: .relaxed)
                    await event.wait()
                }
            }
            release = {
                event.set()
                try await Crew.joinAll(parked)
            }
        case "floor":
            var tasks: [Task<Void, Never>] = []
            tasks.reserveCapacity(job.count)
            for _ in 0..<job.count {
                tasks.append(
                    Task {
                        started.count.add(1, ordering: .relaxed)
                        await withUnsafeContinuation { c in started.continuations.withLock { $0.append(c) } }
                    })
            }
            let all = tasks
            release = {
                // Every task has parked once its continuation is stored.
                while started.continuations.withLock({ $0.count }) < job.count { await Task.yield() }
                for c in started.continuations.withLock({ $0 }) { c.resume() }
                for task in all { await task.value }
            }
        default:
            throw CrewError(.invalidArgument, "unknown kind \(job.kind)")
        }
        // Every coroutine has started, then a tenth of a second for the last ones to reach their wait (the Python
        // peers do the same).
        while started.count.load(ordering: .relaxed) < job.count { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(100))
        let resident = Double(Machine.residentBytes() - residentBefore) / Double(job.count)
        let heap = Double(Machine.heapBytesInUse() - heapBefore) / Double(job.count)
        try await release()
        return [resident, heap]
    }
}
