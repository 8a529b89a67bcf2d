import ArgumentParser
@_spi(Internals) import Crew
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

// The benchmark links FoundationEssentials only (not Foundation and its ICU data): its children are this same
// program, so a lean binary is what a process start should measure.

/// Crew's benchmark: each workload in Crew and in Python's standard library, in the same run, as a table.
struct CrewBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crew-bench",
        abstract: "Measures Crew against Python's multiprocessing on the same machine, in the same run.",
        discussion: "Build it in release mode: swift run -c release crew-bench"
    )

    @Option(help: "The Python interpreter that runs the peers in bench/peers.")
    var python = "python3"

    @Option(help: "The directory of the Python peers.")
    var peers = "bench/peers"

    @Option(help: "Workloads to run (process-start, round-trip, pool, ipc, concurrency, queue); all when not given.")
    var only: [String] = []

    @Flag(help: "Fewer repetitions: a quick look, not figures to record.")
    var quick = false

    @Flag(help: "Skip the Python peers (to profile Crew alone); the table then has no ratios.")
    var skipPython = false

    func run() async throws {
        var table = Table()
        let workloads = only.isEmpty ? ["process-start", "round-trip", "pool", "ipc", "concurrency", "queue"] : only
        for workload in workloads {
            switch workload {
            case "process-start": try await processStart(&table)
            case "round-trip": try await roundTrip(&table)
            case "pool": try await pool(&table, parts: ["map", "apply", "imap", "cpu", "kill"])
            case let name where name.hasPrefix("pool-"): try await pool(&table, parts: [String(name.dropFirst(5))])
            case "ipc": try await ipc(&table, parts: ["queue", "big", "many", "pipe", "value"])
            case "concurrency": try await concurrency(&table, parts: Self.concurrencyParts)
            case "queue": try queue(&table)
            case let name where name.hasPrefix("concurrency-"):
                try await concurrency(&table, parts: [String(name.dropFirst(12))])
            case let name where name.hasPrefix("ipc-"): try await ipc(&table, parts: [String(name.dropFirst(4))])
            default: throw ValidationError("unknown workload \(workload)")
            }
        }
        print("")
        print(table.render())
        print("")
        print(Machine.describe())
    }

    // MARK: Workloads

    func processStart(_ table: inout Table) async throws {
        let runs = quick ? 30 : 200
        func startAndJoin(_ crew: Crew) async throws -> Double {
            try await Self.median(rounds: 1) {
                var times: [Double] = []
                for _ in 0..<runs {
                    let start = ContinuousClock.now
                    let p = Crew.Process(target: BenchFunctions.double, args: 1, crew: crew)
                    try p.start()
                    try p.join()
                    times.append(Self.ms(ContinuousClock.now - start))
                }
                return Self.median(times)
            }
        }
        status("process start: Crew spawn, \(runs) starts")
        let spawnMs = try await startAndJoin(Crew.current!)
        status("process start: Crew forkserver, \(runs) starts")
        let forkserver = Crew.current!.withOptions { $0.startMethod = .forkserver }
        _ = try await startAndJoin(forkserver)  // starts the fork server
        let forkserverMs = try await startAndJoin(forkserver)
        // The worker's start as a pool sees it: from asking for a worker to its first answer.
        var firstAnswer: [Double] = []
        for _ in 0..<runs {
            let start = ContinuousClock.now
            let p = Crew.Process(target: BenchFunctions.double, args: 1, crew: forkserver)
            try p.start()
            _ = try await p.value
            firstAnswer.append(Self.ms(ContinuousClock.now - start))
            try await p.join()
        }
        status("process start: Python")
        let python = try runPeer("process_start.py", [String(quick ? 10 : 50)])
        for (label, value) in [("Crew spawn", spawnMs), ("Crew forkserver", forkserverMs)] {
            for method in ["fork", "forkserver", "spawn"] {
                table.add(
                    workload: "start + join a child running a trivial function (ms)",
                    crew: value,
                    crewLabel: label,
                    python: python["process_start/\(method)"],
                    pythonLabel: "mp \(method)",
                    lowerIsBetter: true
                )
            }
        }
        table.add(
            workload: "forkserver worker: asked for → first answer (ms)",
            crew: Self.median(firstAnswer),
            crewLabel: "Crew forkserver",
            python: python["process_start/forkserver"],
            pythonLabel: "mp forkserver start+join",
            lowerIsBetter: true
        )
    }

    func roundTrip(_ table: inout Table) async throws {
        let n = quick ? 5_000 : 50_000
        status("round trip: Crew, 5 rounds of \(n) calls")
        let worker = try ChildWorker()
        _ = try worker.callBlocking(BenchFunctions.echoByte, 1)
        let blocking = try await Self.median(rounds: 5) {
            let start = ContinuousClock.now
            for _ in 0..<n { _ = try worker.callBlocking(BenchFunctions.echoByte, 1) }
            return Self.us(ContinuousClock.now - start) / Double(n)
        }
        let async = try await Self.median(rounds: 5) {
            let start = ContinuousClock.now
            for _ in 0..<n { _ = try await worker.call(BenchFunctions.echoByte, 1) }
            return Self.us(ContinuousClock.now - start) / Double(n)
        }
        await worker.shutdown()
        // The same without spinning: what the wake-ups alone cost.
        let calm = try ChildWorker(crew: Crew.current!.withOptions { $0.spinMicroseconds = 0 })
        let noSpin = try await Self.median(rounds: 5) {
            let start = ContinuousClock.now
            for _ in 0..<(n / 5) { _ = try calm.callBlocking(BenchFunctions.echoByte, 1) }
            return Self.us(ContinuousClock.now - start) / Double(n / 5)
        }
        await calm.shutdown()
        status("round trip: Python")
        let python = try runPeer("round_trip.py", [String(n / 2)])
        for (label, value) in [
            ("Crew call, blocking", blocking), ("Crew call, async", async), ("Crew, blocking, no spin", noSpin),
        ] {
            for variant in ["mp.Pipe", "os.pipe"] {
                table.add(
                    workload: "1-byte round trip parent → child → parent (µs)",
                    crew: value,
                    crewLabel: label,
                    python: python["round_trip/\(variant)"],
                    pythonLabel: variant,
                    lowerIsBetter: true
                )
            }
        }
    }

    func pool(_ table: inout Table, parts: Set<String>) async throws {
        // Each pool workload runs one untimed round first, then the median of `rounds` (the Python peer does
        // the same): the first round of a size pays for growing the heap on both sides.
        let rounds = quick ? 1 : 5
        let pool = try ProcessPool(processes: 2)
        _ = try await pool.map(BenchFunctions.square, 0..<1000)

        let mapCount = quick ? 200_000 : 1_000_000
        status("pool: map of \(mapCount) squares")
        let mapRate = !parts.contains("map") ? .nan : try await Self.median(rounds: rounds, warmUp: true) {
            let items = Array(0..<mapCount)
            let start = ContinuousClock.now
            let squares = try await pool.map(BenchFunctions.square, items)
            let rate = Double(mapCount) / Self.seconds(ContinuousClock.now - start)
            precondition(squares.count == mapCount && squares[mapCount - 1] == (mapCount - 1) * (mapCount - 1))
            return rate
        }

        let n = quick ? 5_000 : 20_000
        status("pool: \(n) applyAsync, then every value")
        let applyRate = !parts.contains("apply") ? .nan : try await Self.median(rounds: rounds, warmUp: true) {
            let start = ContinuousClock.now
            let results = try (0..<n).map { try pool.applyAsync(BenchFunctions.square, $0) }
            for result in results { _ = try await result.value }
            return Double(n) / Self.seconds(ContinuousClock.now - start)
        }

        status("pool: imapUnordered of \(n), chunk size 1")
        let imapRate = !parts.contains("imap") ? .nan : try await Self.median(rounds: rounds, warmUp: true) {
            let start = ContinuousClock.now
            var count = 0
            for try await _ in try pool.imapUnordered(BenchFunctions.square, 0..<n) { count += 1 }
            precondition(count == n)
            return Double(n) / Self.seconds(ContinuousClock.now - start)
        }
        pool.close()
        try await pool.join()

        status("pool: CPU-bound work on 1 and 2 workers")
        let (tasks, work) = quick ? (4, 2) : (8, 20)
        func cpuSeconds(_ workers: Int) async throws -> Double {
            let pool = try ProcessPool(processes: workers)
            _ = try await pool.map(BenchFunctions.burn, Array(repeating: 0, count: workers), chunkSize: 1)
            let start = ContinuousClock.now
            _ = try await pool.map(BenchFunctions.burn, Array(repeating: work, count: tasks), chunkSize: 1)
            let elapsed = Self.seconds(ContinuousClock.now - start)
            pool.close()
            try await pool.join()
            return elapsed
        }
        let scaling = !parts.contains("cpu") ? .nan : try await cpuSeconds(1) / cpuSeconds(2)

        status("pool: SIGKILL a busy worker")
        let latency = !parts.contains("kill") ? .nan : try await Self.median(rounds: quick ? 3 : 10) {
            let pool = try ProcessPool(processes: 1)
            _ = try await pool.apply(BenchFunctions.square, 1)
            let busy = try pool.applyAsync(BenchFunctions.sleepLong, Empty())
            try await Task.sleep(for: .milliseconds(100))
            let start = ContinuousClock.now
            for pid in pool.workerPIDs { kill(pid, SIGKILL) }
            do {
                _ = try await busy.value
            } catch let error as CrewError where error.code == .workerCrashed {}
            let elapsed = Self.ms(ContinuousClock.now - start)
            let served = try await pool.apply(BenchFunctions.square, 3)
            precondition(served == 9, "the pool serves after the kill")
            pool.close()
            try await pool.join()
            return elapsed
        }

        status("pool: Python")
        let python = try runPeer("pool.py", (quick ? ["quick"] : ["full"]) + parts.sorted())
        table.add(workload: "pool map of \(mapCount) squares (calls/s)", crew: mapRate, crewLabel: "ProcessPool.map",
                  python: python["pool_map/mp.Pool.map"], pythonLabel: "mp.Pool.map", lowerIsBetter: false)
        for variant in ["mp.Pool", "ProcessPoolExecutor"] {
            table.add(workload: "\(n) applyAsync, then all values (calls/s)", crew: applyRate, crewLabel: "applyAsync",
                      python: python["apply_async/\(variant)"], pythonLabel: variant, lowerIsBetter: false)
        }
        table.add(workload: "imapUnordered of \(n), chunk size 1 (calls/s)", crew: imapRate,
                  crewLabel: "imapUnordered", python: python["imap_unordered/mp.Pool"], pythonLabel: "mp.Pool",
                  lowerIsBetter: false)
        table.add(workload: "CPU-bound work, 2 workers vs 1 (speed-up ×)", crew: scaling, crewLabel: "ProcessPool",
                  python: python["cpu_scaling/mp.Pool"], pythonLabel: "mp.Pool", lowerIsBetter: false)
        let pythonLatency = python["sigkill/mp.Pool"].flatMap { $0 < 0 ? nil : $0 }
        table.add(workload: "SIGKILL a busy worker → its caller has the error (ms)", crew: latency,
                  crewLabel: "ProcessPool", python: pythonLatency,
                  pythonLabel: pythonLatency == nil ? "mp.Pool: never" : "mp.Pool", lowerIsBetter: true)
    }

    // MARK: Helpers

    func status(_ text: String) {
        var line = "crew-bench: \(text)\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    func ipc(_ table: inout Table, parts: Set<String>) async throws {
        let rounds = quick ? 1 : 3
        func started<A, R>(_ function: Function<A, R>, _ args: A) throws -> Crew.Process<A, R> {
            let p = Crew.Process(target: function, args: args)
            try p.start()
            return p
        }

        // One producer process, the parent consumes: messages per second (and MB/s for big ones).
        func queueRate(count: Int, size: Int) async throws -> Double {
            try await Self.median(rounds: rounds, warmUp: true) {
                let q = try Queue<[UInt8]>()
                let start = ContinuousClock.now
                let producer = try started(BenchFunctions.produce, QueueBench(queue: q, count: count, size: size))
                var last: [UInt8] = []
                for _ in 0..<count { last = try q.get(timeout: nil) }
                precondition(last.count == size && last.allSatisfy { $0 == 7 }, "a message came out wrong")
                let rate = Double(count) / Self.seconds(ContinuousClock.now - start)
                _ = try await producer.value
                return rate
            }
        }
        let smallCount = quick ? 200_000 : 1_000_000
        status("ipc: queue, 1 producer → 1 consumer, \(smallCount) messages of 64 B")
        let small = !parts.contains("queue") ? .nan : try await queueRate(count: smallCount, size: 64)
        let bigCount = quick ? 2_000 : 20_000
        status("ipc: queue, \(bigCount) messages of 64 KiB")
        let big = !parts.contains("big") ? .nan : try await queueRate(count: bigCount, size: 65_536) * 65_536 / 1e6

        // Two producers and two consumers, all child processes; every number must arrive exactly once.
        let manyCount = quick ? 100_000 : 500_000
        status("ipc: queue, 2 producers × 2 consumers, \(2 * manyCount) numbers")
        let many = !parts.contains("many") ? .nan : try await Self.median(rounds: rounds, warmUp: true) {
            let q = try Queue<Int>(maxSize: 100_000)
            let start = ContinuousClock.now
            let consumers = try (0..<2).map { _ in try started(BenchFunctions.consumeNumbers, q) }
            let producers = try (0..<2).map { i in
                try started(BenchFunctions.produceNumbers, NumberBench(queue: q, first: i * manyCount, count: manyCount))
            }
            for p in producers { _ = try await p.value }
            try q.put(-1, timeout: nil)
            try q.put(-1, timeout: nil)
            var count = 0
            var sum = 0
            for c in consumers {
                let figures = try await c.value
                count += figures[0]
                sum &+= figures[1]
            }
            let rate = Double(2 * manyCount) / Self.seconds(ContinuousClock.now - start)
            let total = 2 * manyCount
            precondition(count == total && sum == total * (total - 1) / 2, "lost or duplicated messages")
            return rate
        }

        // Ping-pong of one byte with a child through a pipe: microseconds per round trip.
        let pings = quick ? 20_000 : 100_000
        status("ipc: pipe ping-pong, \(pings) round trips")
        let pipe = !parts.contains("pipe") ? .nan : try await Self.median(rounds: rounds, warmUp: true) {
            let (mine, theirs) = try Crew.Pipe().ends
            let echo = try started(BenchFunctions.echoPipe, theirs)
            theirs.close()
            let byte: [UInt8] = [1]
            try mine.sendBytes(byte)
            _ = try mine.recvBytes()
            let start = ContinuousClock.now
            for _ in 0..<pings {
                try mine.sendBytes(byte)
                _ = try mine.recvBytes()
            }
            let micros = Self.us(ContinuousClock.now - start) / Double(pings)
            mine.close()
            _ = try await echo.value
            return micros
        }

        // Two processes increment a shared counter under its lock: increments per second.
        let increments = quick ? 100_000 : 500_000
        status("ipc: shared value + lock, 2 processes × \(increments) increments")
        let value = !parts.contains("value") ? .nan : try await Self.median(rounds: rounds, warmUp: true) {
            let counter = try SharedValue(0)
            let start = ContinuousClock.now
            let workers = try (0..<2).map { _ in try started(BenchFunctions.increment, CounterBench(counter: counter, times: increments)) }
            for w in workers { _ = try await w.value }
            let rate = Double(2 * increments) / Self.seconds(ContinuousClock.now - start)
            precondition(counter.value == 2 * increments, "lost increments")
            return rate
        }

        status("ipc: Python")
        let python = try runPeer("ipc.py", [quick ? "quick" : "full"] + parts.sorted())
        table.add(workload: "queue 1 → 1 process, 64 B messages (messages/s)", crew: small, crewLabel: "Queue",
                  python: python["queue/mp.Queue"], pythonLabel: "mp.Queue", lowerIsBetter: false)
        table.add(workload: "queue 1 → 1 process, 64 KiB messages (MB/s)", crew: big, crewLabel: "Queue",
                  python: python["queue_big/mp.Queue"], pythonLabel: "mp.Queue", lowerIsBetter: false)
        table.add(workload: "queue 2 × 2 processes, numbers (messages/s)", crew: many, crewLabel: "Queue",
                  python: python["queue_many/mp.Queue"], pythonLabel: "mp.Queue", lowerIsBetter: false)
        table.add(workload: "pipe ping-pong of 1 byte (µs per round trip)", crew: pipe, crewLabel: "Crew.Pipe",
                  python: python["pipe/mp.Pipe"], pythonLabel: "mp.Pipe", lowerIsBetter: true)
        table.add(workload: "pipe ping-pong of 1 byte (µs per round trip)", crew: pipe, crewLabel: "Crew.Pipe",
                  python: python["pipe/os.pipe"], pythonLabel: "os.pipe", lowerIsBetter: true)
        table.add(workload: "shared counter under a lock, 2 processes (increments/s)", crew: value,
                  crewLabel: "SharedValue", python: python["value/mp.Value"], pythonLabel: "mp.Value + lock",
                  lowerIsBetter: false)
    }

    static func median(rounds: Int, warmUp: Bool = false, _ body: () async throws -> Double) async throws -> Double {
        if warmUp { _ = try await body() }
        var values: [Double] = []
        for _ in 0..<rounds { values.append(try await body()) }
        return median(values)
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted.count % 2 == 1
            ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    static func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15 }
    static func us(_ d: Duration) -> Double { ms(d) * 1e3 }
    static func seconds(_ d: Duration) -> Double { ms(d) / 1e3 }

    /// Runs a Python peer; returns its figures by "workload/variant".
    func runPeer(_ script: String, _ arguments: [String]) throws -> [String: Double] {
        if skipPython { return [:] }
        struct Figure: Decodable {
            var workload: String
            var variant: String
            var value: Double
        }
        let command = ([python, "\(peers)/\(script)"] + arguments).map(Self.shellQuoted).joined(separator: " ")
        fflush(nil)
        guard let pipe = popen(command, "r") else { throw ValidationError("cannot run \(command)") }
        let output = Machine.readAll(pipe)
        let status = pclose(pipe)
        guard status == 0 else { throw ValidationError("\(command) failed (status \(status))") }
        var figures: [String: Double] = [:]
        for line in output.split(separator: UInt8(ascii: "\n")) {
            guard let figure = try? JSONDecoder().decode(Figure.self, from: Data(line)) else { continue }
            figures["\(figure.workload)/\(figure.variant)"] = figure.value
        }
        return figures
    }

    static func shellQuoted(_ word: String) -> String {
        "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }
}

