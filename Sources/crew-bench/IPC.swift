import Crew
import Foundation
import Synchronization

// Queues, pipes and shared values between processes, against multiprocessing's. On both sides the children are
// started before the timed window and wait at a barrier; the window opens when the parent passes the barrier and
// closes when the parent has the last message (or the children's reports), while the children are still alive so
// that their CPU time can be read. Crew spins briefly before sleeping by default; each row that can spin also runs
// with spinning off (in the parent and the children), beside it.

extension CrewBench {
    static let ipcParts: Set<String> = ["queue", "big", "many", "pipe", "value"]

    func ipc(_ report: inout Report, parts: Set<String>) async throws {
        let rounds = quick ? 1 : 3
        let small = quick ? 100_000 : 500_000
        let big = quick ? 2_000 : 20_000
        let many = quick ? 50_000 : 250_000
        let pings = quick ? 10_000 : 50_000
        let increments = quick ? 50_000 : 200_000

        func started<A, R>(_ function: Crew.Function<A, R>, _ args: A) throws -> (Crew.Process<A, R>, Int32) {
            let p = Crew.Process(target: function, args: args)
            try p.start()
            guard let pid = p.pid else { throw BenchError("a started child has no pid") }
            return (p, pid)
        }

        // One producer child, the parent consumes: [messages/s, CPU µs per message].
        func queueRound(count: Int, size: Int) async throws -> [Double] {
            let q = try Crew.Queue<[UInt8]>()
            let start = try Crew.Barrier(parties: 2)
            let done = try Crew.Event()
            let (producer, pid) = try started(
                BenchFunctions.produce, ProduceJob(queue: q, count: count, size: size, start: start, done: done))
            _ = try start.wait()
            let cpu = CPUWindow(pids: [pid])
            let clock = ContinuousClock.now
            var last: [UInt8] = []
            for _ in 0..<count { last = try q.get(timeout: nil) }
            let rate = Double(count) / Measure.seconds(ContinuousClock.now - clock)
            let cpuPer = cpu.microseconds(per: count)
            done.set()
            _ = try await producer.value
            guard last.count == size && last.allSatisfy({ $0 == 7 }) else {
                throw BenchError("a message came out wrong")
            }
            return [rate, cpuPer]
        }

        // Two producers and two consumers, all children; every number must arrive exactly once.
        func manyRound() async throws -> [Double] {
            let q = try Crew.Queue<Int>(maxSize: 100_000)
            let results = try Crew.Queue<[Int]>()
            let start = try Crew.Barrier(parties: 5)
            let done = try Crew.Event()
            let consumers = try (0..<2).map { _ in
                try started(
                    BenchFunctions.consumeNumbers, ConsumeJob(queue: q, results: results, start: start, done: done))
            }
            let producers = try (0..<2).map { i in
                try started(
                    BenchFunctions.produceNumbers,
                    NumbersJob(queue: q, first: i * many, count: many, start: start, done: done))
            }
            _ = try start.wait()
            let cpu = CPUWindow(pids: consumers.map(\.1) + producers.map(\.1))
            let clock = ContinuousClock.now
            let reports = [try results.get(timeout: nil), try results.get(timeout: nil)]
            let rate = Double(2 * many) / Measure.seconds(ContinuousClock.now - clock)
            let cpuPer = cpu.microseconds(per: 2 * many)
            done.set()
            for (p, _) in consumers { _ = try await p.value }
            for (p, _) in producers { _ = try await p.value }
            let total = 2 * many
            guard reports.map({ $0[0] }).reduce(0, +) == total,
                reports.map({ $0[1] }).reduce(0, &+) == total * (total - 1) / 2
            else { throw BenchError("lost or duplicated messages") }
            return [rate, cpuPer]
        }

        // Ping-pong of one byte with a child through a pipe: [µs per round trip, CPU µs per round trip].
        func pipeRound() async throws -> [Double] {
            let (mine, theirs) = try Crew.Pipe().ends
            let start = try Crew.Barrier(parties: 2)
            let (echo, pid) = try started(BenchFunctions.echoPipe, EchoJob(connection: theirs, start: start))
            theirs.close()
            _ = try start.wait()
            let byte: [UInt8] = [1]
            // The blocking calls, as Python's `send_bytes` and `recv_bytes` (a function of its own: in async code
            // the compiler picks the async send).
            func pingPong() throws {
                for _ in 0..<pings {
                    try mine.sendBytes(byte)
                    _ = try mine.recvBytes()
                }
            }
            let cpu = CPUWindow(pids: [pid])
            let clock = ContinuousClock.now
            try pingPong()
            let micros = Measure.us(ContinuousClock.now - clock) / Double(pings)
            let cpuPer = cpu.microseconds(per: pings)
            mine.close()
            guard try await echo.value == pings else { throw BenchError("the echo child missed pings") }
            return [micros, cpuPer]
        }

        // Two children increment a shared counter under its lock: [increments/s, CPU µs per increment].
        func valueRound() async throws -> [Double] {
            let counter = try SharedValue(0)
            let results = try Crew.Queue<Int>()
            let start = try Crew.Barrier(parties: 3)
            let done = try Crew.Event()
            let workers = try (0..<2).map { _ in
                try started(
                    BenchFunctions.increment,
                    CounterJob(counter: counter, times: increments, results: results, start: start, done: done))
            }
            _ = try start.wait()
            let cpu = CPUWindow(pids: workers.map(\.1))
            let clock = ContinuousClock.now
            _ = try results.get(timeout: nil)
            _ = try results.get(timeout: nil)
            let rate = Double(2 * increments) / Measure.seconds(ContinuousClock.now - clock)
            let cpuPer = cpu.microseconds(per: 2 * increments)
            done.set()
            for (w, _) in workers { _ = try await w.value }
            guard counter.value == 2 * increments else { throw BenchError("lost increments") }
            return [rate, cpuPer]
        }

        /// Runs `round` with spinning (the default) and without: both medians.
        func bothWays(_ what: String, _ round: () async throws -> [Double]) async throws -> (
            spin: [Double], calm: [Double]
        ) {
            status("ipc: \(what), spinning (the default)")
            let spin = try await Measure.median(rounds: rounds, round)
            status("ipc: \(what), spinning off")
            let calm = try await withoutSpinning { try await Measure.median(rounds: rounds, round) }
            return (spin, calm)
        }
        let none: (spin: [Double], calm: [Double]) = ([.nan, .nan], [.nan, .nan])
        let smallFigures =
            !parts.contains("queue")
            ? none
            : try await bothWays("queue, \(small) messages of 64 B") { try await queueRound(count: small, size: 64) }
        let bigFigures =
            !parts.contains("big")
            ? none
            : try await bothWays("queue, \(big) messages of 64 KiB") { try await queueRound(count: big, size: 65_536) }
        let manyFigures =
            !parts.contains("many")
            ? none
            : try await bothWays("queue, 2 producers × 2 consumers, \(2 * many) numbers", manyRound)
        let pipeFigures =
            !parts.contains("pipe")
            ? none
            : try await bothWays("pipe ping-pong, \(pings) round trips", pipeRound)
        status("ipc: the same ping-pong with plain blocking recv and send (the floor)")
        let rawPipe =
            !parts.contains("pipe")
            ? [.nan, .nan]
            : try await Measure.median(rounds: rounds) { try await Self.rawPingPong(pings) }
        status("ipc: the same ping-pong with reads that spin on both sides (the floor of the spinning row)")
        let rawPipeSpin =
            !parts.contains("pipe")
            ? [.nan, .nan]
            : try await Measure.median(rounds: rounds) { try await Self.rawPingPong(pings, spin: true) }
        status("ipc: shared value + lock, 2 processes × \(increments) increments")
        let value = !parts.contains("value") ? [.nan, .nan] : try await Measure.median(rounds: rounds, valueRound)

        let python = try peer(
            "ipc.py",
            [
                "parts": parts.sorted(), "rounds": rounds, "small": small, "big": big, "many": many, "pings": pings,
                "increments": increments,
            ], into: &report)
        let window =
            "from the moment every child waits at the start barrier (they were started before) until the "
            + "parent has the last message; median of \(rounds) rounds after one untimed"
        let spinNote = "; waits spin up to 50 µs before sleeping (the default)"
        let calmNote = "; spinning off (Crew.Options(spinMicroseconds: 0) in parent and children)"
        func add(
            _ id: String, _ workload: String, _ unit: String, lowerIsBetter: Bool, window: String,
            _ setup: String, _ figures: (spin: [Double], calm: [Double]), _ peerKey: String, scale: Double = 1,
            floor: (spin: Side, calm: Side)? = nil
        ) {
            for (suffix, note, pair, floor) in [
                ("", spinNote, figures.spin, floor?.spin), (".no-spin", calmNote, figures.calm, floor?.calm),
            ] {
                var peerSide = python.side(peerKey)
                peerSide?.value *= scale
                report.add(
                    Row(
                        id: id + suffix, workload: workload + (suffix.isEmpty ? "" : ", Crew not spinning"), unit: unit,
                        lowerIsBetter: lowerIsBetter, window: window,
                        crew: Side(who: "Crew", setup: setup + note, value: pair[0] * scale, cpuMicroseconds: pair[1]),
                        floor: floor, peers: [peerSide].compactMap { $0 }
                    ))
            }
        }
        let socketFloor = Side(
            who: "Swift floor",
            setup: "the same ping-pong of 1 byte with plain blocking recv and send on the "
                + "socketpair, in both processes (no framing)", value: rawPipe[0], cpuMicroseconds: rawPipe[1])
        let spinningSocketFloor = Side(
            who: "Swift floor",
            setup: "the same ping-pong of 1 byte on the socketpair, both processes reading with "
                + "MSG_DONTWAIT in a loop that never sleeps (no framing)", value: rawPipeSpin[0],
            cpuMicroseconds: rawPipeSpin[1])
        add(
            "ipc.queue-small", "queue, 1 producer process → the parent, \(Self.count(small)) messages of 64 B",
            "messages/s", lowerIsBetter: false, window: window,
            "Queue<[UInt8]>: the child put()s, the parent get()s; children spawned", smallFigures,
            "ipc.queue-small/mp.Queue")
        add(
            "ipc.queue-big", "queue, 1 producer process → the parent, \(Self.count(big)) messages of 64 KiB", "MB/s",
            lowerIsBetter: false, window: window,
            "Queue<[UInt8]>: the child put()s, the parent get()s; children spawned", bigFigures,
            "ipc.queue-big/mp.Queue", scale: 65_536 / 1e6)
        add(
            "ipc.queue-many", "queue, 2 producer × 2 consumer processes, \(Self.count(2 * many)) numbers",
            "messages/s", lowerIsBetter: false,
            window: window.replacingOccurrences(of: "the last message", with: "both consumers' counts"),
            "Queue<Int>(maxSize: 100 000) shared by 4 spawned children; counts back on a second Queue",
            manyFigures, "ipc.queue-many/mp.Queue")
        add(
            "ipc.pipe", "pipe ping-pong of 1 byte with a child, \(Self.count(pings)) round trips", "µs per round trip",
            lowerIsBetter: true,
            window: window.replacingOccurrences(of: "has the last message", with: "has the last echo"),
            "Crew.Pipe: sendBytes, recvBytes; the child echoes", pipeFigures, "ipc.pipe/mp.Pipe",
            floor: (spin: spinningSocketFloor, calm: socketFloor))
        report.add(
            Row(
                id: "ipc.value",
                workload: "shared counter under its lock, 2 processes × \(Self.count(increments)) increments",
                unit: "increments/s", lowerIsBetter: false,
                window: window.replacingOccurrences(of: "the last message", with: "both children's reports"),
                crew: Side(
                    who: "Crew",
                    setup: "SharedValue<Int>: withLock { $0 += 1 } (a process-shared mutex, which "
                        + "does not spin); children spawned", value: value[0], cpuMicroseconds: value[1]),
                peers: [python.side("ipc.value/mp.Value")].compactMap { $0 }
            ))
    }

