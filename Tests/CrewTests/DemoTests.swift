import CrewTesting
import Foundation
import Testing

/// The demo's twins of the seed examples, run as a user runs them, checked line by line.
@Suite struct DemoTests {
    /// Runs the built `crew-demo` with `arguments`; returns its standard output, standard error and status.
    static func runDemo(_ arguments: [String]) throws -> (out: String, err: String, status: Int32) {
        let path = CrewTesting.productsDirectory + "/crew-demo"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw DemoMissing(path: path)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self), process.terminationStatus)
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

    @Test func listingNamesEveryTwin() throws {
        let run = try Self.runDemo(["list"])
        #expect(run.status == 0)
        #expect(run.out.contains("1.1"))
    }

    @Test func anUnknownTwinIsAnErrorNotACrash() throws {
        let run = try Self.runDemo(["run", "9.9"])
        #expect(run.status != 0)
        #expect(run.err.contains("no twin 9.9"))
    }

    @Test func theDefaultRunsEveryTwin() throws {
        let run = try Self.runDemo([])
        #expect(run.status == 0, "\(run.err)")
        #expect(run.out.contains("== 1.1"))
        #expect(run.out.contains("Child process end."))
    }

    static func number(in line: String, prefix: String, suffix: String) -> Int? {
        guard line.hasPrefix(prefix), line.hasSuffix(suffix) else { return nil }
        return Int(line.dropFirst(prefix.count).dropLast(suffix.count))
    }
}
