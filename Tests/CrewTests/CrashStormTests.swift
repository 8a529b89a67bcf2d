import CrewTestHelpers
import CrewTestSupport
import CrewTesting
import Testing

@testable import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// Calls that trap, kill or crash their worker, mixed with normal calls, many in flight on a two-worker pool:
/// every normal call gets its value, every bad call a `workerCrashed` error, nothing hangs and nothing leaks.
@Suite(.serialized) struct CrashStormTests {
    init() {
        _ = testCrew
    }

    enum Outcome: Sendable {
        case value(Int)
        case crashed
        case failed(String)
    }

    @Test(.timeLimit(.minutes(5)), arguments: [Crew.StartMethod.spawn, .forkserver])
    func aCrashStormFailsOnlyTheBadCalls(method: Crew.StartMethod) async throws {
        // What stays once a pool of this kind has run (the I/O thread's descriptors, the fork server), then the
        // baseline. This suite runs in a test process of its own (see scripts/test), so nothing else moves it.
        let warmUp = try ProcessPool(testCrew, processes: 2, startMethod: method)
        _ = try await warmUp.apply(TestFunctions.square, 1)
        warmUp.close()
        try await warmUp.join()
        let fdsBefore = try await settledDescriptorCount()
        let childrenBefore = CrewTesting.liveChildren().count

        let pool = try ProcessPool(testCrew, processes: 2, startMethod: method)
        _ = try await pool.apply(TestFunctions.square, 1)

        let total = 600
        let inFlight = 16
        // Every third call is bad, of four kinds in turn: at least 200 bad calls.
        func call(_ n: Int) async -> Outcome {
            do {
                switch n % 12 {
                case 2: _ = try await pool.apply(TestFunctions.squareOrTrap, -n, timeout: .seconds(60))
                case 5: _ = try await pool.apply(TestFunctions.killSelf, SIGKILL, timeout: .seconds(60))
                case 8: _ = try await pool.apply(TestFunctions.segfault, Crew.Empty(), timeout: .seconds(60))
                case 11: _ = try await pool.apply(TestFunctions.trapFatalError, "storm \(n)", timeout: .seconds(60))
                default: return .value(try await pool.apply(TestFunctions.square, n, timeout: .seconds(60)))
                }
                return .failed("a bad call returned")
            } catch let error as CrewError where error.code == .workerCrashed && n % 3 == 2 {
                return .crashed
            } catch {
                return .failed("\(error)")
            }
        }
        var outcomes: [Int: Outcome] = [:]
        await withTaskGroup(of: (Int, Outcome).self) { group in
            var next = 0
            while next < min(inFlight, total) {
                let n = next
                group.addTask { (n, await call(n)) }
                next += 1
            }
            while let (n, outcome) = await group.next() {
                outcomes[n] = outcome
                if next < total {
                    let m = next
                    group.addTask { (m, await call(m)) }
                    next += 1
                }
            }
        }
        var normalFailures: [String] = []
        var wrong = 0
        var badAnswered = 0
        var crashed = 0
        for n in 0..<total {
            let bad = n % 3 == 2
            switch outcomes[n] {
            case .value(let v)?:
                if bad { badAnswered += 1 } else if v != n * n { wrong += 1 }
            case .crashed?:
                if bad { crashed += 1 } else { normalFailures.append("call \(n): workerCrashed") }
            case .failed(let text)?:
                normalFailures.append("call \(n): \(text)")
            case nil:
                normalFailures.append("call \(n): no outcome")
            }
        }
        // At least 200 bad calls ended a worker each (and not some other way).
        #expect(crashed >= 200)
        #expect(wrong == 0 && badAnswered == 0)
        #expect(normalFailures.isEmpty, "\(normalFailures.count) normal calls failed, e.g. \(normalFailures.prefix(3))")

        // The pool goes on; once it is closed and joined, descriptors and children are back to the baseline.
        #expect(try await pool.apply(TestFunctions.square, 9) == 81)
        pool.close()
        try await pool.join()
        var settled = false
        for _ in 0..<200 {
            if openDescriptorCount() == fdsBefore && CrewTesting.liveChildren().count == childrenBefore {
                settled = true
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(
            settled,
            "descriptors \(fdsBefore) -> \(openDescriptorCount()), children \(childrenBefore) -> \(CrewTesting.liveChildren().count)"
        )
    }

    /// The descriptor count once it has stopped moving (a joined pool's last sockets close on the I/O thread).
    func settledDescriptorCount() async throws -> Int {
        var last = openDescriptorCount()
        for _ in 0..<40 {
            try await Task.sleep(for: .milliseconds(25))
            let now = openDescriptorCount()
            if now == last { return now }
            last = now
        }
        return last
    }
}