/// The result table: one row per comparison, with the ratio in Crew's favour (>1 means Crew is faster).
struct Table {
    struct Row {
        var workload: String
        var crewLabel: String
        var crew: Double
        var pythonLabel: String
        var python: Double?
        var lowerIsBetter: Bool

        var ratio: Double? {
            guard let python, crew > 0, python > 0 else { return nil }
            return lowerIsBetter ? python / crew : crew / python
        }
    }

    var rows: [Row] = []

    mutating func add(
        workload: String,
        crew: Double,
        crewLabel: String,
        python: Double?,
        pythonLabel: String,
        lowerIsBetter: Bool
    ) {
        guard !crew.isNaN else { return }  // A workload that was not run.
        rows.append(Row(workload: workload, crewLabel: crewLabel, crew: crew, pythonLabel: pythonLabel, python: python, lowerIsBetter: lowerIsBetter))
    }

    func render() -> String {
        let header = ["workload", "Crew", "figure", "Python", "figure", "Crew is"]
        let body = rows.map { row in
            [
                row.workload, row.crewLabel, Self.format(row.crew), row.pythonLabel,
                row.python.map(Self.format) ?? "n/a",
                row.ratio.map { Self.fixed($0, 2) + "× as fast" } ?? "n/a",
            ]
        }
        let all = [header] + body
        let widths = (0..<header.count).map { column in all.map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            "| " + zip(cells, widths).map { $0 + String(repeating: " ", count: max(0, $1 - $0.count)) }.joined(separator: " | ") + " |"
        }
        let separator = "|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|"
        return ([line(header), separator] + body.map(line)).joined(separator: "\n")
    }

