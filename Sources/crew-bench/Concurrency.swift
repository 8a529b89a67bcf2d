@_spi(Internals) import Crew
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// Threads, thread pools and coroutines against threading, multiprocessing.dummy, ThreadPoolExecutor, asyncio and
// gevent (bench/peers/concurrency.py).

extension CrewBench {
    static let concurrencyParts: Set<String> = [
        "threads", "apply", "map", "cpu", "spawn", "memory", "sleep", "pool", "mixed", "floor",
    ]

    func concurrency(_ table: inout Table, parts: Set<String>) async throws {
        let rounds = quick ? 1 : 3

        let threadCount = quick ? 2_000 : 10_000
        status("concurrency: start and join \(threadCount) threads")
        let threads = !parts.contains("threads") ? .nan : try await Self.median(rounds: rounds, warmUp: true) {
            let start = ContinuousClock.now
            for _ in 0..<threadCount {
                let t = Crew.Thread {}
                try t.start()
                try t.join()
            }
            return Double(threadCount) / Self.seconds(ContinuousClock.now - start)
        }

        let calls = quick ? 5_000 : 20_000
        status("concurrency: ThreadPool, \(calls) applyAsync then every value")
        let apply = !parts.contains("apply") ? .nan : try await Self.median(rounds: rounds, warmUp: true) {
            let pool = try ThreadPool(processes: 2)
            let start = ContinuousClock.now
            let results = try (0..<calls).map { try pool.applyAsync(BenchFunctions.square, $0) }
            for result in results { _ = try result.get() }
            let rate = Double(calls) / Self.seconds(ContinuousClock.now - start)
            pool.close()
            try await pool.join()
            return rate
        }

        let items = quick ? 200_000 : 1_000_000
        status("concurrency: ThreadPool map of \(items) squares")
        let map = !parts.contains("map") ? .nan : try await Self.median(rounds: rounds, warmUp: true) {
            let pool = try ThreadPool(processes: 2)
            let input = Array(0..<items)
            let start = ContinuousClock.now
            let squares = try await pool.map(BenchFunctions.square, input)
            let rate = Double(items) / Self.seconds(ContinuousClock.now - start)
            precondition(squares.count == items)
            pool.close()
            try await pool.join()
            return rate
        }

        status("concurrency: CPU-bound work on 1 and 2 threads")
        let (tasks, work) = quick ? (4, 2) : (8, 20)
        func cpuSeconds(_ n: Int) async throws -> Double {
            let pool = try ThreadPool(processes: n)
            let start = ContinuousClock.now
            _ = try await pool.map(BenchFunctions.burn, Array(repeating: work, count: tasks), chunkSize: 1)
            let elapsed = Self.seconds(ContinuousClock.now - start)
            pool.close()
            try await pool.join()
            return elapsed
        }
        let cpu = !parts.contains("cpu") ? .nan : try await cpuSeconds(1) / cpuSeconds(2)

        let coroutines = quick ? 20_000 : 100_000
        status("concurrency: spawn and join \(coroutines) coroutines")
        let spawned = !parts.contains("spawn") ? .nan : try await Self.median(rounds: rounds, warmUp: true) {
            let start = ContinuousClock.now
            let all = (0..<coroutines).map { i in spawn { i } }
            try await joinAll(all)
            return Double(coroutines) / Self.seconds(ContinuousClock.now - start)
        }

        status("concurrency: memory of \(coroutines) coroutines parked on an event")
        let memory = !parts.contains("memory") ? .nan : try await Self.median(rounds: rounds, warmUp: false) {
            let event = AsyncEvent()
            let before = Machine.heapBytesInUse()
            let parked = (0..<coroutines).map { _ in spawn { await event.wait() } }
            // Give every coroutine time to run up to its wait.
            try await Task.sleep(for: .milliseconds(300))
            let after = Machine.heapBytesInUse()
            event.set()
            try await joinAll(parked)
            return Double(after - before) / Double(coroutines) / 1024
        }

        let sleepers = quick ? 2_000 : 10_000
        status("concurrency: \(sleepers) coroutines sleeping 100 ms")
        let sleep = !parts.contains("sleep") ? .nan : try await Self.median(rounds: rounds, warmUp: true) {
            let start = ContinuousClock.now
            let all = (0..<sleepers).map { _ in spawn { try await Task.sleep(for: .milliseconds(100)) } }
            try await joinAll(all)
            return Self.seconds(ContinuousClock.now - start)
        }

        let poolItems = quick ? 20_000 : 100_000
        status("concurrency: CoroutinePool(100) map over \(poolItems) items")
        let pool = !parts.contains("pool") ? .nan : try await Self.median(rounds: rounds, warmUp: true) {
            let coroutinePool = try CoroutinePool(size: 100)
            let start = ContinuousClock.now
            // Each item's work yields once, as an I/O wait would (the Python peers do the same).
            let out = try await coroutinePool.map(0..<poolItems) { (n: Int) async -> Int in
                await Task.yield()
                return n &* 2
            }
            precondition(out.count == poolItems)
            return Double(poolItems) / Self.seconds(ContinuousClock.now - start)
        }

        let ioCalls = quick ? 2_000 : 10_000
        status("concurrency: processes(2, coroutinesEach: 100), \(ioCalls) calls sleeping 10 ms")
        let mixed = !parts.contains("mixed") ? .nan : try await Self.median(rounds: rounds, warmUp: true) {
            let executor = try Crew.Executor.processes(2, coroutinesEach: 100)
            _ = try await executor.map(BenchFunctions.sleepMs, [1, 1], chunkSize: 1)  // Workers up.
            let start = ContinuousClock.now
            _ = try await executor.map(BenchFunctions.sleepMs, Array(repeating: 10, count: ioCalls), chunkSize: 1)
            let elapsed = Self.seconds(ContinuousClock.now - start)
            try await executor.shutdown()
            return elapsed
        }

        // Swift's own floor for the coroutine rows: bare tasks, with nothing of Crew's around them.
        status("concurrency: bare Swift tasks (the runtime's floor)")
        let floorSpawn = !parts.contains("floor") ? .nan : try await Self.median(rounds: rounds, warmUp: true) {
            let start = ContinuousClock.now
            let all = (0..<coroutines).map { i in Task { i } }
            var sum = 0
            for task in all { sum &+= await task.value }
            precondition(sum > 0)
            return Double(coroutines) / Self.seconds(ContinuousClock.now - start)
        }
        let floorMemory = !parts.contains("floor") ? .nan : try await Self.median(rounds: rounds, warmUp: false) {
            final class Parked: Sendable {
                let continuations = Mutex<[UnsafeContinuation<Void, Never>]>([])
            }
            let parked = Parked()
            parked.continuations.withLock { $0.reserveCapacity(coroutines) }
            var all: [Task<Void, Never>] = []
            all.reserveCapacity(coroutines)
            let before = Machine.heapBytesInUse()
            for _ in 0..<coroutines {
                all.append(Task { await withUnsafeContinuation { c in parked.continuations.withLock { $0.append(c) } } })
            }
            try await Task.sleep(for: .milliseconds(300))
            let after = Machine.heapBytesInUse()
            for continuation in parked.continuations.withLock({ $0 }) { continuation.resume() }
            for task in all { await task.value }
            return Double(after - before) / Double(coroutines) / 1024
        }
        let floorYield = !parts.contains("floor") ? .nan : try await Self.median(rounds: rounds, warmUp: true) {
            let start = ContinuousClock.now
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<100 {
                    group.addTask { for _ in 0..<(poolItems / 100) { await Task.yield() } }
                }
            }
            return Double(poolItems) / Self.seconds(ContinuousClock.now - start)
        }

