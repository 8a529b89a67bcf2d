import CrewTestHelpers
import CrewTestSupport
import Testing

@testable import Crew

/// No call runs twice, and none is lost: every run of a call notes itself on a queue before it returns or crashes,
/// while workers keep dying under calls that are in flight.
@Suite struct ExactlyOnceTests {
    init() {
        _ = testCrew
    }

    @Test(arguments: [Crew.StartMethod.spawn, .forkserver])
    func everyCallRunsOnceWhileWorkersDieAroundIt(method: Crew.StartMethod) async throws {
        let runs = try Crew.Queue<Int>()
        let crew = testCrew.withOptions { $0.startMethod = method }
        let pool = try ProcessPool(
            crew, processes: 2, options: .init(maxInFlight: 8), initializer: TestFunctions.keepQueue, initArgs: runs)
        let count = 90  // A third trap, a third kill their worker, a third return: 16 in flight on two workers.
        let results = try (0..<count).map { try pool.applyAsync(TestFunctions.countedSquareOrCrash, $0) }
        for (n, result) in results.enumerated() {
            do {
                let value = try await result.value
                #expect(n % 3 == 0 && value == n * n, "call \(n) returned \(value)")
            } catch let error as CrewError {
                // A call fails only if it crashed its worker itself (a synchronous call runs alone).
                #expect(n % 3 != 0, "call \(n) failed: \(error)")
                #expect(error.code == .workerCrashed && error.callState == .running, "call \(n): \(error)")
            }
        }
        pool.close()
        try await pool.join()
        // Drained until empty: once the workers have exited, an empty queue says `closed` (nobody else holds it).
        var seen: [Int: Int] = [:]
        while true {
            do {
                seen[try runs.get(timeout: .milliseconds(500)), default: 0] += 1
            } catch let error as CrewError where [.empty, .timedOut, .closed].contains(error.code) {
                break
            }
        }
        let twice = seen.filter { $0.value > 1 }.keys.sorted()
        let never = (0..<count).filter { seen[$0] == nil }
        #expect(twice.isEmpty, "calls that ran twice: \(twice)")
        #expect(never.isEmpty, "calls that never ran: \(never)")
    }
}
