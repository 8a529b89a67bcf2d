import Crew
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// ProcessPool against multiprocessing.Pool and ProcessPoolExecutor: two worker processes on both sides.

extension CrewBench {
    static let poolParts: Set<String> = ["map", "apply", "imap", "cpu", "kill", "trap"]

    /// The CPU-bound rows' work, the same on every side: `items` items, each `steps` steps of the same loop.
    var cpuWork: (items: Int, steps: Int, rounds: Int) { quick ? (4, 500_000, 1) : (16, 2_000_000, 5) }

    /// Python's automatic chunk size for `map` (four chunks per worker), which ProcessPool uses too.
    static func automaticChunkSize(count: Int, processes: Int) -> Int {
        let (size, extra) = count.quotientAndRemainder(dividingBy: processes * 4)
        return size + (extra > 0 ? 1 : 0)
    }

    /// Throws unless Python's CPU-bound loop summed to the same checksum as Swift's (both modulo 2^52, so that the
    /// figure survives JSON's doubles exactly).
    static func checkSameWork(_ checksum: UInt64, _ python: Side?) throws {
        guard let python else { return }
        let mine = checksum % (1 << 52)
        guard UInt64(python.value) == mine else {
            throw BenchError(
                "the CPU-bound loop summed to \(mine) in Swift and \(UInt64(python.value)) in Python "
                    + "(mod 2^52): not the same work")
        }
    }

