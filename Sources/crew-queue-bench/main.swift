import Crew
import CrewCLI
import CrewQueue
import CrewSQLite
import Foundation

// The Crew side of crew-bench's durable-queue rows, as a program of its own (it links the brokers: GRDB,
// postgres-nio). crew-bench runs it with its settings as one JSON argument and reads JSON lines of figures, as it
// reads the Python peers'; bench/peers/celery_peer.py does the same work with Celery.
//
//   crew-queue-bench measure '{"broker": "sqlite:///tmp/x.db", ...}'   the figures (crew-bench passes the settings)
//   crew-queue-bench bulk                                             the SQLite bulk enqueue alone, to profile it
//   crew-queue-bench latencies URL                                    a broker's single operations, to profile them
//   crew-queue-bench worker ...                                       a queue worker (the measured runs start it)

enum BenchTasks {
    static let trivial = Crew.Function("bench.trivial") { (x: Int) in x }
    static let task = QueueTask(trivial)
}

/// What crew-bench asks for; the Celery peer gets the same values.
struct Settings: Decodable {
    var broker: String
    /// What the broker is, for the setup text ("SQLite file in WAL mode", "PostgreSQL 15 on a Unix socket").
    var brokerLabel: String
    var parts: [String]
    var enqueueOne: Int
    /// Batch size and number of batches.
    var bulk: [[Int]]
    var roundTrip: Int
    var warmUp: Int
    var endToEnd: Int
    var batch: Int
    /// Pool kind ("threads", "prefork", "coroutines") and concurrency.
    var pools: [[String]]
    var prefetch: Int

    enum CodingKeys: String, CodingKey {
        case broker, parts, bulk, batch, pools, prefetch
        case brokerLabel = "broker_label"
        case enqueueOne = "enqueue_one"
        case roundTrip = "round_trip"
        case warmUp = "warm_up"
        case endToEnd = "end_to_end"
    }
}

