import Crew
import CrewTestSupport

// The child executable of Crew's test suite: it registers the test functions and serves its parent.
try Crew.bootstrap(TestFunctions.all + QueueFunctions.all)
if CommandLine.arguments.dropFirst().first == "pool-prints" {
    // A pool whose workers print with a plain `print`, closed and joined: their lines must all reach our standard
    // output, a file or a pipe though it is (OutputTests).
    let pool = try ProcessPool(processes: 2)
    _ = try await pool.map(TestFunctions.printPlain, 0..<20, chunkSize: 1)
    pool.close()
    try pool.join()
} else {
    print("crew-test-worker serves Crew's test suite as a child process; it does nothing on its own.")
}
