import ArgumentParser
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

// The durable queue against Celery 5 + Redis. Crew's side runs in crew-queue-bench (built beside this program;
// it links the SQLite broker, which a static executable cannot), Celery's in bench/peers/celery_peer.py.

extension CrewBench {
    func queue(_ table: inout Table) throws {
        status("queue: Crew (crew-queue-bench, SQLite broker)")
        let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        guard access("\(directory)/crew-queue-bench", X_OK) == 0 else {
            throw ValidationError(
                "the queue workload runs crew-queue-bench, which is not built beside crew-bench: "
                    + "build every product (swift build -c release), then run .build/release/crew-bench"
            )
        }
        let crewSide = try runJSONLines("'\(directory)/crew-queue-bench' \(quick ? "quick" : "full")")
        status("queue: Celery + Redis")
        let celery = skipPython ? [:] : try runPeer("celery_peer.py", [quick ? "quick" : "full"])
        func add(_ workload: String, _ crewKey: String, _ crewLabel: String, _ celeryKey: String, lowerIsBetter: Bool) {
            table.add(workload: workload, crew: crewSide[crewKey] ?? .nan, crewLabel: crewLabel,
                      python: celery[celeryKey], pythonLabel: "Celery + Redis", lowerIsBetter: lowerIsBetter)
        }
        add("queue end to end, trivial tasks (tasks/s)", "end_to_end/prefork -c 2", "prefork -c 2", "end_to_end/prefork -c 2", lowerIsBetter: false)
        table.add(workload: "queue end to end, trivial tasks (tasks/s)", crew: crewSide["end_to_end/threads -c 4"] ?? .nan,
                  crewLabel: "threads -c 4", python: celery["end_to_end/threads -c 8"], pythonLabel: "Celery threads -c 8",
                  lowerIsBetter: false)
        table.add(workload: "queue end to end, trivial tasks (tasks/s)", crew: crewSide["end_to_end/threads -c 8"] ?? .nan,
                  crewLabel: "threads -c 8", python: celery["end_to_end/threads -c 8"], pythonLabel: "Celery threads -c 8",
                  lowerIsBetter: false)
        table.add(workload: "queue end to end, trivial tasks (tasks/s)", crew: crewSide["end_to_end/coroutines -c 8"] ?? .nan,
                  crewLabel: "coroutines -c 8", python: celery["end_to_end/gevent -c 8"], pythonLabel: "Celery gevent -c 8",
                  lowerIsBetter: false)
        add("queue enqueue, one at a time (tasks/s)", "enqueue/one at a time", "TaskClient", "enqueue/one at a time", lowerIsBetter: false)
        add("queue enqueue, bulk (tasks/s)", "enqueue/bulk", "enqueueMany", "enqueue/bulk (group)", lowerIsBetter: false)
        add("queue round trip enqueue → result, p50 (ms)", "round_trip/p50", "SQLite", "round_trip/p50", lowerIsBetter: true)
        add("queue round trip enqueue → result, p99 (ms)", "round_trip/p99", "SQLite", "round_trip/p99", lowerIsBetter: true)
        add("queue worker ready (s)", "worker/ready (prefork)", "prefork", "worker/ready", lowerIsBetter: true)
        add("queue worker graceful stop (s)", "worker/graceful stop (prefork)", "prefork", "worker/graceful stop", lowerIsBetter: true)

        // The PostgreSQL broker, on a throwaway server (scripts/postgres), two worker processes as two machines.
        let postgres = try postgresSide(directory: directory)
        func addPostgres(
            _ workload: String, _ crewKey: String, _ crewLabel: String, _ celeryKey: String,
            celeryLabel: String = "Celery + Redis", lowerIsBetter: Bool
        ) {
            table.add(workload: workload, crew: postgres["postgres." + crewKey] ?? .nan, crewLabel: crewLabel,
                      python: celery[celeryKey], pythonLabel: celeryLabel, lowerIsBetter: lowerIsBetter)
        }
        // Crew's workers claim ahead here (--prefetch-multiplier 4); so do the Celery workers they are set beside.
        addPostgres("queue on PostgreSQL, end to end (tasks/s)", "end_to_end/2 × threads -c 4", "2 × threads -c 4, prefetch 4",
                    "end_to_end/prefork -c 2, prefetch 4", celeryLabel: "Celery prefork -c 2, prefetch 4", lowerIsBetter: false)
        addPostgres("queue on PostgreSQL, end to end (tasks/s)", "end_to_end/2 × coroutines -c 32", "2 × coroutines -c 32, prefetch 4",
                    "end_to_end/gevent -c 32, prefetch 4", celeryLabel: "Celery gevent -c 32, prefetch 4", lowerIsBetter: false)
        addPostgres("queue on PostgreSQL, end to end (tasks/s)", "end_to_end/2 × prefork -c 2", "2 × prefork -c 2, prefetch 4",
                    "end_to_end/prefork -c 2, prefetch 4", celeryLabel: "Celery prefork -c 2, prefetch 4", lowerIsBetter: false)
        addPostgres("queue on PostgreSQL, enqueue one at a time (tasks/s)", "enqueue/one at a time", "TaskClient", "enqueue/one at a time", lowerIsBetter: false)
        addPostgres("queue on PostgreSQL, enqueue bulk (tasks/s)", "enqueue/bulk", "enqueueMany", "enqueue/bulk (group)", lowerIsBetter: false)
        addPostgres("queue on PostgreSQL, round trip p50 (ms)", "round_trip/p50", "PostgreSQL", "round_trip/p50", lowerIsBetter: true)
        addPostgres("queue on PostgreSQL, round trip p99 (ms)", "round_trip/p99", "PostgreSQL", "round_trip/p99", lowerIsBetter: true)
    }