        status("concurrency: Python")
        let python = try runPeer("concurrency.py", [quick ? "quick" : "full"] + parts.sorted())
        table.add(workload: "start + join \(threadCount) threads (threads/s)", crew: threads, crewLabel: "Crew.Thread",
                  python: python["threads/threading"], pythonLabel: "threading", lowerIsBetter: false)
        table.add(workload: "thread pool: \(calls) applyAsync, then values (calls/s)", crew: apply, crewLabel: "ThreadPool",
                  python: python["apply/dummy.Pool"], pythonLabel: "dummy.Pool", lowerIsBetter: false)
        table.add(workload: "thread pool: \(calls) applyAsync, then values (calls/s)", crew: apply, crewLabel: "ThreadPool",
                  python: python["apply/ThreadPoolExecutor"], pythonLabel: "ThreadPoolExecutor", lowerIsBetter: false)
        table.add(workload: "thread pool: map of \(items) squares (items/s)", crew: map, crewLabel: "ThreadPool",
                  python: python["map/dummy.Pool"], pythonLabel: "dummy.Pool", lowerIsBetter: false)
        table.add(workload: "CPU-bound work, 2 threads vs 1 (speed-up ×)", crew: cpu, crewLabel: "ThreadPool",
                  python: python["cpu/threads"], pythonLabel: "threads (GIL)", lowerIsBetter: false)
        table.add(workload: "spawn + join \(coroutines) coroutines (per s)", crew: spawned, crewLabel: "spawn/joinAll",
                  python: python["spawn/asyncio"], pythonLabel: "asyncio", lowerIsBetter: false)
        table.add(workload: "spawn + join \(coroutines) coroutines (per s)", crew: spawned, crewLabel: "spawn/joinAll",
                  python: python["spawn/gevent"], pythonLabel: "gevent", lowerIsBetter: false)
        table.add(workload: "memory per coroutine parked on an event (KiB)", crew: memory, crewLabel: "AsyncEvent",
                  python: python["memory/asyncio"], pythonLabel: "asyncio", lowerIsBetter: true)
        table.add(workload: "memory per coroutine parked on an event (KiB)", crew: memory, crewLabel: "AsyncEvent",
                  python: python["memory/gevent"], pythonLabel: "gevent", lowerIsBetter: true)
        table.add(workload: "\(sleepers) coroutines sleeping 100 ms (wall s)", crew: sleep, crewLabel: "spawn/joinAll",
                  python: python["sleep/asyncio"], pythonLabel: "asyncio", lowerIsBetter: true)
        table.add(workload: "\(sleepers) coroutines sleeping 100 ms (wall s)", crew: sleep, crewLabel: "spawn/joinAll",
                  python: python["sleep/gevent"], pythonLabel: "gevent", lowerIsBetter: true)
        table.add(workload: "pool of 100 coroutines, map of \(poolItems) items (items/s)", crew: pool, crewLabel: "CoroutinePool",
                  python: python["pool/asyncio"], pythonLabel: "asyncio workers", lowerIsBetter: false)
        table.add(workload: "pool of 100 coroutines, map of \(poolItems) items (items/s)", crew: pool, crewLabel: "CoroutinePool",
                  python: python["pool/gevent"], pythonLabel: "gevent Pool", lowerIsBetter: false)
        table.add(workload: "2 processes × 100 coroutines: \(ioCalls) calls of 10 ms (wall s)", crew: mixed,
                  crewLabel: "Executor", python: nil, pythonLabel: "—", lowerIsBetter: true)
        table.add(workload: "Swift's floor: spawn + value of \(coroutines) bare tasks (per s)", crew: floorSpawn,
                  crewLabel: "Task", python: python["spawn/asyncio"], pythonLabel: "asyncio", lowerIsBetter: false)
        table.add(workload: "Swift's floor: memory per bare task parked (KiB)", crew: floorMemory,
                  crewLabel: "Task", python: python["memory/asyncio"], pythonLabel: "asyncio", lowerIsBetter: true)
        table.add(workload: "Swift's floor: 100 tasks yielding, \(poolItems) yields (per s)", crew: floorYield,
                  crewLabel: "Task.yield", python: python["pool/asyncio"], pythonLabel: "asyncio workers", lowerIsBetter: false)
    }
}
