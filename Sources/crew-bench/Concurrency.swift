// Over 500 lines: each concurrency workload's Crew side sits beside its Swift floor, so that the two sides of a
// row can be compared line by line.

import Crew
import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// Threads, thread pools and coroutines against threading, multiprocessing.dummy, ThreadPoolExecutor, asyncio and
// gevent (bench/peers/concurrency.py), each beside Swift's own floor: the same work done with a bare pthread,
// Dispatch, Task or task group, with nothing of Crew's around it. Crew's cost over that floor is the figure to keep
// low.

extension CrewBench {
    static let concurrencyParts: Set<String> = [
        "threads", "apply", "map", "cpu", "spawn", "memory", "sleep", "pool", "mixed",
    ]

    func concurrency(_ report: inout Report, parts: Set<String>) async throws {
        let rounds = quick ? 1 : 5
        let threadCount = quick ? 2_000 : 10_000
        let calls = quick ? 5_000 : 20_000
        let items = quick ? 200_000 : 1_000_000
        let coroutines = quick ? 20_000 : 100_000
        let sleepers = quick ? 2_000 : 10_000
        let poolItems = quick ? 20_000 : 100_000
        let ioCalls = quick ? 2_000 : 10_000
        let (cpuItems, cpuSteps, cpuRounds) = cpuWork
        let none = [Double.nan, .nan]

        // Threads: [threads/s, CPU µs per thread].
        func threadRound(_ body: () throws -> Void) throws -> [Double] {
            let cpu = CPUWindow(pids: [])
            let start = ContinuousClock.now
            for _ in 0..<threadCount { try body() }
            return [
                Double(threadCount) / Measure.seconds(ContinuousClock.now - start), cpu.microseconds(per: threadCount),
            ]
        }
        let crewThread = {
            let t = Crew.Thread {}
            try t.start()
            try t.join()
        }
        status("concurrency: start and join \(threadCount) threads (Crew.Thread and bare pthreads in turns)")
        let pthreadRound = {
            try threadRound {
                var thread = pthread_t()
                guard pthread_create(&thread, nil, { _ in nil }, nil) == 0 else { throw BenchError("pthread_create") }
                pthread_join(thread, nil)
            }
        }
        let (threads, threadsFloor) =
            !parts.contains("threads")
            ? (none, none)
            : try await Measure.interleaved(rounds: rounds, { try threadRound(crewThread) }, pthreadRound)
        let (threadsCalm, threadsCalmFloor) =
            !parts.contains("threads")
            ? (none, none)
            : try await withoutSpinning {
                try await Measure.interleaved(rounds: rounds, { try threadRound(crewThread) }, pthreadRound)
            }

        status("concurrency: \(calls) applyAsync then every value (ThreadPool, then Dispatch)")
        let applyRound: () async throws -> Double = {
            let pool = try ThreadPool(processes: 2)
            let start = ContinuousClock.now
            let results = try (0..<calls).map { try pool.applyAsync(BenchFunctions.square, $0) }
            var sum = 0
            for result in results { sum &+= try result.get() }
            let rate = Double(calls) / Measure.seconds(ContinuousClock.now - start)
            pool.close()
            try await pool.join()
            guard sum == Self.sumOfSquares(calls) else { throw BenchError("ThreadPool applyAsync: wrong values") }
            return rate
        }
        let applyFloorRound: () async throws -> Double = {
            let out = Buffer(count: calls)
            defer { out.free() }
            let queue = DispatchQueue(label: "floor", attributes: .concurrent)
            let start = ContinuousClock.now
            let square = opaque(BenchFunctions.squareBody)
            // Dispatch's applyAsync and get: a work item per call, run on a concurrent queue, then waited for.
            let items = (0..<calls).map { i in DispatchWorkItem { out[i] = square(i) } }
            for item in items { queue.async(execute: item) }
            var sum = 0
            for (i, item) in items.enumerated() {
                item.wait()
                sum &+= out[i]
            }
            let rate = Double(calls) / Measure.seconds(ContinuousClock.now - start)
            guard sum == Self.sumOfSquares(calls) else { throw BenchError("Dispatch: wrong values") }
            return rate
        }
        let (apply, applyFloor) =
            !parts.contains("apply")
            ? (Double.nan, Double.nan)
            : try await Measure.interleaved(rounds: rounds, applyRound, applyFloorRound)

        let chunk = Self.automaticChunkSize(count: items, processes: 2)
        status("concurrency: map of \(items) squares (ThreadPool, then Dispatch)")
        let mapRound: () async throws -> Double = {
            let pool = try ThreadPool(processes: 2)
            let input = Array(0..<items)
            let start = ContinuousClock.now
            let squares = try await pool.map(BenchFunctions.square, input)
            let rate = Double(items) / Measure.seconds(ContinuousClock.now - start)
            pool.close()
            try await pool.join()
            guard squares.count == items, squares[items - 1] == (items - 1) * (items - 1) else {
                throw BenchError("ThreadPool map: wrong squares")
            }
            return rate
        }
        let mapFloorRound: () async throws -> Double = {
            let input = Array(0..<items)
            let start = ContinuousClock.now
            let squares = [Int](unsafeUninitializedCapacity: items) { buffer, initialized in
                let out = Buffer(buffer)
                input.withUnsafeBufferPointer { input in
                    let source = ReadOnly(input)
                    let square = opaque(BenchFunctions.squareBody)
                    DispatchQueue.concurrentPerform(iterations: (items + chunk - 1) / chunk) { c in
                        for i in (c * chunk)..<min(items, (c + 1) * chunk) { out[i] = square(source[i]) }
                    }
                }
                initialized = items
            }
            let rate = Double(items) / Measure.seconds(ContinuousClock.now - start)
            guard squares[items - 1] == (items - 1) * (items - 1) else {
                throw BenchError("Dispatch map: wrong squares")
            }
            return rate
        }
        let (map, mapFloor) =
            !parts.contains("map")
            ? (Double.nan, Double.nan)
            : try await Measure.interleaved(rounds: rounds, mapRound, mapFloorRound)

        status("concurrency: CPU-bound work on 1 and 2 threads (ThreadPool, then Dispatch)")
        let jobs = (0..<cpuItems).map { BurnJob(seed: $0, steps: cpuSteps) }
        var checksum: UInt64 = 0
        func cpuFloor(_ threads: Int) async throws -> Double {
            do {
                let start = ContinuousClock.now
                let sum = Atomic<UInt64>(0)
                if threads == 1 {
                    for job in jobs {
                        sum.wrappingAdd(BenchFunctions.burnLoop(seed: job.seed, steps: job.steps), ordering: .relaxed)
                    }
                } else {
                    DispatchQueue.concurrentPerform(iterations: cpuItems) { i in
                        sum.wrappingAdd(BenchFunctions.burnLoop(seed: i, steps: cpuSteps), ordering: .relaxed)
                    }
                }
                let rate = Double(cpuItems) / Measure.seconds(ContinuousClock.now - start)
                guard sum.load(ordering: .relaxed) == checksum else {
                    throw BenchError("the floor's loop summed otherwise")
                }
                return rate
            }
        }
        func cpuPair(_ threads: Int) async throws -> (Double, Double) {
            let pool = try ThreadPool(processes: threads)
            let rates = try await Measure.interleaved(
                rounds: cpuRounds,
                {
                    let start = ContinuousClock.now
                    let results = try await pool.map(BenchFunctions.burn, jobs, chunkSize: 1)
                    checksum = results.reduce(0, &+)
                    return Double(cpuItems) / Measure.seconds(ContinuousClock.now - start)
                }, { try await cpuFloor(threads) })
            pool.close()
            try await pool.join()
            return rates
        }
        let (cpu1, cpu1Floor) = !parts.contains("cpu") ? (Double.nan, Double.nan) : try await cpuPair(1)
        let (cpu2, cpu2Floor) = !parts.contains("cpu") ? (Double.nan, Double.nan) : try await cpuPair(2)

        status("concurrency: spawn and join \(coroutines) coroutines (spawn, then bare tasks)")
        let spawnedRound: () async throws -> Double = {
            let start = ContinuousClock.now
            let all = (0..<coroutines).map { i in Crew.spawn { i } }
            var sum = 0
            for c in all { sum &+= try await c.value }
            let rate = Double(coroutines) / Measure.seconds(ContinuousClock.now - start)
            guard sum == coroutines * (coroutines - 1) / 2 else { throw BenchError("spawn: wrong values") }
            return rate
        }
        let spawnFloorRound: () async throws -> Double = {
            let start = ContinuousClock.now
            let all = (0..<coroutines).map { i in Task { i } }
            var sum = 0
            for task in all { sum &+= await task.value }
            let rate = Double(coroutines) / Measure.seconds(ContinuousClock.now - start)
            guard sum == coroutines * (coroutines - 1) / 2 else { throw BenchError("Task: wrong values") }
            return rate
        }
        let (spawned, spawnFloor) =
            !parts.contains("spawn")
            ? (Double.nan, Double.nan)
            : try await Measure.interleaved(rounds: rounds, spawnedRound, spawnFloorRound)

        status("concurrency: memory of \(coroutines) parked coroutines, each kind in a fresh child process")
        func parked(_ kind: String) async throws -> [Double] {
            let p = Crew.Process(target: BenchFunctions.parked, args: ParkJob(kind: kind, count: coroutines))
            try await p.start()
            let figures = try await p.value
            try await p.join()
            return figures.map { $0 / 1024 }
        }
        let (memory, memoryFloor) =
            !parts.contains("memory")
            ? (none, none)
            : try await Measure.interleaved(rounds: rounds, { try await parked("crew") }, { try await parked("floor") })

        status("concurrency: \(sleepers) coroutines sleeping 100 ms (spawn, then bare tasks)")
        let sleepRound: () async throws -> Double = {
            let start = ContinuousClock.now
            let all = (0..<sleepers).map { _ in Crew.spawn { try await Task.sleep(for: .milliseconds(100)) } }
            try await Crew.joinAll(all)
            return Measure.seconds(ContinuousClock.now - start)
        }
        let sleepFloorRound: () async throws -> Double = {
            let start = ContinuousClock.now
            let all = (0..<sleepers).map { _ in Task { try await Task.sleep(for: .milliseconds(100)) } }
            for task in all { try await task.value }
            return Measure.seconds(ContinuousClock.now - start)
        }
        let (sleep, sleepFloor) =
            !parts.contains("sleep")
            ? (Double.nan, Double.nan)
            : try await Measure.interleaved(rounds: rounds, sleepRound, sleepFloorRound)

        status("concurrency: a pool of 100 coroutines maps \(poolItems) items (CoroutinePool, then a task group)")
        let poolRound: () async throws -> Double = {
            let start = ContinuousClock.now
            let coroutinePool = try CoroutinePool(size: 100)
            // Each item's work yields once, as an I/O wait would (every side does the same).
            let out = try await coroutinePool.map(0..<poolItems) { (n: Int) async -> Int in
                await Task.yield()
                return n &* 2
            }
            let rate = Double(poolItems) / Measure.seconds(ContinuousClock.now - start)
            guard out.count == poolItems, out[poolItems - 1] == (poolItems - 1) * 2 else {
                throw BenchError("CoroutinePool map: wrong results")
            }
            return rate
        }
        let poolFloorRound: () async throws -> Double = {
            let out = Buffer(count: poolItems)
            defer { out.free() }
            let next = Counter()
            let start = ContinuousClock.now
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<100 {
                    group.addTask {
                        while true {
                            let i = next.value.add(1, ordering: .relaxed).oldValue
                            if i >= poolItems { return }
                            await Task.yield()
                            out[i] = i &* 2
                        }
                    }
                }
            }
            let rate = Double(poolItems) / Measure.seconds(ContinuousClock.now - start)
            guard out[poolItems - 1] == (poolItems - 1) * 2 else { throw BenchError("task group map: wrong results") }
            return rate
        }
        let (pool, poolFloor) =
            !parts.contains("pool")
            ? (Double.nan, Double.nan)
            : try await Measure.interleaved(rounds: rounds, poolRound, poolFloorRound)

