import ArgumentParser
import Crew
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// crew-bench links Foundation and Swift's runtime dynamically, as a user's app does: its children are this same
// program, so its process starts are what a user's children cost. crew-bench-static, a static executable beside
// it, gives the figure of a child that loads no shared library (its own labelled row).

/// Crew's benchmark: each workload in Crew and in its Python peer, the same work by the same means, in one run.
struct CrewBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crew-bench",
        abstract: "Measures Crew against Python's multiprocessing, threading, asyncio, gevent and Celery on the same "
            + "machine, in the same run, each row the same work by the same means.",
        discussion: """
            Build every product in release mode first: swift build -c release && .build/release/crew-bench
            (the queue rows run crew-queue-bench, the http rows crew-http-bench, and one process-start row
            crew-bench-static, all built beside it; the http rows need wrk).
            """
    )

    static let workloads = ["process-start", "round-trip", "pool", "ipc", "concurrency", "queue", "http"]

    /// What `--only` takes: a workload, or one part of one (`pool-map`).
    static var knownWorkloads: Set<String> {
        var names = Set(workloads)
        for (prefix, parts) in [
            ("pool", poolParts), ("ipc", ipcParts), ("concurrency", concurrencyParts),
            ("queue", queueParts),
        ] {
            for part in parts { names.insert("\(prefix)-\(part)") }
        }
        return names
    }

    @Option(help: "The Python interpreter that runs the peers in bench/peers (they make their own venv from it).")
    var python = "python3"

    @Option(help: "The directory of the Python peers.")
    var peers = "bench/peers"

    @Option(
        help: ArgumentHelp(
            "Workloads to run: \(workloads.joined(separator: ", ")); or one part, as pool-map or ipc-pipe. "
                + "All when not given."))
    var only: [String] = []

    @Flag(help: "Fewer items and repetitions: a quick look, not figures to record.")
    var quick = false

    @Flag(help: "Skip the Python peers (to profile Crew alone); the rows then have no ratios.")
    var skipPython = false

    @Option(
        name: .customLong("json"), help: ArgumentHelp("Also write every row to this file, as JSON.", valueName: "file"))
    var jsonPath: String?

    @Option(
        name: .customLong("compare"), parsing: .upToNextOption,
        help: ArgumentHelp("Print each row's change between two --json files, and run nothing.", valueName: "old new"))
    var compare: [String] = []

    @Option(help: "With --compare: the change, in percent, beyond which a row counts as worse (exit status 1).")
    var threshold = 10.0

    func validate() throws {
        if !compare.isEmpty && compare.count != 2 {
            throw ValidationError(
                "--compare takes two files, the old run's and the new run's: --compare OLD.json NEW.json")
        }
        if !(threshold >= 0) { throw ValidationError("--threshold must be a percentage of 0 or more") }
        for name in only where !Self.knownWorkloads.contains(name) {
            throw ValidationError(
                "unknown workload \"\(name)\"; known: \(Self.knownWorkloads.sorted().joined(separator: ", "))")
        }
    }

    func run() async throws {
        if !compare.isEmpty {
            let old = try Report.read(compare[0])
            let new = try Report.read(compare[1])
            let comparison = Comparison(old: old, new: new, threshold: threshold)
            print(comparison.render(old: old, new: new))
            if !comparison.regressions.isEmpty { throw ExitCode(1) }
            return
        }
        let formatter = ISO8601DateFormatter()
        var report = Report(
            command: (["crew-bench"] + CommandLine.arguments.dropFirst()).joined(separator: " "),
            date: formatter.string(from: Date()), machine: Machine.describe(), quick: quick
        )
        report.versions["swift"] =
            Shell.firstLine("swift --version 2>&1").map { line in
                line.components(separatedBy: "Swift version ").last.map { String($0.prefix { $0 != " " }) } ?? line
            } ?? "unknown"
        for workload in only.isEmpty ? Self.workloads : only {
            // A workload that fails (a peer that cannot install, a server that does not start) is reported, and the
            // others still run and are written.
            do {
                try await run(workload, into: &report)
            } catch {
                status("\(workload) failed: \(error)")
                report.failures[workload] = "\(error)"
            }
        }
        print("")
        print(report.render())
        if let jsonPath {
            do {
                try report.json().write(to: URL(fileURLWithPath: jsonPath))
            } catch {
                throw BenchError("cannot write \(jsonPath): \(error)")
            }
            status("wrote \(jsonPath)")
        }
        if !report.failures.isEmpty { throw ExitCode(1) }
    }

    func run(_ workload: String, into report: inout Report) async throws {
        switch workload {
        case "process-start": try await processStart(&report)
        case "round-trip": try await roundTrip(&report)
        case "pool": try await pool(&report, parts: Self.poolParts)
        case "ipc": try await ipc(&report, parts: Self.ipcParts)
        case "concurrency": try await concurrency(&report, parts: Self.concurrencyParts)
        case "queue": try queue(&report, parts: Self.queueParts)
        case "http": try http(&report)
        case let name where name.hasPrefix("pool-"): try await pool(&report, parts: [String(name.dropFirst(5))])
        case let name where name.hasPrefix("ipc-"): try await ipc(&report, parts: [String(name.dropFirst(4))])
        case let name where name.hasPrefix("concurrency-"):
            try await concurrency(&report, parts: [String(name.dropFirst(12))])
        case let name where name.hasPrefix("queue-"): try queue(&report, parts: [String(name.dropFirst(6))])
        default: throw ValidationError("unknown workload \(workload)")
        }
    }

    // MARK: Helpers

    func status(_ text: String) {
        FileHandle.standardError.write(Data("crew-bench: \(text)\n".utf8))
    }

    /// Runs a Python peer with `settings` as its one JSON argument; its figures, and its versions into `report`.
    func peer(_ script: String, _ settings: [String: Any], into report: inout Report) throws -> Figures {
        if skipPython { return Figures() }
        status("\(script): running the Python side")
        let command = [python, "\(peers)/\(script)", try Shell.json(settings)].map(Shell.quoted).joined(separator: " ")
        let figures = try Figures.parse(try Shell.run(command), command: command)
        report.versions.merge(figures.versions) { _, new in new }
        return figures
    }

    /// Runs `body` with spinning turned off in this process and in every child started meanwhile (what a user gets
    /// with `Crew.Options(spinMicroseconds: 0)` passed to `bootstrap`), then turns it back on.
    func withoutSpinning<T>(_ body: () async throws -> T) async throws -> T {
        try Crew.bootstrap(
            BenchFunctions.all,
            options: Crew.Options(environment: [Self.spinVariable: "0"], spinMicroseconds: 0)
        )
        let result: T
        do {
            result = try await body()
        } catch {
            try Crew.bootstrap(BenchFunctions.all, options: Crew.Options())
            throw error
        }
        try Crew.bootstrap(BenchFunctions.all, options: Crew.Options())
        return result
    }

    /// The variable that tells a child of crew-bench to bootstrap without spinning.
    static let spinVariable = "CREW_BENCH_SPIN_MICROSECONDS"

    /// `n` with thin spaces between thousands, for workload titles.
    static func count(_ n: Int) -> String { Report.grouped(String(n)) }
}