    /// The floor of an awaited round trip: the same child and bytes as `rawPingPong`, but the caller is a task
    /// that awaits each echo, which a thread of its own reads (blocking `recv`) and hands over by resuming a
    /// continuation: the least an `async` call through another process can do, since a cooperative thread must
    /// not block in the read.
    static func rawPingPongAwaited(_ pings: Int) async throws -> [Double] {
        let (mine, fd, pid, echo) = try startRawEcho(spin: false)
        let waiting = Mutex<CheckedContinuation<Bool, Never>?>(nil)
        let reader = Thread {
            var byte: UInt8 = 0
            while true {
                let ok = RawSocket.read(fd, &byte)
                waiting.withLock { $0.take() }?.resume(returning: ok)
                if !ok { return }
            }
        }
        reader.start()
        let cpu = CPUWindow(pids: [pid])
        let clock = ContinuousClock.now
        for _ in 0..<pings {
            let echoed = await withCheckedContinuation { continuation in
                waiting.withLock { $0 = continuation }
                if !RawSocket.write(fd, 1) { waiting.withLock { $0.take() }?.resume(returning: false) }
            }
            guard echoed else { throw BenchError("the raw echo broke") }
        }
        let micros = Measure.us(ContinuousClock.now - clock) / Double(pings)
        let cpuPer = cpu.microseconds(per: pings)
        shutdown(fd, Int32(SHUT_WR))  // The child sees the end and exits; the reader then sees the end too.
        guard try await echo.value == pings else { throw BenchError("the raw echo child missed pings") }
        while !reader.isFinished { try await Task.sleep(for: .milliseconds(1)) }
        mine.close()
        return [micros, cpuPer]
    }

