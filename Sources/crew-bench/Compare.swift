import Foundation

// `crew-bench --compare OLD.json NEW.json`: each row's change between two runs, so that a regression is seen before
// it lands. Rows are matched by id; a change is "worse" when Crew's figure moved the wrong way by more than the
// threshold, or when a row Crew won is now lost.

struct Comparison {
    struct Change {
        var id: String
        var workload: String
        var unit: String
        var old: Double?
        var new: Double?
        /// Percent better (positive) or worse (negative) for Crew, whatever the unit's direction.
        var better: Double?
        var oldRatios: String
        var newRatios: String
        var worse: Bool
    }

    var changes: [Change] = []
    var threshold: Double

    init(old: Report, new: Report, threshold: Double) {
        self.threshold = threshold
        let oldRows = Dictionary(old.rows.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var seen: Set<String> = []
        for row in new.rows {
            seen.insert(row.id)
            let before = oldRows[row.id]
            var better: Double?
            if let before, before.crew.value > 0, row.crew.value > 0, before.crew.value.isFinite,
                row.crew.value.isFinite
            {
                let factor = row.lowerIsBetter ? before.crew.value / row.crew.value : row.crew.value / before.crew.value
                better = (factor - 1) * 100
            }
            let lostNow = !row.losses.isEmpty && (before.map { $0.losses.isEmpty } ?? false)
            changes.append(
                Change(
                    id: row.id, workload: row.workload, unit: row.unit, old: before?.crew.value, new: row.crew.value,
                    better: better, oldRatios: before.map(Self.ratios) ?? "", newRatios: Self.ratios(row),
                    worse: (better ?? 0) < -threshold || lostNow
                ))
        }
        for row in old.rows where !seen.contains(row.id) {
            changes.append(
                Change(
                    id: row.id, workload: row.workload, unit: row.unit, old: row.crew.value, new: nil, better: nil,
                    oldRatios: Self.ratios(row), newRatios: "", worse: false
                ))
        }
    }

    static func ratios(_ row: Row) -> String {
        let parts = row.peers.compactMap { peer in row.ratio(against: peer).map { Report.fixed($0, 2) + "×" } }
        return parts.joined(separator: " / ")
    }

    var regressions: [Change] { changes.filter(\.worse) }

    func render(old: Report, new: Report) -> String {
        var lines = [
            "old: \(old.date), \(old.machine)\(old.quick ? " (--quick)" : "")",
            "new: \(new.date), \(new.machine)\(new.quick ? " (--quick)" : "")",
            "",
        ]
        let header = [
            "row", "workload (unit)", "old Crew", "new Crew", "change for Crew", "old vs peers", "new vs peers",
        ]
        let body = changes.map { change -> [String] in
            let moved: String
            if let better = change.better {
                moved = (better >= 0 ? "+" : "") + Report.fixed(better, 1) + " %" + (change.worse ? "  WORSE" : "")
            } else {
                moved = change.new == nil ? "gone" : change.old == nil ? "new" : "n/a"
            }
            return [
                change.id, "\(change.workload) (\(change.unit))", change.old.map(Report.format) ?? "—",
                change.new.map(Report.format) ?? "—", moved, change.oldRatios, change.newRatios,
            ]
        }
        lines.append(Report.table(header: header, body: body))
        lines.append("")
        let worse = regressions
        lines.append(
            worse.isEmpty
                ? "No row is more than \(Report.fixed(threshold, 0)) % worse for Crew, and no row is newly lost."
                : "\(worse.count) row(s) more than \(Report.fixed(threshold, 0)) % worse for Crew or newly lost: "
                    + worse.map(\.id).joined(separator: ", "))
        return lines.joined(separator: "\n")
    }
}
