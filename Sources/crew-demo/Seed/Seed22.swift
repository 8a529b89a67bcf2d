import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// Seed 2.2: what the GIL means, measured. The tutorial explains that CPython's threads take turns on one core for
/// CPU-bound work, so only processes use several. Swift has no GIL: the same work on 2 threads or 2 processes
/// takes about half the time it takes on 1.
///
/// `CREW_DEMO_TASK_SECONDS` scales the work (the tests use it).
enum Seed22 {
    static let burn = Crew.Function("seed22.burn") { (rounds: Int) -> UInt64 in
        var x: UInt64 = 0
        for i in 0..<(rounds * 1_000_000) { x = x &* 6_364_136_223_846_793_005 &+ UInt64(truncatingIfNeeded: i) }
        return x
    }

    static let functions: [any AnyFunction] = [burn]

    @Sendable
    static func main() async throws {
        let rounds = max(1, Int(Seed23.seconds() * 100))
        say("The same CPU-bound work (4 tasks) on 1 and 2 workers:")
        for (label, make) in [
            ("threads  ", { (n: Int) throws -> any WorkerPool in try ThreadPool(processes: n) }),
            ("processes", { (n: Int) throws -> any WorkerPool in try ProcessPool(processes: n) }),
        ] {
            let one = try await seconds(on: make(1), rounds: rounds)
            let two = try await seconds(on: make(2), rounds: rounds)
            say("\(label): 1 worker \(fixed(one, 2)) s, 2 workers \(fixed(two, 2)) s, speed-up \(fixed(one / two, 2))×")
        }
        say("CPython's threads would show a speed-up of about 1.0× (the GIL); its processes about 1.8×.")
    }

    static func seconds(on pool: any WorkerPool, rounds: Int) async throws -> Double {
        _ = try await pool.map(burn, [1], chunkSize: 1)  // Workers up.
        let start = Clock.seconds()
        _ = try await pool.map(burn, Array(repeating: rounds, count: 4), chunkSize: 1)
        let elapsed = Clock.seconds() - start
        pool.close()
        try await pool.join()
        return elapsed
    }
}
