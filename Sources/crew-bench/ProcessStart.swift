import Crew
import Foundation

// Starting a child that runs one trivial function, by start method, against multiprocessing's same method.

extension CrewBench {
    func processStart(_ report: inout Report) async throws {
        let runs = quick ? 20 : 100
        let crew = Crew.current!

        // Each figure: one untimed start (the page cache, the dynamic loader's first run, the fork server's start),
        // then the median of `runs`, as in the Python peer.
        func startAndJoin(_ crew: Crew) async throws -> Double {
            var times: [Double] = []
            for _ in 0...runs {
                let start = ContinuousClock.now
                let p = Crew.Process(target: BenchFunctions.double, args: 1, crew: crew)
                try await p.start()
                _ = try p.join(timeout: nil)  // The blocking join, as Python's.
                times.append(Measure.ms(ContinuousClock.now - start))
            }
            return Measure.median(Array(times.dropFirst()))
        }

        status("process start: Crew spawn, \(runs) starts, child: crew-bench (dynamic, Foundation)")
        let spawn = try await startAndJoin(crew)

        let staticChild = Machine.executableDirectory + "/crew-bench-static"
        var spawnStatic = Double.nan
        if access(staticChild, X_OK) == 0 {
            status("process start: Crew spawn, \(runs) starts, child: crew-bench-static")
            let staticCrew = crew.withOptions {
                $0.executable = staticChild
                $0.arguments = [staticChild]
            }
            spawnStatic = try await startAndJoin(staticCrew)
        } else {
            status(
                "process start: no crew-bench-static beside crew-bench (swift build -c release builds it); row skipped")
        }

        status("process start: Crew forkserver, \(runs) starts")
        let forkserver = crew.withOptions { $0.startMethod = .forkserver }
        let forkserverMs = try await startAndJoin(forkserver)

        // As a pool sees a new worker: from asking for a child to its first answer; the join is outside the window.
        var firstAnswer: [Double] = []
        for _ in 0...runs {
            let start = ContinuousClock.now
            let p = Crew.Process(target: BenchFunctions.double, args: 1, crew: forkserver)
            try await p.start()
            _ = try await p.value
            firstAnswer.append(Measure.ms(ContinuousClock.now - start))
            try await p.join()
        }

        let python = try peer("process_start.py", ["runs": runs], into: &report)
        let trivial = "a child running x * 2 for x = 1"
        report.add(
            Row(
                id: "process.spawn", workload: "start + join \(trivial), spawn", unit: "ms", lowerIsBetter: true,
                window: "start() until join() returns; median of \(runs) starts after one untimed",
                crew: Side(
                    who: "Crew",
                    setup: "Crew.Process, start method spawn; the child is crew-bench: Foundation "
                        + "imported, Swift's runtime linked dynamically, as a user's app", value: spawn),
                peers: [python.side("process_start/spawn")].compactMap { $0 }
            ))
        report.add(
            Row(
                id: "process.spawn-static", workload: "start + join \(trivial), spawn of a static executable",
                unit: "ms", lowerIsBetter: true,
                window: "start() until join() returns; median of \(runs) starts after one untimed",
                crew: Side(
                    who: "Crew",
                    setup: "Crew.Process, start method spawn; the child is crew-bench-static, linked "
                        + "with -static-executable (Crew.Options.executable names it)", value: spawnStatic),
                peers: [python.side("process_start/spawn")].compactMap { $0 }
            ))
        report.add(
            Row(
                id: "process.forkserver", workload: "start + join \(trivial), forkserver", unit: "ms",
                lowerIsBetter: true,
                window:
                    "start() until join() returns; median of \(runs) starts after one untimed that starts the server",
                crew: Side(who: "Crew", setup: "Crew.Process, start method forkserver", value: forkserverMs),
                peers: [python.side("process_start/forkserver")].compactMap { $0 }
            ))
        report.add(
            Row(
                id: "process.forkserver-first-answer", workload: "start \(trivial), forkserver, until its answer",
                unit: "ms", lowerIsBetter: true,
                window:
                    "start() until the child's answer is in the parent; the join is outside; median of \(runs) after "
                    + "one untimed",
                crew: Side(
                    who: "Crew", setup: "Crew.Process, start method forkserver; await value",
                    value: Measure.median(Array(firstAnswer.dropFirst()))),
                peers: [python.side("process_start/forkserver first answer")].compactMap { $0 }
            ))
    }
}
