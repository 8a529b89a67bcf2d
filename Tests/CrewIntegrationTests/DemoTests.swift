import CrewTestHelpers
import CrewTesting
import Foundation
import Testing

/// The demo's twins of the seed examples, run as a user runs them, checked line by line.
@Suite struct DemoTests {
    /// Runs the built `crew-demo` with `arguments`; returns its standard output, standard error and status.
    /// With `outputToFile`, its standard output is a file rather than a pipe; `input` is its standard input.
    static func runDemo(_ arguments: [String], outputToFile: Bool = false, input: String? = nil) throws -> (
        out: String, err: String, status: Int32
    ) {
        let path = CrewTesting.productsDirectory + "/crew-demo"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw DemoMissing(path: path)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["CREW_DEMO_TASK_SECONDS"] = "0.2"
        process.environment = environment
        let out = Pipe()
        let err = Pipe()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("crew-demo-\(UUID()).out")
        if outputToFile {
            guard FileManager.default.createFile(atPath: file.path, contents: nil) else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: file.path])
            }
            process.standardOutput = try FileHandle(forWritingTo: file)
        } else {
            process.standardOutput = out
        }
        defer { if outputToFile { try? FileManager.default.removeItem(at: file) } }
        process.standardError = err
        let stdin = Pipe()
        if input != nil { process.standardInput = stdin }
        try process.run()
        if let input {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
        var outData = outputToFile ? Data() : out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        if outputToFile { outData = try Data(contentsOf: file) }
        return (
            String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self),
            process.terminationStatus
        )
    }

    struct DemoMissing: Error, CustomStringConvertible {
        var path: String
        var description: String { "\(path) is not built: run `swift build` first (./scripts/test does)" }
    }

    @Test func seed11PrintsWhatPythonPrints() throws {
        let run = try Self.runDemo(["run", "1.1"])
        #expect(run.status == 0, "\(run.err)")
        let lines = run.out.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(lines)")
        guard lines.count == 4 else { return }
        let parent = try #require(Self.number(in: lines[0], prefix: "Parent process ", suffix: "."))
        #expect(lines[1] == "Child process will start.")
        let child = try #require(Self.number(in: lines[2], prefix: "Run child process test (", suffix: ")..."))
        #expect(lines[3] == "Child process end.")
        #expect(parent != child)
    }

    /// The reader prints with a plain `print` and is ended by `terminate()`: its lines still arrive, through a pipe
    /// or into a file (both buffer them in the reader until it ends).
    @Test(arguments: [false, true])
    func seed13PassesAQueueFromWriterToReader(outputToFile: Bool) throws {
        let run = try Self.runDemo(["run", "1.3"], outputToFile: outputToFile)
        #expect(run.status == 0, "\(run.err)")
        let lines = run.out.split(separator: "\n").map(String.init)
        #expect(lines.count == 8, "\(lines)")
        guard lines.count == 8 else { return }
        let writer = try #require(lines.first { $0.hasPrefix("Process to write: ") })
        let reader = try #require(lines.first { $0.hasPrefix("Process to read: ") })
        #expect(writer.dropFirst(18) != reader.dropFirst(17))
        // Every value is put before it is got, in order A, B, C on both sides.
        let puts = lines.filter { $0.hasPrefix("Put ") }
        let gets = lines.filter { $0.hasPrefix("Get ") }
        #expect(puts == ["Put A to queue...", "Put B to queue...", "Put C to queue..."])
        #expect(gets == ["Get A from queue.", "Get B from queue.", "Get C from queue."])
        for value in ["A", "B", "C"] {
            let put = try #require(lines.firstIndex(of: "Put \(value) to queue..."))
            let get = try #require(lines.firstIndex(of: "Get \(value) from queue."))
            #expect(put < get)
        }
    }

    @Test func seed23RunsThreadsTogetherThenOneAfterTheOther() throws {
        let run = try Self.runDemo(["run", "2.3"])
        #expect(run.status == 0, "\(run.err)")
        let lines = run.out.split(separator: "\n").map(String.init)
        let split = try #require(lines.firstIndex(of: "# with join: one after the other"))
        #expect(lines.first == "# without join: the three threads overlap")
        let together = Array(lines[1..<split])
        let serial = Array(lines[(split + 1)...])
        #expect(together.count == 12 && serial.count == 12, "\(lines)")
        // Without join: every thread has started (printed its number) before any has finished.
        let lastNumber = try #require(together.lastIndex { ["0", "2", "4"].contains($0) })
        let firstEnd = try #require(together.firstIndex { $0.hasPrefix("thread run ") })
        #expect(lastNumber < firstEnd)
        #expect(Set(together.filter { $0.hasPrefix("Thread-") }).count == 3)
        #expect(Set(together.filter { $0.hasPrefix("Parent process ") }).count == 1)
        // With join: name, parent, number, end — three times in order.
        for (i, number) in ["0", "2", "4"].enumerated() {
            #expect(serial[i * 4].hasPrefix("Thread-"))
            #expect(serial[i * 4 + 1].hasPrefix("Parent process "))
            #expect(serial[i * 4 + 2] == number)
            #expect(serial[i * 4 + 3].hasPrefix("thread run ") && serial[i * 4 + 3].hasSuffix(" s end"))
        }
    }

    @Test func seed24RunsTheSamePoolCodeOnProcessesAndThreads() throws {
        let run = try Self.runDemo(["run", "2.4"])
        #expect(run.status == 0, "\(run.err)")
        let lines = run.out.split(separator: "\n").map(String.init)
        #expect(lines.count == 11, "\(lines)")
        guard lines.count == 11 else { return }
        let parent = try #require(Self.number(in: lines[0], prefix: "Parent process ", suffix: "."))
        #expect(lines[1] == "# from multiprocessing import Pool")
        #expect(lines[5] == "Results: [0, 2, 4]")
        #expect(lines[6] == "# from multiprocessing.dummy import Pool")
        #expect(lines[10] == "Results: [0, 2, 4]")
        func pids(_ range: Range<Int>) -> [Int] {
            lines[range].compactMap { line in
                let parts = line.split(separator: " ")
                return parts.count == 8 ? Int(parts[5]) : nil
            }
        }
        #expect(pids(2..<5).count == 3 && !pids(2..<5).contains(parent))  // Processes: other pids.
        #expect(pids(7..<10) == [parent, parent, parent])  // Threads: this process.
        #expect(lines[7..<10].allSatisfy { $0.contains(" on Thread-") })
    }

    @Test func seed31RunsThreeCoroutinesTogether() throws {
        let run = try Self.runDemo(["run", "3.1"])
        #expect(run.status == 0, "\(run.err)")
        let lines = run.out.split(separator: "\n").map(String.init)
        #expect(lines.count == 9, "\(lines)")
        guard lines.count == 9 else { return }
        // Every coroutine has started (printed its number) before any has finished its sleep.
        let lastNumber = try #require(lines.lastIndex { ["0", "2", "4"].contains($0) })
        let firstEnd = try #require(lines.firstIndex { $0.hasPrefix("run ") })
        #expect(lastNumber < firstEnd)
        #expect(Set(lines.filter { ["0", "2", "4"].contains($0) }) == ["0", "2", "4"])
        #expect(Set(lines.filter { $0.hasPrefix("Parent process ") }).count == 1)
        #expect(lines.filter { $0.hasPrefix("run ") && $0.hasSuffix(" s end") }.count == 3)
    }

    @Test func seed22MeasuresThreadsAndProcesses() throws {
        let run = try Self.runDemo(["run", "2.2"])
        #expect(run.status == 0, "\(run.err)")
        let lines = run.out.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(lines)")
        guard lines.count == 4 else { return }
        #expect(lines[1].hasPrefix("threads  : 1 worker ") && lines[1].hasSuffix("×"))
        #expect(lines[2].hasPrefix("processes: 1 worker ") && lines[2].contains(" speed-up "))
    }

    @Test func seed33AWorkerServesWhatTheProducerEnqueues() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("crew-seed33-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let broker = "sqlite://" + dir.appendingPathComponent("crew.db").path
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: CrewTesting.productsDirectory + "/crew-demo")
        worker.arguments = ["worker", "-P", "coroutines", "-c", "10", "-l", "info", "--broker", broker]
        let log = Pipe()
        worker.standardError = log
        worker.standardOutput = log
        try worker.run()
        defer { if worker.isRunning { worker.terminate() } }
        let run = try Self.runDemo(["produce", "--count", "3", "--broker", broker])
        #expect(run.status == 0, "\(run.err)")
        let lines = run.out.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0.hasPrefix("page ") }.count == 3, "\(lines)")
        #expect(lines.filter { $0.hasPrefix("crunch ") }.count == 3)
        #expect(lines.last?.hasPrefix("all 6 results in ") == true)
        let inspection = try Self.runDemo(["inspect", "--broker", broker])
        #expect(inspection.out.contains("default: succeeded 6"), "\(inspection.out)")
        // SIGTERM: the worker stops gracefully and exits 0.
        worker.terminate()
        worker.waitUntilExit()
        #expect(worker.terminationStatus == 0)
        let text = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(text.contains("worker ready") && text.contains("worker stopped"), "\(text)")
    }

    @Test func seed33RunsAWorkerAndAProducerInOneProcess() throws {
        let run = try Self.runDemo(["run", "3.3"])
        #expect(run.status == 0, "\(run.err)")
        let lines = run.out.split(separator: "\n").map(String.init)
        #expect(lines.count == 13, "\(lines)")
        #expect(lines.filter { $0.hasPrefix("page ") }.count == 10)
        #expect(lines.contains("crunch: 59999997"))
        #expect(lines.last?.hasPrefix("10 fetches of 0.2 s each on 10 coroutines took ") == true)
    }

    @Test func seed12BehavesAsPythonsPool() throws {
        let run = try Self.runDemo(["run", "1.2"])
        #expect(run.status == 0, "\(run.err)")
        let lines = run.out.split(separator: "\n").map(String.init)
        #expect(lines.count == 13, "\(lines)")
        guard lines.count == 13 else { return }
        let parent = try #require(Self.number(in: lines[0], prefix: "Parent process ", suffix: "."))
        #expect(lines.last == "All subprocesses done.")
        let waiting = try #require(lines.firstIndex(of: "Waiting for all subprocesses done..."))
        #expect(waiting < lines.count - 1)
        var pids: Set<Int> = []
        var running = 0
        var started: Set<Int> = []
        var done: Set<Int> = []
        for line in lines {
            if line.hasPrefix("Run task ") {
                let parts = line.split(separator: " ")
                let task = Int(parts[2])!
                let pid = Int(parts[3].dropFirst().dropLast(4))!
                pids.insert(pid)
                started.insert(task)
                running += 1
                #expect(running <= 2, "more than two tasks at once in a pool of two: \(lines)")
            } else if line.hasPrefix("Task ") {
                let parts = line.split(separator: " ")
                let task = Int(parts[1])!
                #expect(started.contains(task), "task \(task) ended before it started")
                #expect(line.hasSuffix(" seconds.") && parts[2] == "runs")
                done.insert(task)
                running -= 1
            }
        }
        #expect(started == Set(0..<5) && done == Set(0..<5))
        #expect(pids.count == 2, "a pool of two runs the five tasks in two processes: \(pids)")
        #expect(!pids.contains(parent))
    }

    @Test func listingNamesEveryTwin() throws {
        let run = try Self.runDemo(["list"])
        #expect(run.status == 0)
        #expect(run.out.contains("1.1") && run.out.contains("1.2"))
        // Its first lines say what the seed is and how the numbers map to it.
        #expect(run.out.hasPrefix("The seed is a tutorial on Python's processes, threads and coroutines"))
        #expect(run.out.contains("keeps its section number"))
    }

    @Test func anUnknownTwinIsAnErrorNotACrash() throws {
        let run = try Self.runDemo(["run", "9.9"])
        #expect(run.status != 0)
        #expect(run.err.contains("no twin 9.9"))
    }

    @Test func theDefaultRunsEveryTwin() throws {
        let run = try Self.runDemo([])
        #expect(run.status == 0, "\(run.err)")
        #expect(run.out.contains("== 1.1") && run.out.contains("== 1.2"))
        #expect(run.out.contains("Child process end.") && run.out.contains("All subprocesses done."))
    }

    static func number(in line: String, prefix: String, suffix: String) -> Int? {
        guard line.hasPrefix(prefix), line.hasSuffix(suffix) else { return nil }
        return Int(line.dropFirst(prefix.count).dropLast(suffix.count))
    }
}
