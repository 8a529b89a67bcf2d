import CrewTestHelpers
import CrewTestSupport
import Synchronization
import Testing

@testable import Crew

/// Crew's async paths never hold a thread of Swift's cooperative pool (two threads on a two-CPU machine): a task
/// that sleeps 10 ms at a time keeps its beat while pools, queues and pipes run flat out beside it.
///
/// It runs on its own, after the rest of the suite (scripts/test): other tests' synchronous waits would make its
/// beat late.
@Suite(.serialized) struct CooperativePoolTests {
    init() {
        _ = testCrew
    }

    final class Beat: Sendable {
        let stop = Atomic<Bool>(false)
        /// The latest a 10 ms sleep woke, in microseconds past its 10 ms.
        let worst = Atomic<Int>(0)
    }

    @Test func aHeartbeatKeepsItsTimeWhilePoolsQueuesAndPipesRun() async throws {
        let beat = Beat()
        let heartbeat = Task {
            while !beat.stop.load(ordering: .relaxed) {
                let start = ContinuousClock.now
                try await Task.sleep(for: .milliseconds(10))
                let late = ContinuousClock.now - start - .milliseconds(10)
                let micros =
                    Int(late.components.seconds) * 1_000_000 + Int(late.components.attoseconds / 1_000_000_000_000)
                beat.worst.max(micros, ordering: .relaxed)
            }
        }
        let processes = try ProcessPool(testCrew, processes: 2)
        let threads = try ThreadPool(processes: 2)
        // Each kind of work goes on for three seconds.
        let end = ContinuousClock.now + .seconds(3)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {  // A process pool: maps and single calls.
                var round = 0
                while ContinuousClock.now < end {
                    round += 1
                    let squares = try await processes.map(TestFunctions.square, 0..<5_000)
                    #expect(squares[4_999] == 4_999 * 4_999)
                    #expect(try await processes.apply(TestFunctions.square, round) == round * round)
                }
            }
            group.addTask {  // A thread pool.
                var round = 0
                while ContinuousClock.now < end {
                    round += 1
                    let squares = try await threads.map(TestFunctions.square, 0..<20_000)
                    #expect(squares[19_999] == 19_999 * 19_999)
                    #expect(try await threads.applyAsync(TestFunctions.square, round).value == round * round)
                }
            }
            group.addTask {  // A queue to a child: many small messages, then one that travels in pieces.
                while ContinuousClock.now < end {
                    let numbers = try Crew.Queue<Int>()
                    let drain = Crew.Process(target: TestFunctions.queueDrain, args: numbers, crew: testCrew)
                    try await drain.start()
                    for value in 0..<20_000 { try await numbers.put(value) }
                    try await numbers.put(-1)
                    #expect(try await drain.value.count == 20_000)
                    let bytes = try Crew.Queue<[UInt8]>()
                    let taker = Crew.Process(target: TestFunctions.queueGetBytes, args: bytes, crew: testCrew)
                    try await taker.start()
                    try await bytes.put([UInt8](repeating: 3, count: 3 << 20))
                    #expect(try await taker.value.count == 3 << 20)
                }
            }
            group.addTask {  // A pipe to a child that echoes; every 100th message fills the socket many times over.
                let (mine, theirs) = try Crew.Pipe().ends
                let echo = Crew.Process(target: TestFunctions.pipeEcho, args: theirs, crew: testCrew)
                try await echo.start()
                theirs.close()
                var i = 0
                while ContinuousClock.now < end {
                    i += 1
                    let text = i % 100 == 0 ? String(repeating: "b", count: 4 << 20) : "beat \(i)"
                    try await mine.send(text)
                    #expect(try await mine.recv(String.self) == text.uppercased())
                }
                mine.close()
                _ = try await echo.value
            }
            try await group.waitForAll()
        }
        beat.stop.store(true, ordering: .relaxed)
        try await heartbeat.value
        processes.close()
        threads.close()
        try await processes.join()
        try await threads.join()
        let worst = beat.worst.load(ordering: .relaxed)
        #expect(worst < 100_000, "a 10 ms sleep woke \(worst / 1000) ms late")
    }
}
