import Foundation
import Testing

@testable import crew_bench

// crew-bench's arithmetic and files: the ratios it prints, what --compare calls worse, what --json keeps, and what
// it refuses from a peer. (No timings: these run on made-up figures.)

func row(
    _ id: String, crew: Double, peer: Double?, lowerIsBetter: Bool = false, floor: Double? = nil,
    comparable: Bool = true
) -> Row {
    Row(
        id: id, workload: id, unit: lowerIsBetter ? "ms" : "calls/s", lowerIsBetter: lowerIsBetter, window: "w",
        crew: Side(who: "Crew", setup: "crew setup", value: crew),
        floor: floor.map { Side(who: "Swift floor", setup: "floor setup", value: $0) },
        peers: peer.map { [Side(who: "Python", setup: "peer setup", value: $0)] } ?? [], comparable: comparable
    )
}

func report(_ rows: [Row]) -> Report {
    Report(command: "crew-bench", date: "2026-12-07T00:00:00Z", machine: "test", quick: false, rows: rows)
}

@Suite struct ReportTests {
    @Test func ratiosFavourCrewWhicheverWayTheUnitGoes() {
        #expect(row("a", crew: 300, peer: 100).ratio(against: Side(who: "P", setup: "", value: 100)) == 3)
        let latency = row("b", crew: 2, peer: 8, lowerIsBetter: true)
        #expect(latency.ratio(against: latency.peers[0]) == 4)
        #expect(row("c", crew: 50, peer: 100).losses.count == 1)
        #expect(
            row("d", crew: 1.8, peer: 1.0, comparable: false).ratio(against: Side(who: "P", setup: "", value: 1)) == nil
        )
        #expect(row("e", crew: 1, peer: .infinity, lowerIsBetter: true).losses.isEmpty)
    }

    @Test func overheadOverTheFloor() {
        #expect(row("a", crew: 50, peer: nil, floor: 100).overFloor == 2)
        #expect(row("b", crew: 11, peer: nil, lowerIsBetter: true, floor: 10).overFloor! > 1.09)
        #expect(row("c", crew: 1, peer: nil).overFloor == nil)
    }

    @Test func theTableNamesEverySideAndTheRowsLost() {
        let text = report([row("x.won", crew: 200, peer: 100), row("x.lost", crew: 50, peer: 100, floor: 60)]).render()
        #expect(text.contains("crew setup") && text.contains("peer setup") && text.contains("floor setup"))
        #expect(text.contains("Crew 2.00× better"))
        #expect(text.contains("**Crew loses: 0.50×**"))
        #expect(text.contains("Rows Crew loses in this run:\n- `x.lost`"))
        #expect(text.contains("Rows where Crew costs more than 1.1× Swift's floor:\n- `x.lost`"))
    }

    @Test func jsonKeepsEveryFigureIncludingNever() throws {
        var original = report([row("k", crew: 1.5, peer: .infinity, lowerIsBetter: true)])
        original.rows[0].crew.cpuMicroseconds = 12.5
        original.rows[0].crew.details = ["producer_s": 0.25]
        original.versions = ["python": "3.11.7"]
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("crew-bench-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try original.json().write(to: URL(fileURLWithPath: path))
        let back = try Report.read(path)
        #expect(back.rows.count == 1)
        #expect(back.rows[0].peers[0].value == .infinity)
        #expect(back.rows[0].crew.cpuMicroseconds == 12.5)
        #expect(back.rows[0].crew.details == ["producer_s": 0.25])
        #expect(back.versions == ["python": "3.11.7"])
        #expect(back.rows[0].peers[0].ratio == nil)  // Against "never" there is no ratio.
    }

    @Test func jsonCarriesEachRatio() throws {
        var report = report([])
        report.add(row("r", crew: 300, peer: 100, floor: 330))
        report.add(row("skipped", crew: .nan, peer: 100))  // A part that was not run: no row.
        let text = String(decoding: try report.json(), as: UTF8.self)
        #expect(report.rows.count == 1)
        #expect(report.rows[0].peers[0].ratio == 3)
        #expect(abs(report.rows[0].floor!.ratio! - 1.1) < 1e-9)
        #expect(text.contains("\"ratio\" : 3"))
    }

    @Test func aFileThatIsNotAReportIsATypedError() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("crew-bench-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("{\"rows\": 3}".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: BenchError.self) { try Report.read(path) }
        #expect(throws: BenchError.self) { try Report.read(path + ".missing") }
    }
}