    /// Crew's queue figures on a throwaway PostgreSQL that `scripts/postgres` starts (and stops, whatever
    /// happens); none if the script is not beside the peers (crew-bench run outside the repository).
    func postgresSide(directory: String) throws -> [String: Double] {
        let script = "\(peers)/../../scripts/postgres"
        guard access(script, X_OK) == 0 else {
            status("queue: no scripts/postgres beside bench/peers; the PostgreSQL rows are skipped")
            return [:]
        }
        status("queue: Crew on PostgreSQL (a throwaway server from scripts/postgres)")
        let server = "/tmp/crew-bench-postgres-\(getpid())"
        defer { _ = system("'\(script)' stop '\(server)' >/dev/null 2>&1") }
        fflush(nil)
        guard let pipe = popen("'\(script)' start '\(server)'", "r") else { throw ValidationError("cannot run \(script)") }
        let url = String(String(decoding: Machine.readAll(pipe), as: UTF8.self).split(separator: "\n").last ?? "")
        guard pclose(pipe) == 0, url.hasPrefix("postgres://") else { throw ValidationError("\(script) start failed") }
        return try runJSONLines("'\(directory)/crew-queue-bench' \(quick ? "quick" : "full") --broker '\(url)'")
    }

    /// Runs a shell command that prints JSON lines of figures; returns them by "workload/variant".
    func runJSONLines(_ command: String) throws -> [String: Double] {
        struct Figure: Decodable {
            var workload: String
            var variant: String
            var value: Double
        }
        fflush(nil)
        guard let pipe = popen(command, "r") else { throw ValidationError("cannot run \(command)") }
        let output = Machine.readAll(pipe)
        guard pclose(pipe) == 0 else { throw ValidationError("\(command) failed") }
        var figures: [String: Double] = [:]
        for line in output.split(separator: UInt8(ascii: "\n")) {
            guard let figure = try? JSONDecoder().decode(Figure.self, from: Data(line)) else { continue }
            figures["\(figure.workload)/\(figure.variant)"] = figure.value
        }
        return figures
    }
}
