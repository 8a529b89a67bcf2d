import Crew
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// The durable queue against Celery 5 + Redis. Crew's side runs in crew-queue-bench (built beside this program;
// it links the brokers), on SQLite and on a throwaway PostgreSQL; Celery's in bench/peers/celery_peer.py. Both get
// the same settings: the same counts and batch sizes, one worker process of the same pool type and concurrency,
// the same prefetch multiplier.

extension CrewBench {
    static let queueParts: Set<String> = ["enqueue", "worker", "round-trip", "e2e"]

    func queue(_ report: inout Report, parts: Set<String>) throws {
        let executable = Machine.executableDirectory + "/crew-queue-bench"
        guard access(executable, X_OK) == 0 else {
            throw BenchError(
                "the queue workload runs crew-queue-bench, which is not built beside crew-bench: build every product "
                    + "(swift build -c release), then run .build/release/crew-bench")
        }
        let pools = [["threads", "8"], ["prefork", "2"], ["coroutines", "64"]]
        let prefetch = 4
        let batch = 100
        var settings: [String: Any] = [
            "parts": parts.sorted(), "enqueue_one": quick ? 1_000 : 5_000,
            "bulk": quick ? [[100, 10], [5_000, 1]] : [[100, 50], [5_000, 2], [100_000, 1]],
            "round_trip": quick ? 200 : 2_000, "warm_up": quick ? 50 : 200, "end_to_end": quick ? 2_000 : 10_000,
            "batch": batch, "pools": pools, "prefetch": prefetch,
        ]

        // SQLite, in a private directory.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("crew-bench-\(getpid())").path
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        status("queue: Crew on SQLite (crew-queue-bench)")
        settings["broker"] = "sqlite://\(directory)/crew.db"
        settings["broker_label"] = "an SQLite file (WAL)"
        let sqlite = try Figures.parse(
            try Shell.run([executable, "measure", try Shell.json(settings)].map(Shell.quoted).joined(separator: " ")),
            command: "crew-queue-bench measure")

        let postgres = try postgresSide(executable: executable, settings: settings)
        settings.removeValue(forKey: "broker")
        settings.removeValue(forKey: "broker_label")
        let celery = try peer("celery_peer.py", settings, into: &report)

        for (name, crew) in [("sqlite", sqlite), ("postgres", postgres)] where !crew.sides.isEmpty {
            let broker = name == "sqlite" ? "SQLite" : "PostgreSQL"
            func add(_ key: String, _ workload: String, _ unit: String, lowerIsBetter: Bool, window: String) {
                guard let side = crew.side(key + "/crew", who: "Crew") else { return }
                report.add(
                    Row(
                        id: "queue.\(name).\(key.dropFirst("queue.".count))", workload: "\(broker): \(workload)",
                        unit: unit,
                        lowerIsBetter: lowerIsBetter, window: window, crew: side,
                        peers: [
                            celery.side(key + "/celery", who: "Celery").map { side in
                                var side = side
                                side.setup += " (one Celery run, set beside both the SQLite and the PostgreSQL rows)"
                                return side
                            }
                        ].compactMap { $0 }
                    ))
            }
            add(
                "queue.enqueue-one", "enqueue \(settings["enqueue_one"]!) trivial tasks one at a time", "tasks/s",
                lowerIsBetter: false, window: "the first enqueue to the last")
            for pair in settings["bulk"] as! [[Int]] {
                add(
                    "queue.enqueue-bulk-\(pair[0])",
                    "enqueue in batches of \(Self.count(pair[0])), \(pair[1]) "
                        + (pair[1] == 1 ? "batch" : "batches"), "tasks/s", lowerIsBetter: false,
                    window: "the first batch's call to the last's return")
            }
            add(
                "queue.ready", "a prefork -c 2 worker's start until it has answered a task", "s", lowerIsBetter: true,
                window: "the worker command's start to the first result in the producer")
            add(
                "queue.stop", "an idle prefork -c 2 worker's graceful stop", "s", lowerIsBetter: true,
                window: "SIGTERM until the worker process has exited")
            let samples = settings["round_trip"] as! Int
            for (p, label) in [("p50", "median"), ("p90", "p90"), ("p99", "p99"), ("max", "max")] {
                add(
                    "queue.round-trip-\(p)",
                    "round trip of a trivial task, enqueue to result, \(label) of "
                        + "\(Self.count(samples))", "ms", lowerIsBetter: true,
                    window: "each enqueue to its result in the producer, one at a time, after \(settings["warm_up"]!) "
                        + "untimed")
            }
            let n = settings["end_to_end"] as! Int
            for (kind, concurrency) in pools.map({ ($0[0], $0[1]) }) {
                add(
                    "queue.e2e.\(kind).one",
                    "end to end, \(Self.count(n)) trivial tasks enqueued one at a time, "
                        + "\(kind) -c \(concurrency)", "tasks/s", lowerIsBetter: false,
                    window: "the first enqueue to the last result; producer_s: the enqueues, drain_s: after them")
                add(
                    "queue.e2e.\(kind).batch",
                    "end to end, \(Self.count(n)) trivial tasks enqueued \(batch) at a "
                        + "time, \(kind) -c \(concurrency)", "tasks/s", lowerIsBetter: false,
                    window: "the first enqueue to the last result; producer_s: the enqueues, drain_s: after them")
            }
        }
    }

    /// Crew's queue figures on a throwaway PostgreSQL that `scripts/postgres` starts (and stops, whatever happens);
    /// none if the script is not beside the peers (crew-bench run outside the repository).
    func postgresSide(executable: String, settings: [String: Any]) throws -> Figures {
        let script = "\(peers)/../../scripts/postgres"
        guard access(script, X_OK) == 0 else {
            status("queue: no scripts/postgres beside bench/peers; the PostgreSQL rows are skipped")
            return Figures()
        }
        status("queue: Crew on PostgreSQL (a throwaway server from scripts/postgres)")
        let server = FileManager.default.temporaryDirectory.appendingPathComponent("crew-bench-postgres-\(getpid())")
            .path
        defer { _ = system("\(Shell.quoted(script)) stop \(Shell.quoted(server)) >/dev/null 2>&1") }
        let started = String(
            decoding: try Shell.run("\(Shell.quoted(script)) start \(Shell.quoted(server))"), as: UTF8.self)
        let url = String(started.split(separator: "\n").last ?? "")
        guard url.hasPrefix("postgres://") else { throw BenchError("\(script) start printed no postgres:// URL") }
        var settings = settings
        settings["broker"] = url
        let version = Shell.firstLine("psql --version")?.split(separator: " ").first { $0.first?.isNumber == true }
        settings["broker_label"] =
            "PostgreSQL \(version ?? "") on a Unix socket (fsync, synchronous_commit and "
            + "full_page_writes off, as Redis runs without persistence)"
        return try Figures.parse(
            try Shell.run([executable, "measure", try Shell.json(settings)].map(Shell.quoted).joined(separator: " ")),
            command: "crew-queue-bench measure (PostgreSQL)")
    }
}