@Suite struct CompareTests {
    @Test func aRowWorseBeyondTheThresholdIsARegression() {
        let old = report([row("fast", crew: 100, peer: 50), row("slow", crew: 10, peer: nil, lowerIsBetter: true)])
        let new = report([row("fast", crew: 85, peer: 50), row("slow", crew: 10.5, peer: nil, lowerIsBetter: true)])
        let comparison = Comparison(old: old, new: new, threshold: 10)
        #expect(comparison.regressions.map(\.id) == ["fast"])
        let slow = comparison.changes.first { $0.id == "slow" }!
        #expect(abs(slow.better! - (10 / 10.5 - 1) * 100) < 1e-9)
        #expect(comparison.render(old: old, new: new).contains("WORSE"))
    }

    @Test func aRowNewlyLostIsARegressionWhateverTheThreshold() {
        let old = report([row("r", crew: 105, peer: 100)])
        let new = report([row("r", crew: 99, peer: 100)])
        #expect(Comparison(old: old, new: new, threshold: 50).regressions.map(\.id) == ["r"])
    }

    @Test func rowsOnOneSideOnlyAreListedNotCounted() {
        let old = report([row("gone", crew: 1, peer: nil)])
        let new = report([row("new", crew: 1, peer: nil)])
        let comparison = Comparison(old: old, new: new, threshold: 10)
        #expect(comparison.regressions.isEmpty)
        #expect(Set(comparison.changes.map(\.id)) == ["gone", "new"])
    }
}

@Suite struct FiguresTests {
    @Test func readsFiguresAndVersionsAndSkipsOtherLines() throws {
        let output = """
            installing...
            {"versions": {"python": "3.11.7", "celery": "5.7.0"}}
            {"workload": "pool.map", "variant": "mp.Pool", "value": 5.5, "unit": "calls/s", "setup": "mp.Pool(2)", "cpu_us": 2.5}
            {"workload": "queue.e2e", "variant": "celery", "value": 900, "unit": "tasks/s", "details": {"producer_s": 1.5}}
            """
        let figures = try Figures.parse(Array(output.utf8), command: "peer")
        #expect(figures.versions == ["python": "3.11.7", "celery": "5.7.0"])
        #expect(figures["pool.map/mp.Pool"]?.value == 5.5)
        #expect(figures["pool.map/mp.Pool"]?.cpuMicroseconds == 2.5)
        #expect(figures.side("queue.e2e/celery", who: "Celery")?.who == "Celery")
        #expect(figures["queue.e2e/celery"]?.details == ["producer_s": 1.5])
    }

    @Test func aBrokenFigureLineIsAnErrorNotASkippedRow() {
        #expect(throws: BenchError.self) {
            try Figures.parse(Array("{\"workload\": \"x\", \"value\": ".utf8), command: "peer")
        }
    }

    @Test func sameWorkIsCheckedByTheChecksum() throws {
        let sum: UInt64 = (0..<4).map { BenchFunctions.burnLoop(seed: $0, steps: 1000) }.reduce(0, &+)
        try CrewBench.checkSameWork(sum, Side(who: "Python", setup: "", value: Double(sum % (1 << 52))))
        #expect(throws: BenchError.self) {
            try CrewBench.checkSameWork(sum, Side(who: "Python", setup: "", value: Double(sum % (1 << 52) ^ 1)))
        }
    }
}
