import CrewPostgres
import CrewQueue
import CrewSQLite
import CrewTestHelpers
import CrewTesting
import Foundation
import Logging
import PostgresNIO
import Testing

@testable import Crew

// The README's tour, compiled. `readmeBlocksAreCompiledHere` checks that every Swift block of the README appears
// in this file, so the README cannot drift from code that builds.

enum Work {
    static let square = Crew.Function("square") { (n: Int) in n * n }
    static let greet = Crew.Function("greet") { (name: String) async throws -> String in
        try await Task.sleep(for: .milliseconds(10))
        return "hello, \(name)"
    }
    static let crash = Crew.Function("crash") { (index: Int) -> Int in [1, 2, 3][index] }
}

struct App {
    static func main() async throws {
        try Crew.bootstrap(Work.square, Work.greet, Work.crash)

        // multiprocessing.Process, with the function's value coming back.
        let p = Crew.Process(target: Work.square, args: 12)
        try p.start()
        print(try await p.value)  // 144
        try await p.join()
        print(p.exitCode ?? -1)  // 0

        // A trap in the child is an error in the parent, with the child's last words.
        let q = Crew.Process(target: Work.crash, args: 7)
        try q.start()
        do {
            _ = try await q.value
        } catch let error as CrewError where error.code == .workerCrashed {
            print(error.exitStatus!)  // killed by signal 4 (SIGILL)
            print(error.lastStderr ?? "")  // a debug build: "Fatal error: Index out of range"
        }
    }
}

func poolTour() async throws {
    let pool = try ProcessPool(processes: 4)  // one per CPU when not given
    let squares = try await pool.map(Work.square, 0..<10_000)  // in chunks, results in order
    print(squares[99])  // 9801

    let answer = try pool.applyAsync(Work.greet, "pool")  // Python's AsyncResult
    print(try answer.get(timeout: .seconds(5)))  // hello, pool

    do {
        _ = try await pool.apply(Work.crash, 9)  // the worker traps: this call fails...
    } catch let error as CrewError {
        print(error.code)  // workerCrashed
    }
    print(try await pool.apply(Work.square, 3))  // ...and the pool goes on: 9

    for try await square in try pool.imapUnordered(Work.square, 1...3) { print(square) }

    pool.close()
    try await pool.join()
}

enum Seed {
    static let write = Crew.Function("write") { (q: Crew.Queue<String>) throws in
        for value in ["A", "B", "C"] {
            print("Put \(value) to queue...")
            try q.put(value)
        }
    }
    static let read = Crew.Function("read") { (q: Crew.Queue<String>) throws in
        while true { print("Get \(try q.get()) from queue.") }
    }
}

func queueTour() async throws {
    let q = try Crew.Queue<String>()
    let pw = Crew.Process(target: Seed.write, args: q)
    let pr = Crew.Process(target: Seed.read, args: q)
    try pw.start()
    try pr.start()
    try await pw.join()
    pr.terminate()  // the reader loops forever, as in Python

    let (mine, theirs) = try Crew.Pipe().ends  // Python's Pipe(): two Connections
    try mine.send([1, 2, 3])
    print(try await theirs.recv([Int].self))  // [1, 2, 3]

    let counter = try SharedValue(0)  // multiprocessing.Value, with its lock
    try counter.withLock { $0 += 1 }
    let lock = try Crew.Lock()  // also RLock, Semaphore, Event, Condition, Barrier
    try lock.withLock { print(counter.value) }  // 1
}

func whichPool(threads: Bool) async throws -> [Int] {
    let pool: any WorkerPool = threads ? try ThreadPool(processes: 4) : try ProcessPool(processes: 4)
    let squares = try await pool.map(Work.square, 0..<100)
    pool.close()
    try await pool.join()
    return squares
}

func coroutineTour() async throws {
    let pages = (0..<3).map { i in
        Crew.spawn {
            try await Task.sleep(for: .seconds(2))  // an I/O wait: the three overlap
            return i * 2
        }
    }
    try await Crew.joinAll(pages)
    let napped = try await Crew.blocking { sleep(1) }  // a blocking call, kept off the coroutines
    let executor = try Crew.Executor.processes(2, coroutinesEach: 100)
    let results = try await executor.map(Work.greet, ["a", "b", "c"])
    try await executor.shutdown()
    print(napped, results)
}

enum Jobs {
    static let square = QueueTask(Work.square, options: TaskOptions(maxRetries: 3))
}

func taskQueueTour() async throws {
    let broker = try SQLiteBroker(path: "crew.db")
    let handle = try await TaskClient(broker: broker).enqueue(Jobs.square, 12, countdown: .seconds(1))
    let worker = QueueWorker(broker: broker, tasks: [Jobs.square], executor: try .processes(2))
    let serving = Task { try await worker.run() }
    print(try await handle.result(timeout: .seconds(10)))  // 144
    worker.stop()
    try await serving.value
}

func enqueueWithAnOrder(_ broker: PostgresBroker, orderID: Int, logger: Logger) async throws {
    let job = try TaskClient(broker: broker).job(Jobs.square, orderID)
    try await broker.client.withTransaction(logger: logger) { connection in
        try await connection.query("INSERT INTO orders (id) VALUES (\(orderID))", logger: logger)
        try await broker.enqueue([job], connection: connection)
    }
}

func readmeTesting() throws {
    let crew = try CrewTesting.bootstrap([Work.square], worker: "my-app")
    let p = Crew.Process(target: Work.square, args: 3, crew: crew)
    _ = p
}

@Suite struct ReadmeTests {
    static func normalized(_ text: String) -> String {
        text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("import ") && $0 != "@main" }.joined(separator: "\n")
    }

    @Test func readmeBlocksAreCompiledHere() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let here = Self.normalized(try String(contentsOf: URL(fileURLWithPath: #filePath), encoding: .utf8))
        let blocks = readme.components(separatedBy: "```swift\n").dropFirst().map {
            $0.components(separatedBy: "```")[0]
        }
        #expect(blocks.count >= 3)
        for block in blocks {
            #expect(here.contains(Self.normalized(block)), "README block not compiled in ReadmeTests.swift:\n\(block)")
        }
    }
}
