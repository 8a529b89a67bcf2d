import CrewTesting
import Foundation
import Testing

/// What children print reaches a file complete, as it does a terminal: a pool's workers, closed and joined, write
/// what they had buffered before they exit.
@Suite struct OutputTests {
    @Test func aClosedPoolsWorkersWriteWhatTheyBufferedToAFile() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("crew-output-\(UUID()).txt")
        guard FileManager.default.createFile(atPath: file.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: file.path])
        }
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CrewTesting.productsDirectory + "/crew-test-worker")
        process.arguments = ["pool-prints"]
        process.standardOutput = try FileHandle(forWritingTo: file)
        let err = Pipe()
        process.standardError = err
        try process.run()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(errText)")
        let lines = Set(try String(contentsOf: file, encoding: .utf8).split(separator: "\n").map(String.init))
        let missing = (0..<20).filter { !lines.contains("printed by call \($0)") }
        #expect(missing.isEmpty, "calls whose lines are missing: \(missing)")
    }
}
