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