    static func format(_ value: Double) -> String {
        value >= 100 ? fixed(value, 0) : value >= 10 ? fixed(value, 1) : fixed(value, 2)
    }

    /// `value` with `digits` decimals.
    static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (value * scale).rounded()
        let whole = Int(scaled / scale)
        let fraction = Int(abs(scaled.truncatingRemainder(dividingBy: scale)))
        guard digits > 0 else { return "\(whole)" }
        let text = String(fraction)
        return "\(whole).\(String(repeating: "0", count: max(0, digits - text.count)))\(text)"
    }
}

/// What the benchmark ran on, for the record.
enum Machine {
    /// Bytes the heap has handed out and not taken back (glibc's `mallinfo2`): what live objects use, whatever
    /// the heap kept from earlier work.
    static func heapBytesInUse() -> Int {
        crewHeapBytesInUse()
    }

    /// This process's resident memory, in bytes (from /proc/self/statm).
    static func residentBytes() -> Int {
        let fields = read("/proc/self/statm").split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func read(_ path: String) -> String {
        guard let file = fopen(path, "r") else { return "" }
        defer { fclose(file) }
        return String(decoding: readAll(file), as: UTF8.self)
    }

    /// Everything left to read from a stdio stream.
    static func readAll(_ file: UnsafeMutablePointer<FILE>) -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n <= 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
        }
        return bytes
    }

    static func trimmed(_ text: String) -> String {
        String(text.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }

    static func describe() -> String {
        let cpu =
            read("/proc/cpuinfo").split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last.map { trimmed(String($0)) } ?? "unknown CPU"
        let kernel = trimmed(read("/proc/sys/kernel/osrelease"))
        let memory = ProcessInfo.processInfo.physicalMemory >> 30
        return "machine: \(ProcessInfo.processInfo.activeProcessorCount) CPUs (\(cpu)), \(memory) GiB, Linux \(kernel)"
    }
}
