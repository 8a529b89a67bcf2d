import Crew
import Foundation

// One call at a time through a pool of one worker process: what each call costs when nothing overlaps it.

extension CrewBench {
    func roundTrip(_ report: inout Report) async throws {
        let n = quick ? 2_000 : 10_000
        let rounds = quick ? 1 : 5
        status("round trip: Crew, \(rounds) rounds of \(n) calls, one at a time")
        let pool = try ProcessPool(processes: 1)
        _ = try await pool.map(BenchFunctions.echoByte, Array(repeating: 1, count: 100), chunkSize: 1)
        let workers = pool.workerPIDs
        let async = try await Measure.median(rounds: rounds) { () async throws -> [Double] in
            let cpu = CPUWindow(pids: workers)
            let start = ContinuousClock.now
            for _ in 0..<n { _ = try await pool.apply(BenchFunctions.echoByte, 1) }
            return [Measure.us(ContinuousClock.now - start) / Double(n), cpu.microseconds(per: n)]
        }
        let blocking = try await Measure.median(rounds: rounds) { () async throws -> [Double] in
            let cpu = CPUWindow(pids: workers)
            let start = ContinuousClock.now
            for _ in 0..<n { _ = try pool.applyAsync(BenchFunctions.echoByte, 1).get() }
            return [Measure.us(ContinuousClock.now - start) / Double(n), cpu.microseconds(per: n)]
        }
        precondition(pool.workerPIDs == workers, "the worker was replaced during the run")
        pool.close()
        try await pool.join()
        status("round trip: the floor, a ping-pong of 1 byte with plain blocking recv and send")
        let floor = try await Measure.median(rounds: rounds) { try await Self.rawPingPong(n) }
        let floorSide = Side(
            who: "Swift floor",
            setup: "a child started before; 1 byte each way over a socketpair with plain blocking "
                + "recv and send on both sides (no framing, no function call)", value: floor[0],
            cpuMicroseconds: floor[1])
        status("round trip: the floor of an awaited call, the same ping-pong read by a thread that resumes the caller")
        let awaitedFloor = try await Measure.median(rounds: rounds) { try await Self.rawPingPongAwaited(n) }
        let awaitedFloorSide = Side(
            who: "Swift floor",
            setup: "the same ping-pong, awaited: the caller task sends, then awaits a continuation "
                + "that a thread of its own resumes after a blocking recv of the echo", value: awaitedFloor[0],
            cpuMicroseconds: awaitedFloor[1])

        let python = try peer("round_trip.py", ["calls": n, "rounds": rounds], into: &report)
        let window =
            "\(n) calls one after another, each awaited before the next; median of \(rounds) rounds after "
            + "one untimed; the pool is started and warm before"
        report.add(
            Row(
                id: "round-trip.apply",
                workload: "one call at a time through a pool of 1 worker process (1 byte in, "
                    + "1 byte out)", unit: "µs per call", lowerIsBetter: true, window: window,
                crew: Side(
                    who: "Crew",
                    setup: "ProcessPool(processes: 1): try await pool.apply(f, 1); pool workers never "
                        + "spin", value: async[0], cpuMicroseconds: async[1]),
                floor: awaitedFloorSide,
                peers: [python.side("round_trip/apply")].compactMap { $0 }
            ))
        report.add(
            Row(
                id: "round-trip.apply-blocking",
                workload: "one call at a time through a pool of 1 worker process, "
                    + "blocking caller", unit: "µs per call", lowerIsBetter: true, window: window,
                crew: Side(
                    who: "Crew",
                    setup: "ProcessPool(processes: 1): try pool.applyAsync(f, 1).get(); pool workers "
                        + "never spin", value: blocking[0], cpuMicroseconds: blocking[1]),
                floor: floorSide,
                peers: [python.side("round_trip/apply_async get")].compactMap { $0 }
            ))
    }
}