        status("concurrency: processes(2, coroutinesEach: 100), \(ioCalls) calls sleeping 10 ms, in chunks of 100")
        let mixedRound: () async throws -> Double = {
            let executor = try Crew.Executor.processes(2, coroutinesEach: 100)
            _ = try await executor.map(BenchFunctions.sleepMs, [1, 1], chunkSize: 1)  // Workers up.
            let start = ContinuousClock.now
            let slept = try await executor.map(
                BenchFunctions.sleepMs, Array(repeating: 10, count: ioCalls), chunkSize: 100)
            let elapsed = Measure.seconds(ContinuousClock.now - start)
            try await executor.shutdown()
            guard slept.count == ioCalls else { throw BenchError("the executor returned \(slept.count) of \(ioCalls)") }
            return elapsed
        }
        // The floor: two child processes started before, each running its half 100 at a time in a task group.
        let mixedFloorRound: () async throws -> Double = {
            let go = try Crew.Barrier(parties: 3)
            let children = try (0..<2).map { _ in
                let p = Crew.Process(
                    target: BenchFunctions.sleepMany,
                    args: SleepManyJob(count: ioCalls / 2, concurrency: 100, milliseconds: 10, start: go))
                try p.start()
                return p
            }
            _ = try go.wait()
            let start = ContinuousClock.now
            var slept = 0
            for child in children { slept += try await child.value }
            let elapsed = Measure.seconds(ContinuousClock.now - start)
            for child in children { try await child.join() }
            guard slept == ioCalls / 2 * 2 else { throw BenchError("the floor's children slept \(slept) times") }
            return elapsed
        }
        let (mixed, mixedFloor) =
            !parts.contains("mixed")
            ? (Double.nan, Double.nan)
            : try await Measure.interleaved(rounds: rounds, mixedRound, mixedFloorRound)

