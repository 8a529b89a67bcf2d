import CrewTestHelpers
import Testing

@testable import Crew

/// What a child's death says: the tail of its standard error, and the error its calls fail with.
@Suite struct DeathReportTests {
    @Test func theTailKeepsTheLastBytesFromALineStart() {
        var tail = StderrTail(limit: 256)
        for i in 0..<100 { tail.append(Array("line \(i)\n".utf8)) }
        let text = tail.text
        #expect(text.hasSuffix("line 99\n"))
        #expect(text.hasPrefix("line "))  // Cut at a line start, not in the middle of one.
        #expect(!text.contains("line 0\n"))
        #expect(tail.bytes.count == 256)
    }

    @Test func theFatalErrorLineSurvivesALongReportAfterIt() {
        var tail = StderrTail(limit: 256)
        tail.append(Array("starting\nSwift/Array.swift:123: Fatal error: Index out of range\n".utf8))
        for i in 0..<200 { tail.append(Array("frame \(i) of a long report\n".utf8)) }
        #expect(tail.fatalLine == "Swift/Array.swift:123: Fatal error: Index out of range")
        #expect(tail.text.hasPrefix("Swift/Array.swift:123: Fatal error: Index out of range\n...\n"))
        #expect(tail.text.hasSuffix("frame 199 of a long report\n"))
    }

    @Test func aLineSplitAcrossReadsIsFound() {
        var tail = StderrTail(limit: 1024)
        tail.append(Array("x.swift:1: Fatal er".utf8))
        #expect(tail.fatalLine == nil)
        tail.append(Array("ror: boom\n".utf8))
        #expect(tail.fatalLine == "x.swift:1: Fatal error: boom")
    }

    @Test func aFatalLineCutAfterItsMarkerIsKeptWhole() {
        var tail = StderrTail(limit: 256)
        tail.append(Array("x.swift:1: Fatal error: Index out".utf8))
        #expect(tail.fatalLine == nil)  // Not yet whole.
        tail.append(Array(" of range\n".utf8))
        #expect(tail.fatalLine == "x.swift:1: Fatal error: Index out of range")
        for i in 0..<200 { tail.append(Array("frame \(i) of a long report\n".utf8)) }
        #expect(tail.text.hasPrefix("x.swift:1: Fatal error: Index out of range\n...\n"))
    }

    @Test func aFatalLineTheChildDiedWritingIsTakenAsItStands() {
        var tail = StderrTail(limit: 256)
        tail.append(Array("x.swift:1: Fatal error: boo".utf8))
        #expect(tail.text == "x.swift:1: Fatal error: boo")
    }

    @Test func theErrorSaysHowTheChildEndedAndWhatItWasDoing() {
        var report = DeathReport(pid: 42, status: .signaled(9), lastStderr: "last words", served: true)
        var error = report.error(function: "square")
        #expect(error.code == .workerCrashed && error.pid == 42 && error.exitStatus == .signaled(9))
        #expect(
            error.message
                == "the child process 42 ended (killed by signal 9 (SIGKILL)) before answering a call of \"square\"")
        #expect(error.lastStderr == "last words" && error.function == "square")

        report.served = false
        error = report.error(function: nil)
        #expect(error.message.contains("it never started serving: does its main call Crew.bootstrap"))

        report.protocolError = "a frame of an unknown kind"
        error = report.error(function: "square")
        #expect(error.code == .protocolError && error.message.contains("a frame of an unknown kind"))
    }
}