    /// The `p`-th percentile (0...100) of sorted `values`, by the nearest rank (the peers use the same).
    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    func pool(_ report: inout Report, parts: Set<String>) async throws {
        let rounds = quick ? 1 : 5
        let mapCount = quick ? 200_000 : 1_000_000
        let calls = quick ? 5_000 : 20_000
        let (cpuItems, cpuSteps, cpuRounds) = cpuWork

        let pool = try ProcessPool(processes: 2)
        _ = try await pool.map(BenchFunctions.square, 0..<1000)
        let workers = pool.workerPIDs

        status("pool: map of \(mapCount) squares")
        let map =
            !parts.contains("map")
            ? [.nan, .nan]
            : try await Measure.median(rounds: rounds) {
                () async throws -> [Double] in
                let items = Array(0..<mapCount)
                let cpu = CPUWindow(pids: workers)
                let start = ContinuousClock.now
                let squares = try await pool.map(BenchFunctions.square, items)
                let rate = Double(mapCount) / Measure.seconds(ContinuousClock.now - start)
                guard squares.count == mapCount && squares[mapCount - 1] == (mapCount - 1) * (mapCount - 1) else {
                    throw BenchError("map returned wrong squares")
                }
                return [rate, cpu.microseconds(per: mapCount)]
            }

        status("pool: \(calls) applyAsync, then every value")
        let apply =
            !parts.contains("apply")
            ? [.nan, .nan]
            : try await Measure.median(rounds: rounds) {
                () async throws -> [Double] in
                let cpu = CPUWindow(pids: workers)
                let start = ContinuousClock.now
                let results = try (0..<calls).map { try pool.applyAsync(BenchFunctions.square, $0) }
                for result in results { _ = try await result.value }
                return [Double(calls) / Measure.seconds(ContinuousClock.now - start), cpu.microseconds(per: calls)]
            }

        status("pool: imapUnordered of \(calls), chunk size 1")
        let imap =
            !parts.contains("imap")
            ? [.nan, .nan]
            : try await Measure.median(rounds: rounds) {
                () async throws -> [Double] in
                let cpu = CPUWindow(pids: workers)
                let start = ContinuousClock.now
                var count = 0
                for try await _ in try pool.imapUnordered(BenchFunctions.square, 0..<calls) { count += 1 }
                guard count == calls else { throw BenchError("imapUnordered gave \(count) results of \(calls)") }
                return [Double(calls) / Measure.seconds(ContinuousClock.now - start), cpu.microseconds(per: calls)]
            }
        guard pool.workerPIDs == workers else { throw BenchError("a pool worker was replaced during the run") }
        pool.close()
        try await pool.join()

        status("pool: CPU-bound work on 1 and 2 workers")
        let jobs = (0..<cpuItems).map { BurnJob(seed: $0, steps: cpuSteps) }
        var checksum: UInt64 = 0
        func cpuRate(_ processes: Int) async throws -> Double {
            let pool = try ProcessPool(processes: processes)
            _ = try await pool.map(
                BenchFunctions.burn, (0..<processes).map { BurnJob(seed: $0, steps: 1000) }, chunkSize: 1)
            let rate = try await Measure.median(rounds: cpuRounds, warmUp: false) {
                let start = ContinuousClock.now
                let results = try await pool.map(BenchFunctions.burn, jobs, chunkSize: 1)
                let rate = Double(cpuItems) / Measure.seconds(ContinuousClock.now - start)
                checksum = results.reduce(0, &+)
                return rate
            }
            pool.close()
            try await pool.join()
            return rate
        }
        let cpu1 = !parts.contains("cpu") ? .nan : try await cpuRate(1)
        let cpu2 = !parts.contains("cpu") ? .nan : try await cpuRate(2)

        status("pool: SIGKILL a busy worker")
        let kill =
            !parts.contains("kill")
            ? .nan
            : try await Measure.median(rounds: quick ? 3 : 10, warmUp: false) {
                let pool = try ProcessPool(processes: 1)
                _ = try await pool.apply(BenchFunctions.square, 1)
                let busy = try pool.applyAsync(BenchFunctions.sleepLong, Crew.Empty())
                try await Task.sleep(for: .milliseconds(300))
                let start = ContinuousClock.now
                for pid in pool.workerPIDs { Glibc.kill(pid, SIGKILL) }
                do {
                    _ = try await busy.value
                    throw BenchError("a call on a killed worker succeeded")
                } catch let error as CrewError where error.code == .workerCrashed {}
                let elapsed = Measure.ms(ContinuousClock.now - start)
                guard try await pool.apply(BenchFunctions.square, 3) == 9 else {
                    throw BenchError("the pool is wrong after a kill")
                }
                pool.close()
                try await pool.join()
                return elapsed
            }

        status("pool: a call that traps, until its caller has the error (spawn and forkserver workers)")
        let traps = quick ? 20 : 100
        // [p50, p99, the share of errors whose lastStderr held the runtime's "Fatal error" line, the same for an
        // index out of range, the share of index-out-of-range errors whose lastStderr names the call], per start
        // method.
        func trapRound(_ method: Crew.StartMethod) async throws -> [Double] {
            let pool = try ProcessPool(processes: 1, startMethod: method)
            var times: [Double] = []
            var withMessage = 0
            var indexWithMessage = 0
            var indexNamed = 0
            for n in 0..<traps {
                _ = try await pool.apply(BenchFunctions.square, 2)  // A live, warm worker (untimed).
                let start = ContinuousClock.now
                do {
                    _ = try await pool.apply(BenchFunctions.trap, n)
                    throw BenchError("a call that traps returned")
                } catch let error as CrewError where error.code == .workerCrashed {
                    times.append(Measure.ms(ContinuousClock.now - start))
                    if error.lastStderr?.contains("Fatal error: bench trap \(n)") == true { withMessage += 1 }
                }
                if n % 10 == 0 {
                    do {
                        _ = try await pool.apply(BenchFunctions.trapIndex, 7)
                    } catch let error as CrewError where error.code == .workerCrashed {
                        if error.lastStderr?.contains("Fatal error") == true { indexWithMessage += 1 }
                        if error.lastStderr?.contains("while running \"bench.trapIndex\"") == true { indexNamed += 1 }
                    }
                }
            }
            pool.close()
            try await pool.join()
            times.sort()
            return [
                Self.percentile(times, 50), Self.percentile(times, 99), Double(withMessage) / Double(traps),
                Double(indexWithMessage) / Double((traps + 9) / 10), Double(indexNamed) / Double((traps + 9) / 10),
            ]
        }
        let none = [Double.nan, .nan, .nan, .nan, .nan]
        let trapSpawn = !parts.contains("trap") ? none : try await trapRound(.spawn)
        let trapForkserver = !parts.contains("trap") ? none : try await trapRound(.forkserver)

        let python = try peer(
            "pool.py",
            [
                "parts": parts.sorted(), "rounds": rounds, "map": mapCount, "calls": calls, "cpu_items": cpuItems,
                "cpu_steps": cpuSteps, "cpu_rounds": cpuRounds, "kill_wait_s": quick ? 2 : 5, "traps": traps,
            ], into: &report)
        let warm = "the pool's 2 workers started and warm before; median of \(rounds) rounds after one untimed"
        report.add(
            Row(
                id: "pool.map", workload: "map of \(Self.count(mapCount)) squares", unit: "calls/s",
                lowerIsBetter: false,
                window: "the map call until its last result; \(warm)",
                crew: Side(
                    who: "Crew",
                    setup: "ProcessPool(processes: 2).map(square, items), chunkSize automatic: "
                        + "\(Self.count(Self.automaticChunkSize(count: mapCount, processes: 2)))",
                    value: map[0], cpuMicroseconds: map[1]),
                peers: [python.side("pool.map/mp.Pool")].compactMap { $0 }
            ))
        report.add(
            Row(
                id: "pool.apply", workload: "\(Self.count(calls)) applyAsync, then every value", unit: "calls/s",
                lowerIsBetter: false, window: "the first submit until the last value; \(warm)",
                crew: Side(
                    who: "Crew",
                    setup: "ProcessPool(processes: 2): applyAsync(square, i) each, then "
                        + "await value of each", value: apply[0], cpuMicroseconds: apply[1]),
                peers: [python.side("pool.apply/mp.Pool"), python.side("pool.apply/ProcessPoolExecutor")].compactMap {
                    $0
                }
            ))
        report.add(
            Row(
                id: "pool.imap", workload: "imapUnordered of \(Self.count(calls)) squares, chunk size 1",
                unit: "calls/s",
                lowerIsBetter: false, window: "the call until the last result; \(warm)",
                crew: Side(
                    who: "Crew", setup: "ProcessPool(processes: 2).imapUnordered(square, items), chunkSize 1",
                    value: imap[0], cpuMicroseconds: imap[1]),
                peers: [python.side("pool.imap/mp.Pool")].compactMap { $0 }
            ))
        try Self.checkSameWork(checksum, python["pool.cpu/checksum"])
        let cpuWindow =
            "map of \(cpuItems) items, chunk size 1, until the last result; the pool started before; "
            + "median of \(cpuRounds) rounds"
        let work =
            "\(cpuItems) items of \(Self.count(cpuSteps)) steps of x = x * 6364136223846793005 + i mod 2^64 "
            + "(the same loop and the same results on both sides)"
        for (processes, rate) in [(1, cpu1), (2, cpu2)] {
            report.add(
                Row(
                    id: "pool.cpu-\(processes)",
                    workload: "CPU-bound: \(work), \(processes) worker process"
                        + (processes > 1 ? "es" : ""), unit: "items/s", lowerIsBetter: false, window: cpuWindow,
                    crew: Side(
                        who: "Crew", setup: "ProcessPool(processes: \(processes)).map(burn, items, chunkSize: 1)",
                        value: rate),
                    peers: [python.side("pool.cpu/mp.Pool(\(processes))")].compactMap { $0 }
                ))
        }
        var speedUps: [Side] = []
        if let one = python["pool.cpu/mp.Pool(1)"], let two = python["pool.cpu/mp.Pool(2)"] {
            speedUps.append(
                Side(who: "Python", setup: "multiprocessing.Pool, 2 processes against 1", value: two.value / one.value))
        }
        report.add(
            Row(
                id: "pool.cpu-speedup", workload: "CPU-bound: the speed-up of 2 worker processes over 1", unit: "×",
                lowerIsBetter: false, window: "the two rows above",
                crew: Side(who: "Crew", setup: "ProcessPool, 2 processes against 1", value: cpu2 / cpu1),
                peers: speedUps, comparable: false
            ))
        for (method, figures) in [("spawn", trapSpawn), ("forkserver", trapForkserver)] {
            for (index, name) in [(0, "p50"), (1, "p99")] {
                report.add(
                    Row(
                        id: "pool.trap-\(method)-\(name)",
                        workload: "a call that traps (fatalError) in a worker: until its "
                            + "caller has the error, \(name) of \(traps)", unit: "ms", lowerIsBetter: true,
                        window: "the call until its caller has the error; the worker was live and warm before each",
                        crew: Side(
                            who: "Crew",
                            setup: "ProcessPool(processes: 1, startMethod: .\(method)): apply(trap); "
                                + "Swift's backtracer off in workers (the default)", value: figures[index],
                            details: [
                                "fatal_error_line_share": figures[2], "index_out_of_range_line_share": figures[3],
                                "index_out_of_range_call_named_share": figures[4],
                            ]),
                        peers: [python.side("pool.trap/ProcessPoolExecutor \(name)"), python.side("pool.trap/mp.Pool")]
                            .compactMap { side in
                                side.map { side in
                                    var side = side
                                    if side.value < 0 { side.value = .infinity }
                                    return side
                                }
                            }
                    ))
            }
        }
        let pythonKill = python["pool.kill/mp.Pool"].map { side -> Side in
            var side = side
            side.who = "Python"
            if side.value < 0 { side.value = .infinity }
            return side
        }
        report.add(
            Row(
                id: "pool.kill", workload: "SIGKILL the worker running a call: until its caller has an error",
                unit: "ms",
                lowerIsBetter: true, window: "the kill until the caller's error; median of \(quick ? 3 : 10) kills",
                crew: Side(
                    who: "Crew",
                    setup: "ProcessPool(processes: 1), a call sleeping 60 s; the error is "
                        + "CrewError.workerCrashed", value: kill),
                peers: [pythonKill].compactMap { $0 }
            ))
    }
}