/// Prints one figure as a JSON line (the format crew-bench reads from every side).
func emit(_ workload: String, _ value: Double, _ unit: String, _ setup: String, details: [String: Double]? = nil) throws
{
    struct Line: Encodable {
        var workload: String
        var variant = "crew"
        var value: Double
        var unit: String
        var setup: String
        var details: [String: Double]?
    }
    let data = try JSONEncoder().encode(
        Line(workload: workload, value: value, unit: unit, setup: setup, details: details))
    print(String(decoding: data, as: UTF8.self))
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

/// SIGTERM, then the seconds until the worker has exited.
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
            switch arguments.first {
            case "measure" where arguments.count == 2:
                let settings: Settings
                do {
                    settings = try JSONDecoder().decode(Settings.self, from: Data(arguments[1].utf8))
                } catch {
                    throw BenchError("the settings are not what crew-bench passes: \(error)")
                }
                try await measure(settings)
            case "bulk": try await bulk()
            case "latencies" where arguments.count == 2: try await latencies(url: arguments[1])
            default:
                throw BenchError("usage: crew-queue-bench measure SETTINGS | bulk | latencies URL | worker ...")
            }
        } catch {
            // A broker that cannot be opened (a wrong URL, a server that is down) is a message, not a crash.
            FileHandle.standardError.write(Data("crew-queue-bench: \(error)\n".utf8))
            exit(1)
        }
    }

    /// The figures, off the main actor: the producer's awaits then stay on the global executor, as in a server,
    /// instead of hopping back to the main thread after each one.
    nonisolated static func measure(_ s: Settings) async throws {
        let broker = try await CrewCLI.broker(s.broker)
        let client = TaskClient(broker: broker)
        let parts = Set(s.parts)
        let on = "on \(s.brokerLabel)"

        if parts.contains("enqueue") {
            // Enqueue, one at a time and in batches, with no worker running.
            var start = ContinuousClock.now
            for i in 0..<s.enqueueOne { try await client.enqueue(BenchTasks.task, i) }
            try emit(
                "queue.enqueue-one", Double(s.enqueueOne) / seconds(ContinuousClock.now - start), "tasks/s",
                "TaskClient.enqueue(task, i), each awaited, \(on); no worker running")
            _ = try await broker.purge(queue: "default")
            for pair in s.bulk {
                let (size, batches) = (pair[0], pair[1])
                start = ContinuousClock.now
                for b in 0..<batches {
                    try await client.enqueueMany(BenchTasks.task, Array((b * size)..<((b + 1) * size)))
                }
                try emit(
                    "queue.enqueue-bulk-\(size)", Double(size * batches) / seconds(ContinuousClock.now - start),
                    "tasks/s", "TaskClient.enqueueMany(task, \(size) args) × \(batches), \(on); no worker running")
                _ = try await broker.purge(queue: "default")
            }
        }

        for pair in s.pools {
            guard let concurrency = Int(pair[1]) else { throw BenchError("a pool's concurrency is not a number") }
            let pool = pair[0]
            let wanted =
                parts.contains("e2e") || (pool == "prefork" && parts.contains("worker"))
                || (pool == "threads" && parts.contains("round-trip"))
            guard wanted else { continue }
            let workerSetup =
                "1 worker process: worker -P \(pool) -c \(concurrency) --prefetch-multiplier "
                + "\(s.prefetch), \(on)"
            // Worker ready: from its start until it answers a task.
            var start = ContinuousClock.now
            let worker = try startWorker(pool, concurrency, prefetch: s.prefetch, broker: s.broker)
            do {
                _ = try await client.enqueue(BenchTasks.task, 0).result(timeout: .seconds(60))
                let ready = seconds(ContinuousClock.now - start)
                if pool == "prefork" && parts.contains("worker") {
                    try emit("queue.ready", ready, "s", workerSetup + "; from its start until it has answered one task")
                }
                for _ in 0..<50 { _ = try await client.enqueue(BenchTasks.task, 0).result(timeout: .seconds(60)) }

                if pool == "threads" && parts.contains("round-trip") {
                    for i in 0..<s.warmUp {
                        _ = try await client.enqueue(BenchTasks.task, i).result(timeout: .seconds(60))
                    }
                    var times: [Double] = []
                    for i in 0..<s.roundTrip {
                        let t0 = ContinuousClock.now
                        _ = try await client.enqueue(BenchTasks.task, i).result(timeout: .seconds(60))
                        times.append(seconds(ContinuousClock.now - t0) * 1000)
                    }
                    times.sort()
                    let setup = workerSetup + "; try await client.enqueue(task, i).result(), one at a time"
                    for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)] {
                        try emit("queue.round-trip-\(name)", percentile(times, p), "ms", setup)
                    }
                }

                if parts.contains("e2e") {
                    for variant in ["one", "batch"] {
                        let n = s.endToEnd
                        start = ContinuousClock.now
                        var handles: [TaskHandle<Int>] = []
                        handles.reserveCapacity(n)
                        if variant == "one" {
                            for i in 0..<n { handles.append(try await client.enqueue(BenchTasks.task, i)) }
                        } else {
                            for first in stride(from: 0, to: n, by: s.batch) {
                                handles += try await client.enqueueMany(
                                    BenchTasks.task, Array(first..<min(n, first + s.batch)))
                            }
                        }
                        let produced = seconds(ContinuousClock.now - start)
                        var sum = 0
                        for handle in handles { sum &+= try await handle.result(timeout: .seconds(600)) }
                        let total = seconds(ContinuousClock.now - start)
                        guard sum == n * (n - 1) / 2 else { throw BenchError("end to end: wrong results") }
                        let how =
                            variant == "one"
                            ? "TaskClient.enqueue(task, i) one at a time, each awaited"
                            : "TaskClient.enqueueMany(task, \(s.batch) args) per batch"
                        try emit(
                            "queue.e2e.\(pool).\(variant)", Double(n) / total, "tasks/s",
                            "\(workerSetup); \(how), then handle.result() of each in turn",
                            details: ["producer_s": produced, "drain_s": total - produced])
                    }
                }
            } catch {
                worker.terminate()
                worker.waitUntilExit()
                throw error
            }
            let stopped = stop(worker)
            if pool == "prefork" && parts.contains("worker") {
                try emit("queue.stop", stopped, "s", workerSetup + "; SIGTERM until it has exited, idle")
            }
        }
    }

    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    /// The SQLite bulk enqueue alone, five rounds of 100 000 (to profile it).
    nonisolated static func bulk() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("crew-queue-bench-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let broker = try await CrewCLI.broker("sqlite://" + dir.appendingPathComponent("bulk.db").path)
        let client = TaskClient(broker: broker)
        for _ in 0..<5 {
            let start = ContinuousClock.now
            try await client.enqueueMany(BenchTasks.task, Array(0..<100_000))
            try emit("queue.enqueue-bulk-100000", 100_000 / seconds(ContinuousClock.now - start), "tasks/s", "bulk")
            _ = try await broker.purge(queue: "default")
        }
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
        try emit("latency.enqueue", try await median { _ = try await client.enqueue(BenchTasks.task, 1) }, "ms", url)
        try emit("latency.job", try await median { _ = try await broker.job(handle.id) }, "ms", url)
        _ = try await broker.purge(queue: "default")
        try emit(
            "latency.claim-none",
            try await median {
                _ = try await broker.claim(queues: ["default"], limit: 4, worker: "w", lease: .seconds(30))
            }, "ms", url)
        var ids: [JobID] = []
        for _ in 0..<500 { ids.append(try await client.enqueue(BenchTasks.task, 1).id) }
        var index = 0
        try emit(
            "latency.claim-one",
            try await median {
                _ = try await broker.claim(queues: ["default"], limit: 1, worker: "w", lease: .seconds(30))
            }, "ms", url)
        try emit(
            "latency.record",
            try await median {
                _ = try await broker.record([JobOutcome(ids[index], result: "1")], worker: "w")
                index += 1
            }, "ms", url)
        // A round trip through a worker in this process, on a broker (a pool of connections) of its own.
        let workerBroker = try await CrewCLI.broker(url)
        let worker = QueueWorker(
            broker: workerBroker, tasks: [BenchTasks.task], executor: try .threads(4),
            configuration: QueueWorker.Configuration(concurrency: 4, prefetchMultiplier: 4)
        )
        let serving = Task { try await worker.run() }
        _ = try await client.enqueue(BenchTasks.task, 0).result(timeout: .seconds(30))
        try emit(
            "latency.round-trip",
            try await median {
                _ = try await client.enqueue(BenchTasks.task, 1).result(timeout: .seconds(30))
            }, "ms", url + ", a worker in this process")
        worker.stop()
        try await serving.value
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