    /// The floor of a round trip to another process: `pings` ping-pongs of one byte with a child over a socketpair,
    /// plain blocking recv and send on both sides (the child started before, waiting at a barrier), or with
    /// `spin`, reads that never sleep (`MSG_DONTWAIT` in a loop) on both sides: [µs per round trip, CPU µs per
    /// round trip].
    static func rawPingPong(_ pings: Int, spin: Bool = false) async throws -> [Double] {
        let (mine, fd, pid, echo) = try startRawEcho(spin: spin)
        var byte: UInt8 = 1
        let cpu = CPUWindow(pids: [pid])
        let clock = ContinuousClock.now
        for _ in 0..<pings {
            guard RawSocket.write(fd, byte), RawSocket.read(fd, &byte, spin: spin) else {
                throw BenchError("the raw echo broke")
            }
        }
        let micros = Measure.us(ContinuousClock.now - clock) / Double(pings)
        let cpuPer = cpu.microseconds(per: pings)
        mine.close()
        guard try await echo.value == pings else { throw BenchError("the raw echo child missed pings") }
        return [micros, cpuPer]
    }

    /// Starts the echoing child of the floors, waiting at the start barrier until it is ready: our end of the
    /// socketpair (blocking), its descriptor, the child's pid, and the child.
    private static func startRawEcho(spin: Bool) throws -> (Crew.Connection, Int32, Int32, Crew.Process<EchoJob, Int>) {
        let (mine, theirs) = try Crew.Pipe().ends
        let start = try Crew.Barrier(parties: 2)
        let echo = Crew.Process(
            target: BenchFunctions.rawEcho, args: EchoJob(connection: theirs, start: start, spin: spin))
        try echo.start()
        guard let pid = echo.pid else { throw BenchError("a started child has no pid") }
        theirs.close()
        let fd = try mine.fileno()
        RawSocket.makeBlocking(fd)
        _ = try start.wait()
        return (mine, fd, pid, echo)
    }
}
