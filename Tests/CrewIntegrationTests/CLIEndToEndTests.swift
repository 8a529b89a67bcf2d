import CrewTestHelpers
import Foundation
import Testing

/// The queue's command line as a user runs it (the demo embeds it): what it refuses, in one line, with which exit
/// status, and what it names itself.
@Suite struct CLIEndToEndTests {
    let directory: URL
    let broker: String

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("crew-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        broker = "sqlite://" + directory.appendingPathComponent("crew.db").path
    }

    func run(_ arguments: [String], input: String? = nil) throws -> (out: String, err: String, status: Int32) {
        try DemoTests.runDemo(arguments + ["--broker", broker], input: input)
    }

    /// Whether the broker holds no job at all, as `inspect` says.
    func holdsNoJob() throws -> Bool {
        let inspection = try run(["inspect"])
        #expect(inspection.status == 0, "\(inspection.err)")
        return inspection.out.contains("Queues:\n  (no jobs)")
    }

    @Test func badInputIsRefusedInOneLineWithItsOwnStatusAndNothingIsStored() throws {
        let refusals: [([String], String)] = [
            (["enqueue", "nosuch"], "no task named \"nosuch\" is known to this program (it knows seed33.crunch"),
            (["enqueue", "seed33.crunch", "--args", "\"seven\""], "the arguments do not decode as Int"),
            (["enqueue", "seed33.crunch", "--args", "{nope"], "the arguments do not decode as Int"),
            (["enqueue", "seed33.crunch", "--args", "7", "--countdown", "-5"], "a countdown is a number of seconds"),
            (["enqueue", "seed33.crunch", "--args", "7", "--countdown=-5"], "a countdown is a number of seconds"),
        ]
        for (arguments, message) in refusals {
            let result = try run(arguments)
            #expect(result.status == 65, "\(arguments): \(result.err)")
            #expect(result.err.hasPrefix("crew-demo: error: "), "\(arguments): \(result.err)")
            #expect(result.err.contains(message), "\(arguments): \(result.err)")
            #expect(result.err.split(separator: "\n").count == 1, "\(arguments): \(result.err)")
        }
        // What does not parse is the parser's: its message, the usage (naming this program), status 64.
        for arguments in [
            ["enqueue", "seed33.crunch", "--bogus"], ["enqueue", "seed33.crunch", "--countdown", "soon"],
        ] {
            let result = try run(arguments)
            #expect(result.status == 64, "\(arguments): \(result.err)")
            #expect(result.err.contains("Usage: crew-demo enqueue"), "\(arguments): \(result.err)")
        }
        // A runtime error is one line, without the usage.
        let missing = try run(["result", "0190aaaa-0000-7000-8000-000000000000"])
        #expect(missing.status == 66 && !missing.err.contains("Usage"), "\(missing.err)")
        #expect(try holdsNoJob())
        let good = try run(["enqueue", "seed33.crunch", "--args", "7", "--countdown", "0"])
        #expect(good.status == 0 && good.out.hasPrefix("enqueued seed33.crunch as "), "\(good.err)")
    }

    @Test func aBatchGoesInWholeOrNotAtAll() throws {
        let lines =
            (1...50).map { #"{"task": "seed33.crunch", "args": \#($0)}"# } + [
                #"{"task": "seed33.fetch", "args": 3, "countdown": 3600, "queue": "pages"}"#, "",
            ]
        let file = directory.appendingPathComponent("jobs.jsonl")
        try lines.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        let stored = try run(["enqueue", "--batch", file.path])
        #expect(stored.status == 0 && stored.out == "enqueued 51 job(s)\n", "\(stored.err)")
        // From standard input; a bad line (the third) refuses the whole batch, naming the line.
        let bad = [#"{"task": "seed33.crunch", "args": 1}"#, #"{"task": "seed33.crunch", "args": 2}"#, #"{"args": 3}"#]
        let refused = try run(["enqueue", "--batch", "-"], input: bad.joined(separator: "\n"))
        #expect(refused.status == 65 && refused.err.contains("line 3 of the batch: not a job"), "\(refused.err)")
        let misspelt = try run(
            ["enqueue", "--batch", "-"], input: #"{"task": "seed33.crunch", "args": 1, "countdwon": 60}"#)
        #expect(misspelt.status == 65 && misspelt.err.contains("unknown key(s) countdwon"), "\(misspelt.err)")
        let stdin = try run(["enqueue", "--batch", "-", "--json"], input: bad.prefix(2).joined(separator: "\n"))
        #expect(stdin.status == 0 && stdin.out.hasPrefix("{\"ids\":["), "\(stdin.err)")
        let inspection = try run(["inspect"])
        #expect(inspection.out.contains("default: available 52"), "\(inspection.out)")
        #expect(inspection.out.contains("pages: scheduled 1"), "\(inspection.out)")
        let absent = try run(["enqueue", "--batch", directory.appendingPathComponent("none.jsonl").path])
        #expect(absent.status == 66, "\(absent.err)")
    }

    @Test func aFileThatIsNotADatabaseIsRefusedAndLeftAlone() throws {
        let junk = directory.appendingPathComponent("junk.db")
        try Data(repeating: 0x2a, count: 8192).write(to: junk)
        let result = try DemoTests.runDemo(["inspect", "--broker", "sqlite://" + junk.path])
        #expect(result.status == 69, "\(result.err)")
        #expect(result.err.hasPrefix("crew-demo: error: ") && !result.err.contains("Usage"), "\(result.err)")
        let beside = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(beside == ["junk.db"], "\(beside)")
        #expect(try Data(contentsOf: junk) == Data(repeating: 0x2a, count: 8192))
    }
}
