import Foundation

// What one run of crew-bench measured: rows of comparisons, each side with what it ran, written as a table (the
// console and BENCHMARKS.md) and as JSON (`--json`, read back by `--compare`).

/// One side of a comparison: Crew, Swift's own floor for the same work, or a Python peer.
struct Side: Codable, Sendable {
    /// Who ran: "Crew", "Swift floor", "Python".
    var who: String
    /// What it ran, with every setting that matters: API, processes, threads or slots, pool type, batch size.
    var setup: String
    /// The figure, in the row's unit.
    var value: Double
    /// CPU time of every process on this side (user + system), in microseconds per operation, where measured.
    var cpuMicroseconds: Double?
    /// Further named figures of the same run (a producer's time apart from the drain's, memory by two metrics).
    var details: [String: Double]?
    /// For a peer, how many times better Crew is than it; for the floor, how many times Crew costs what it costs.
    /// Set when the row joins a report, so that `--json` carries it.
    var ratio: Double?
}

/// One workload: the same work done by Crew and by each peer, and how.
struct Row: Codable, Sendable {
    /// A stable name (`pool.map`), which `--compare` matches rows by.
    var id: String
    /// What is measured, with its counts.
    var workload: String
    /// The figure's unit (`calls/s`, `ms`).
    var unit: String
    var lowerIsBetter: Bool
    /// What lies inside the timed window (and what is outside it), the same on every side.
    var window: String
    var crew: Side
    /// Swift's own floor doing the same work without Crew, for the thread and coroutine rows.
    var floor: Side?
    var peers: [Side] = []
    /// False for figures whose ratio means nothing (a speed-up set beside another speed-up): no "faster" then.
    var comparable: Bool = true

    /// How many times better Crew is than `side` (above 1: Crew is faster or smaller).
    func ratio(against side: Side) -> Double? {
        guard comparable, crew.value > 0, side.value > 0, crew.value.isFinite, side.value.isFinite else { return nil }
        return lowerIsBetter ? side.value / crew.value : crew.value / side.value
    }

    /// How many times Crew costs what the floor costs (1.0: no overhead; above 1: Crew is slower).
    var overFloor: Double? {
        guard let floor, let ratio = ratio(against: floor), ratio > 0 else { return nil }
        return 1 / ratio
    }

    /// The peers Crew loses against.
    var losses: [Side] { peers.filter { (ratio(against: $0) ?? 1) < 1 } }
}

/// Every row of one run, with where it ran.
struct Report: Codable, Sendable {
    var command: String
    var date: String
    var machine: String
    var quick: Bool
    /// Versions of what ran: Swift, Python, and the peers' packages and servers.
    var versions: [String: String] = [:]
    var rows: [Row] = []
    /// Workloads that could not be measured, and why: the run goes on without them.
    var failures: [String: String] = [:]

    /// Adds `row`, with its ratios; a row whose Crew side was not measured (a part not run) is left out.
    mutating func add(_ row: Row) {
        guard row.crew.value.isFinite else { return }
        var row = row
        let ratios = row.peers.map { row.ratio(against: $0) }
        for i in row.peers.indices { row.peers[i].ratio = ratios[i] }
        let overFloor = row.overFloor
        row.floor?.ratio = overFloor
        rows.append(row)
    }