        let python = try peer(
            "concurrency.py",
            [
                "parts": parts.sorted(), "rounds": rounds, "threads": threadCount, "calls": calls, "items": items,
                "cpu_items": cpuItems, "cpu_steps": cpuSteps, "cpu_rounds": cpuRounds, "coroutines": coroutines,
                "sleepers": sleepers, "pool_items": poolItems, "io_calls": ioCalls,
            ], into: &report)
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        let median = "median of \(rounds) rounds after one untimed; Crew's and the floor's rounds in turns"

        for (suffix, figures, floor, note) in [
            ("", threads, threadsFloor, "join spins up to 50 µs before sleeping (the default)"),
            (".no-spin", threadsCalm, threadsCalmFloor, "spinning off (Crew.Options(spinMicroseconds: 0))"),
        ] {
            report.add(
                Row(
                    id: "threads.start-join" + suffix,
                    workload: "start + join \(Self.count(threadCount)) threads, one at a "
                        + "time" + (suffix.isEmpty ? "" : ", Crew not spinning"),
                    unit: "threads/s", lowerIsBetter: false, window: "the first start to the last join; \(median)",
                    crew: Side(
                        who: "Crew", setup: "Crew.Thread { }: start(), join(); \(note)", value: figures[0],
                        cpuMicroseconds: figures[1]),
                    floor: Side(
                        who: "Swift floor", setup: "pthread_create, pthread_join", value: floor[0],
                        cpuMicroseconds: floor[1]),
                    peers: [python.side("threads/threading")].compactMap { $0 }
                ))
        }
        report.add(
            Row(
                id: "threadpool.apply", workload: "\(Self.count(calls)) applyAsync of a square, then every value",
                unit: "calls/s", lowerIsBetter: false,
                window: "the first submit to the last value; the pool started before; "
                    + median,
                crew: Side(
                    who: "Crew", setup: "ThreadPool(processes: 2): applyAsync(square, i) each, then get() of each",
                    value: apply),
                floor: Side(
                    who: "Swift floor",
                    setup: "a DispatchWorkItem per call calling square through a function value, "
                        + "each async on a concurrent DispatchQueue (as many threads as CPUs: \(cpus) here), then wait() on "
                        + "each", value: applyFloor),
                peers: [python.side("apply/dummy.Pool"), python.side("apply/ThreadPoolExecutor")].compactMap { $0 }
            ))
        report.add(
            Row(
                id: "threadpool.map", workload: "map of \(Self.count(items)) squares on 2 threads", unit: "items/s",
                lowerIsBetter: false, window: "the map call to its result; \(median)",
                crew: Side(
                    who: "Crew",
                    setup: "ThreadPool(processes: 2).map(square, items), chunkSize automatic: "
                        + Self.count(chunk), value: map),
                floor: Side(
                    who: "Swift floor",
                    setup: "DispatchQueue.concurrentPerform (as many threads as CPUs: \(cpus) "
                        + "here) over the same chunks, calling square through a function value for each item (as a pool calls a "
                        + "registered function), into an array",
                    value: mapFloor),
                peers: [python.side("map/dummy.Pool")].compactMap { $0 }
            ))
        try Self.checkSameWork(checksum, python["cpu/checksum"])
        let work = "\(cpuItems) items of \(Self.count(cpuSteps)) steps of the same loop as the pool rows"
        for (threads, rate, floor) in [(1, cpu1, cpu1Floor), (2, cpu2, cpu2Floor)] {
            report.add(
                Row(
                    id: "threadpool.cpu-\(threads)",
                    workload: "CPU-bound: \(work), \(threads) thread" + (threads > 1 ? "s" : ""),
                    unit: "items/s", lowerIsBetter: false,
                    window: "map of the items, chunk size 1, to the last result; "
                        + "median of \(cpuRounds) rounds after one untimed; Crew's and the floor's rounds in turns",
                    crew: Side(
                        who: "Crew", setup: "ThreadPool(processes: \(threads)).map(burn, items, chunkSize: 1)",
                        value: rate),
                    floor: Side(
                        who: "Swift floor",
                        setup: threads == 1
                            ? "a plain loop on the calling thread"
                            : "DispatchQueue.concurrentPerform(iterations: \(cpuItems)), as many threads as CPUs: \(cpus) here",
                        value: floor),
                    peers: [python.side("cpu/dummy.Pool(\(threads))")].compactMap { $0 }
                ))
        }
        var speedUps: [Side] = []
        if let one = python["cpu/dummy.Pool(1)"], let two = python["cpu/dummy.Pool(2)"] {
            speedUps.append(
                Side(
                    who: "Python", setup: "multiprocessing.dummy.Pool, 2 threads against 1 (the GIL)",
                    value: two.value / one.value))
        }
        report.add(
            Row(
                id: "threadpool.cpu-speedup", workload: "CPU-bound: the speed-up of 2 threads over 1", unit: "×",
                lowerIsBetter: false, window: "the two rows above",
                crew: Side(who: "Crew", setup: "ThreadPool, 2 threads against 1", value: cpu2 / cpu1),
                floor: Side(
                    who: "Swift floor", setup: "concurrentPerform against a plain loop", value: cpu2Floor / cpu1Floor),
                peers: speedUps, comparable: false
            ))
        report.add(
            Row(
                id: "coroutines.spawn",
                workload: "spawn \(Self.count(coroutines)) coroutines returning their index, then "
                    + "join them all", unit: "per s", lowerIsBetter: false,
                window: "the first spawn to the last value; \(median)",
                crew: Side(who: "Crew", setup: "Crew.spawn { i } each, then each value", value: spawned),
                floor: Side(who: "Swift floor", setup: "Task { i } each, then each value", value: spawnFloor),
                peers: [python.side("spawn/asyncio"), python.side("spawn/gevent")].compactMap { $0 }
            ))
        for (index, metric, detail) in [
            (0, "memory-rss", "resident memory (/proc/self/statm) added"),
            (1, "memory-heap", "heap in use (glibc mallinfo2: uordblks + hblkhd) added"),
        ] {
            report.add(
                Row(
                    id: "coroutines.\(metric)",
                    workload: "\(detail) per coroutine, \(Self.count(coroutines)) parked on an "
                        + "event", unit: "KiB", lowerIsBetter: true,
                    window:
                        "each kind in a fresh child process: read before the first is made and 0.1 s after the last "
                        + "has started; median of \(rounds) processes of each, Crew's and the floor's in turns, after one "
                        + "untimed of each",
                    crew: Side(
                        who: "Crew", setup: "Crew.spawn { await event.wait() } on an AsyncEvent", value: memory[index]),
                    floor: Side(
                        who: "Swift floor", setup: "Task { await withUnsafeContinuation { … } }",
                        value: memoryFloor[index]),
                    peers: [python.side("\(metric)/asyncio"), python.side("\(metric)/gevent")].compactMap { $0 }
                ))
        }
        report.add(
            Row(
                id: "coroutines.sleep", workload: "\(Self.count(sleepers)) coroutines each sleeping 100 ms", unit: "s",
                lowerIsBetter: true, window: "the first spawn to the last join; \(median)",
                crew: Side(
                    who: "Crew", setup: "Crew.spawn { try await Task.sleep(for: .milliseconds(100)) } each, joinAll",
                    value: sleep),
                floor: Side(
                    who: "Swift floor", setup: "Task { try await Task.sleep(…) } each, then each value",
                    value: sleepFloor),
                peers: [python.side("sleep/asyncio"), python.side("sleep/gevent")].compactMap { $0 }
            ))
        report.add(
            Row(
                id: "coroutines.pool",
                workload: "a pool of 100 coroutines maps \(Self.count(poolItems)) items, each "
                    + "yielding once", unit: "items/s", lowerIsBetter: false,
                window: "the pool's start to the last result; \(median)",
                crew: Side(
                    who: "Crew", setup: "CoroutinePool(size: 100).map(items) { await Task.yield(); … }", value: pool),
                floor: Side(
                    who: "Swift floor",
                    setup: "withTaskGroup: 100 child tasks take the next index from an atomic "
                        + "counter, yield, store into a buffer", value: poolFloor),
                peers: [python.side("pool/asyncio"), python.side("pool/gevent")].compactMap { $0 }
            ))
        report.add(
            Row(
                id: "executor.processes-coroutines",
                workload: "\(Self.count(ioCalls)) calls each sleeping 10 ms, on 2 "
                    + "processes × 100 coroutines", unit: "s", lowerIsBetter: true,
                window: "the map call to its last result; the workers started before; \(median)",
                crew: Side(
                    who: "Crew",
                    setup: "Crew.Executor.processes(2, coroutinesEach: 100).map(sleep10ms, calls, "
                        + "chunkSize: 100)", value: mixed),
                floor: Side(
                    who: "Swift floor",
                    setup: "2 Crew.Process children started before, each sleeping its "
                        + "\(Self.count(ioCalls / 2)) times 100 at a time in a task group", value: mixedFloor),
                peers: [python.side("mixed/mp.Pool + gevent")].compactMap { $0 }
            ))
    }

    static func sumOfSquares(_ n: Int) -> Int {
        var sum = 0
        for i in 0..<n { sum &+= i * i }
        return sum
    }
}

