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
        /// How late each 10 ms sleep woke, in microseconds past its 10 ms.
        let late = Mutex<[Int]>([])
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
                beat.late.withLock { $0.append(micros) }
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
        // A path that held a cooperative thread (a blocking wait for a full pipe, a lock held across a send) would
        // hold the beat for as long as it held the thread, again and again. CPU work makes beats late too: on this
        // machine's two cores, shared with the children and the work above, the worst beat of a run was 70-111 ms
        // late and a handful were over 50 ms (a CI run once failed a bound of 100 ms at 111 ms).
        let late = beat.late.withLock { $0 }.sorted()
        let worst = late.last ?? 0
        let median = late.isEmpty ? 0 : late[late.count / 2]
        print("heartbeat: \(late.count) beats, median \(median / 1000) ms late, the worst \(worst / 1000) ms")
        #expect(late.count > 50)
        #expect(worst < 250_000, "a 10 ms sleep woke \(worst / 1000) ms late")
        #expect(median < 20_000, "half the beats were over \(median / 1000) ms late")
    }
}
