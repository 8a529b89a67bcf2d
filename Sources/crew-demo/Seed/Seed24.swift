import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// Seed 2.4: `multiprocessing.dummy` — the same pool code on processes or on threads, by changing one word:
///
/// ```python
/// from multiprocessing import Pool          # processes
/// from multiprocessing.dummy import Pool    # threads
/// ```
///
/// The twin runs the same function on `ProcessPool(processes: 3)` and on `ThreadPool(processes: 3)`: each call
/// says which process and thread it ran on, and the results are the same.
enum Seed24 {
    static let work = Crew.Function("seed24.work") { (number: Int) -> Int in
        say("Run task \(number) in process \(getpid()) on \(Crew.Thread.current.name)")
        Clock.sleep(seconds: Seed23.seconds() / 4)
        return number * 2
    }

    static let functions: [any AnyFunction] = [work]

    @Sendable
    static func main() async throws {
        say("Parent process \(getpid()).")
        say("# from multiprocessing import Pool")
        let processes = try ProcessPool(processes: 3)
        say("Results: \(try await run(on: processes))")
        say("# from multiprocessing.dummy import Pool")
        let threads = try ThreadPool(processes: 3)
        say("Results: \(try await run(on: threads))")
    }

    /// The code that does not change: it takes any pool.
    static func run(on pool: some WorkerPool) async throws -> [Int] {
        let results = try await pool.map(work, 0..<3, chunkSize: 1)
        pool.close()
        try await pool.join()
        return results
    }
}