/// `value`, hidden from the optimizer: a function value passed through it is called as a pool calls a registered
/// function's body, not inlined into the loop.
@_optimize(none)
func opaque<T>(_ value: T) -> T { value }

/// A shared atomic counter (an `Atomic` itself cannot be captured by a sendable closure).
final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

/// A buffer of integers that concurrent workers write at distinct indexes (the floors' result arrays).
struct Buffer: @unchecked Sendable {
    // @unchecked: each index is written by one worker only, and read after every worker has finished.
    let base: UnsafeMutablePointer<Int>

    init(count: Int) {
        base = .allocate(capacity: count)
        base.initialize(repeating: 0, count: count)
    }

    init(_ buffer: UnsafeMutableBufferPointer<Int>) {
        base = buffer.baseAddress!
    }

    subscript(_ i: Int) -> Int {
        get { base[i] }
        nonmutating set { base[i] = newValue }
    }

    func free() { base.deallocate() }
}

/// Read-only access to an array's storage from concurrent workers.
struct ReadOnly: @unchecked Sendable {
    // @unchecked: nobody writes the storage while the workers read it.
    let base: UnsafePointer<Int>

    init(_ buffer: UnsafeBufferPointer<Int>) { base = buffer.baseAddress! }

    subscript(_ i: Int) -> Int { base[i] }
}