    func render() -> String {
        var lines: [String] = []
        lines.append("Command: `\(command)`")
        lines.append("Date: \(date)")
        lines.append("Machine: \(machine)")
        if !versions.isEmpty {
            lines.append(
                "Versions: "
                    + versions.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        lines.append("")
        let header = ["workload", "timed window", "side", "setup", "figure", "CPU µs/op", "result"]
        var body: [[String]] = []
        for row in rows {
            let title = "`\(row.id)` \(row.workload) (\(row.unit))"
            body.append([
                title, row.window, row.crew.who, row.crew.setup, Self.format(row.crew.value),
                Self.cpu(row.crew), Self.details(row.crew),
            ])
            if let floor = row.floor {
                let overhead = row.overFloor.map { "Crew at \(Self.fixed($0, 2))× the floor" } ?? "n/a"
                body.append([
                    "", "", floor.who, floor.setup, Self.format(floor.value),
                    Self.cpu(floor), Self.joined(overhead, Self.details(floor)),
                ])
            }
            for peer in row.peers {
                let verdict: String
                if !peer.value.isFinite {
                    verdict = "\(peer.who) never does"
                } else if let ratio = row.ratio(against: peer) {
                    verdict =
                        ratio >= 1 ? "Crew \(Self.fixed(ratio, 2))× better" : "**Crew loses: \(Self.fixed(ratio, 2))×**"
                } else {
                    verdict = row.comparable ? "n/a" : "no ratio (a speed-up beside a speed-up)"
                }
                body.append([
                    "", "", peer.who, peer.setup, peer.value.isFinite ? Self.format(peer.value) : "never",
                    Self.cpu(peer), Self.joined(verdict, Self.details(peer)),
                ])
            }
        }
        lines.append(Self.table(header: header, body: body))
        let lost = rows.filter { !$0.losses.isEmpty }
        lines.append("")
        if lost.isEmpty {
            lines.append("Crew loses no row of this run.")
        } else {
            lines.append("Rows Crew loses in this run:")
            for row in lost {
                let against = row.losses.map {
                    "\($0.who) (\($0.setup)): \(Self.fixed(row.ratio(against: $0) ?? 0, 2))×"
                }
                lines.append("- `\(row.id)` \(row.workload): " + against.joined(separator: "; "))
            }
        }
        if !failures.isEmpty {
            lines.append("")
            lines.append("Workloads that failed in this run (no rows):")
            for (workload, reason) in failures.sorted(by: { $0.key < $1.key }) {
                lines.append("- \(workload): \(reason)")
            }
        }
        let floors = rows.compactMap { row in row.overFloor.map { (row, $0) } }.filter { $0.1 > 1.1 }
        if !floors.isEmpty {
            lines.append("")
            lines.append("Rows where Crew costs more than 1.1× Swift's floor:")
            for (row, over) in floors { lines.append("- `\(row.id)` \(row.workload): \(Self.fixed(over, 2))×") }
        }
        return lines.joined(separator: "\n")
    }

    static func cpu(_ side: Side) -> String {
        side.cpuMicroseconds.map(format) ?? ""
    }

    static func details(_ side: Side) -> String {
        guard let details = side.details, !details.isEmpty else { return "" }
        return details.sorted { $0.key < $1.key }.map { "\($0.key) \(format($0.value))" }.joined(separator: ", ")
    }

    static func joined(_ parts: String...) -> String {
        parts.filter { !$0.isEmpty }.joined(separator: "; ")
    }

    static func table(header: [String], body: [[String]]) -> String {
        let all = [header] + body
        let widths = (0..<header.count).map { column in all.map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            "| "
                + zip(cells, widths).map { $0 + String(repeating: " ", count: max(0, $1 - $0.count)) }
                .joined(separator: " | ") + " |"
        }
        let separator = "|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|"
        return ([line(header), separator] + body.map(line)).joined(separator: "\n")
    }

    static func format(_ value: Double) -> String {
        guard value.isFinite else { return "n/a" }
        let magnitude = abs(value)
        return magnitude >= 100
            ? grouped(fixed(value, 0))
            : magnitude >= 10
                ? fixed(value, 1)
                : magnitude >= 1 ? fixed(value, 2) : fixed(value, 3)
    }

    /// Thousands separated by a thin space, so that 234938007 reads 234 938 007.
    static func grouped(_ digits: String) -> String {
        let negative = digits.hasPrefix("-")
        let body = Array(negative ? digits.dropFirst() : Substring(digits))
        var out: [Character] = []
        for (i, c) in body.enumerated() {
            if i > 0 && (body.count - i) % 3 == 0 { out.append(" ") }
            out.append(c)
        }
        return (negative ? "-" : "") + String(out)
    }

    /// `value` with `digits` decimals.
    static func fixed(_ value: Double, _ digits: Int) -> String {
        String(format: "%.\(digits)f", value)
    }

    func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(self)
    }

    static func read(_ path: String) throws -> Report {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw BenchError("cannot read \(path): \(error.localizedDescription)")
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            return try decoder.decode(Report.self, from: data)
        } catch {
            throw BenchError("\(path) is not a crew-bench --json file: \(error)")
        }
    }
}

/// A benchmark that cannot go on: a peer that failed, a figure that came out wrong, a file that cannot be read.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
