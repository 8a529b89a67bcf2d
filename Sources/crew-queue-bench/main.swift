import Crew
import CrewCLI
import CrewQueue
import CrewSQLite
import Foundation

// The Crew side of crew-bench's durable-queue rows, as a program of its own: the queue modules bring GRDB and
// Foundation, which crew-bench (a static executable, for process-start figures) cannot link. crew-bench runs it
// and reads JSON lines, as it reads the Python peers'. Run alone: `crew-queue-bench [quick]`; `crew-queue-bench bulk`
// repeats the bulk enqueue alone, and `crew-queue-bench --broker URL --latencies` times a broker's single operations
// (both to profile them).

enum BenchTasks {
    static let trivial = Function("bench.trivial") { (x: Int) in x }
    static let task = QueueTask(trivial)
}

func emit(_ workload: String, _ variant: String, _ value: Double, _ unit: String) {
    print("{\"workload\": \"\(workload)\", \"variant\": \"\(variant)\", \"value\": \(value), \"unit\": \"\(unit)\"}")
    fflush(nil)
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// Starts this program as a queue worker on `broker`.
func startWorker(_ pool: String, _ concurrency: Int, prefetch: Int, broker: String) throws -> Foundation.Process {
    let worker = Foundation.Process()
    worker.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
    worker.arguments = [
        "worker", "-P", pool, "-c", "\(concurrency)", "--prefetch-multiplier", "\(prefetch)", "-l", "warning",
        "--broker", broker,
    ]
    try worker.run()
    return worker
}

func stop(_ worker: Foundation.Process) -> Double {
    let start = ContinuousClock.now
    worker.terminate()
    worker.waitUntilExit()
    return seconds(ContinuousClock.now - start)
}

@main
enum QueueBench {
    static func main() async throws {
        try Crew.bootstrap(BenchTasks.trivial)
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "worker" {
            await CrewCLI.main(tasks: [BenchTasks.task], arguments: arguments)
            return
        }
        do {
            try await measure(arguments)
        } catch {
            // A broker that cannot be opened (a wrong URL, a server that is down) is a message, not a crash.
            FileHandle.standardError.write(Data("crew-queue-bench: \(error)\n".utf8))
            exit(1)
        }
    }

    /// The measurements, off the main actor: the producer's awaits then stay on the global executor, as in a
    /// server, instead of hopping back to the main thread after each one.
    nonisolated static func measure(_ arguments: [String]) async throws {
        let quick = arguments.first == "quick"
        // `--broker URL` measures another broker (crew-bench passes a throwaway PostgreSQL's); the figures then
        // carry the prefix `postgres.` and the end-to-end rows run two worker processes, as two machines would.
        if let index = arguments.firstIndex(of: "--broker"), index + 1 < arguments.count {
            let url = arguments[index + 1]
            if arguments.contains("--latencies") {
                try await latencies(url: url)
                return
            }
            try await measure(url: url, prefix: "postgres.", workerProcesses: 2, quick: quick)
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("crew-queue-bench-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        if arguments.first == "bulk" {
            // Bulk enqueue alone, five rounds (to profile it).
            let broker = try await CrewCLI.broker("sqlite://" + dir.appendingPathComponent("bulk.db").path)
            let client = TaskClient(broker: broker)
            for _ in 0..<5 {
                let start = ContinuousClock.now
                try await client.enqueueMany(BenchTasks.task, Array(0..<100_000))
                emit("enqueue", "bulk", 100_000 / seconds(ContinuousClock.now - start), "tasks/s")
                _ = try await broker.purge(queue: "default")
            }
            return
        }
        try await measure(url: "sqlite://" + dir.appendingPathComponent("crew.db").path, prefix: "", workerProcesses: 1, quick: quick)
    }

    /// The broker's single operations, one at a time (median of 500, in ms): what a round trip is made of.
    nonisolated static func latencies(url: String) async throws {
        let broker = try await CrewCLI.broker(url)
        let client = TaskClient(broker: broker)
        func median(_ body: () async throws -> Void) async throws -> Double {
            var times: [Double] = []
            for _ in 0..<500 {
                let t0 = ContinuousClock.now
                try await body()
                times.append(seconds(ContinuousClock.now - t0) * 1000)
            }
            return times.sorted()[times.count / 2]
        }
        let handle = try await client.enqueue(BenchTasks.task, 1)
        emit("latency", "enqueue", try await median { _ = try await client.enqueue(BenchTasks.task, 1) }, "ms")
        emit("latency", "job(id)", try await median { _ = try await broker.job(handle.id) }, "ms")
        _ = try await broker.purge(queue: "default")
        emit("latency", "claim (none)", try await median {
            _ = try await broker.claim(queues: ["default"], limit: 4, worker: "w", lease: .seconds(30))
        }, "ms")
        var ids: [JobID] = []
        for _ in 0..<500 { ids.append(try await client.enqueue(BenchTasks.task, 1).id) }
        var index = 0
        emit("latency", "claim (one)", try await median {
            _ = try await broker.claim(queues: ["default"], limit: 1, worker: "w", lease: .seconds(30))
        }, "ms")
        emit("latency", "record", try await median {
            _ = try await broker.record([JobOutcome(ids[index], result: "1")], worker: "w")
            index += 1
        }, "ms")
        // A round trip through a worker in this process, on a broker (a pool of connections) of its own.
        let workerBroker = try await CrewCLI.broker(url)
        let worker = Worker(
            broker: workerBroker, tasks: [BenchTasks.task], executor: try .threads(4),
            configuration: Worker.Configuration(concurrency: 4, prefetchMultiplier: 4)
        )
        let serving = Task { try await worker.run() }
        _ = try await client.enqueue(BenchTasks.task, 0).result(timeout: .seconds(30))
        emit("latency", "round trip", try await median {
            _ = try await client.enqueue(BenchTasks.task, 1).result(timeout: .seconds(30))
        }, "ms")
        worker.stop()
        try await serving.value
        // The same through one worker process, then two.
        var processes: [Foundation.Process] = []
        for count in 1...2 {
            processes.append(try startWorker("threads", 4, prefetch: 4, broker: url))
            _ = try await client.enqueue(BenchTasks.task, 0).result(timeout: .seconds(30))
            emit("latency", "round trip, \(count) worker process(es)", try await median {
                _ = try await client.enqueue(BenchTasks.task, 1).result(timeout: .seconds(30))
            }, "ms")
        }
        for process in processes { _ = stop(process) }
    }

    nonisolated static func measure(url: String, prefix: String, workerProcesses: Int, quick: Bool) async throws {
        let broker = try await CrewCLI.broker(url)
        let client = TaskClient(broker: broker)

        // Enqueue, one at a time and in bulk, with no worker running.
        let n = quick ? 1_000 : 5_000
        var start = ContinuousClock.now
        for i in 0..<n { try await client.enqueue(BenchTasks.task, i) }
        emit(prefix + "enqueue", "one at a time", Double(n) / seconds(ContinuousClock.now - start), "tasks/s")

        let bulk = quick ? 20_000 : 100_000
        start = ContinuousClock.now
        try await client.enqueueMany(BenchTasks.task, Array(0..<bulk))
        emit(prefix + "enqueue", "bulk", Double(bulk) / seconds(ContinuousClock.now - start), "tasks/s")
        _ = try await broker.purge(queue: "default")

        // On a broker a network away, workers claim ahead (Celery's default prefetch multiplier; crew-bench sets
        // them beside Celery workers doing the same): a slot that ends a job then starts the next without waiting
        // for a claim's round trip.
        let prefetch = workerProcesses == 1 ? 1 : 4
        let pools = workerProcesses == 1
            ? [("threads", 4), ("coroutines", 8), ("threads", 8), ("prefork", 2)]
            : [("threads", 4), ("coroutines", 32), ("prefork", 2)]
        for (pool, concurrency) in pools {
            // Worker ready: from its start until it answers a task.
            start = ContinuousClock.now
            var workers = [try startWorker(pool, concurrency, prefetch: prefetch, broker: url)]
            _ = try await client.enqueue(BenchTasks.task, 0).result(timeout: .seconds(60))
            emit(prefix + "worker", "ready (\(pool))", seconds(ContinuousClock.now - start), "s")
            while workers.count < workerProcesses {
                workers.append(try startWorker(pool, concurrency, prefetch: prefetch, broker: url))
            }
            for _ in 0..<50 { _ = try await client.enqueue(BenchTasks.task, 0).result(timeout: .seconds(60)) }

            if pool == "threads" {
                var times: [Double] = []
                for i in 0..<(quick ? 100 : 500) {
                    let t0 = ContinuousClock.now
                    _ = try await client.enqueue(BenchTasks.task, i).result(timeout: .seconds(60))
                    times.append(seconds(ContinuousClock.now - t0) * 1000)
                }
                times.sort()
                emit(prefix + "round_trip", "p50", times[times.count / 2], "ms")
                emit(prefix + "round_trip", "p99", times[Int(Double(times.count) * 0.99) - 1], "ms")
            }

            // End to end: enqueue, then wait for every result.
            let total = quick ? 2_000 : 10_000
            start = ContinuousClock.now
            let handles = try await client.enqueueMany(BenchTasks.task, Array(0..<total))
            for handle in handles { _ = try await handle.result(timeout: .seconds(600)) }
            let label = workerProcesses == 1 ? "\(pool) -c \(concurrency)" : "\(workerProcesses) × \(pool) -c \(concurrency)"
            emit(prefix + "end_to_end", label, Double(total) / seconds(ContinuousClock.now - start), "tasks/s")
            let stopped = workers.map(stop).max() ?? 0
            emit(prefix + "worker", "graceful stop (\(pool))", stopped, "s")
        }
    }
}
