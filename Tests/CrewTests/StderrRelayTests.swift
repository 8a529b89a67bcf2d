import Synchronization
import Testing

@testable import Crew

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A child's standard error is copied through and its tail kept; a full destination drops (and says so) rather
/// than blocking the I/O thread.
@Suite struct StderrRelayTests {
    func pipe() -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        #expect(Glibc.pipe(&fds) == 0)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        return (fds[0], fds[1])
    }

    func write(_ text: String, to fd: Int32) {
        var text = text
        text.withUTF8 { raw in _ = Glibc.write(fd, raw.baseAddress, raw.count) }
    }

    func drain(_ fd: Int32) -> String {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            out += chunk[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    @Test func copiesThroughKeepsTheTailAndEndsWithThePipe() {
        let child = pipe()
        let ours = pipe()
        var relay = StderrRelay(fd: child.read, pid: 42, tailBytes: 256, destination: ours.write)
        write("Fatal error: out of range\nmore\n", to: child.write)
        let read1 = relay.readAvailable()
        #expect(read1)
        #expect(drain(ours.read) == "Fatal error: out of range\nmore\n")
        #expect(relay.tail.text.contains("Fatal error: out of range"))
        close(child.write)
        let read2 = relay.readAvailable()
        #expect(!read2)
        relay.close()
        #expect(!relay.isOpen)
        close(ours.read)
        close(ours.write)
    }

    @Test func withALineHandlerLinesGoThereWholeAndNothingIsCopied() {
        let child = pipe()
        let ours = pipe()
        let lines = Mutex<[String]>([])
        var relay = StderrRelay(
            fd: child.read, pid: 42, tailBytes: 256, destination: ours.write,
            lines: { line in lines.withLock { $0.append(line) } })
        // A line in two reads, a whole one, and a last one without its newline.
        write("first ha", to: child.write)
        _ = relay.readAvailable()
        #expect(lines.withLock { $0 }.isEmpty)
        write("lf\nsecond\nlast", to: child.write)
        _ = relay.readAvailable()
        #expect(lines.withLock { $0 } == ["first half", "second"])
        #expect(relay.tail.text.contains("second"))
        // A line longer than the limit comes in pieces, none lost; a last line without a newline comes at close.
        write(String(repeating: "x", count: StderrRelay.longestLine + 10) + "\n", to: child.write)
        _ = relay.readAvailable()
        close(child.write)
        _ = relay.readAvailable()
        relay.close()
        let all = lines.withLock { $0 }
        #expect(all.count == 4 && all[2] == "last" + String(repeating: "x", count: StderrRelay.longestLine - 4))
        #expect(all.count == 4 && all[3] == String(repeating: "x", count: 14))
        #expect(drain(ours.read) == "")
        close(ours.read)
        close(ours.write)
    }

    @Test func aFullDestinationDropsAndSaysSoWithoutBlocking() {
        let child = pipe()
        let ours = pipe()
        // Fill our side: nothing more can be written to it.
        let filler = [UInt8](repeating: 46, count: 1 << 20)
        var filled = 0
        while true {
            let n = filler.withUnsafeBytes { Glibc.write(ours.write, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            filled += n
        }
        var relay = StderrRelay(fd: child.read, pid: 42, tailBytes: 256, destination: ours.write)
        write("lost line\n", to: child.write)
        let read3 = relay.readAvailable()
        #expect(read3)
        #expect(relay.tail.text == "lost line\n")
        _ = drain(ours.read)
        write("next line\n", to: child.write)
        let read4 = relay.readAvailable()
        #expect(read4)
        #expect(
            drain(ours.read)
                == "next line\n[crew: 10 bytes of child 42's standard error were dropped: ours was not writable]\n")
        relay.close()
        for fd in [child.write, ours.read, ours.write] { close(fd) }
    }
}
