import CrewTestHelpers
import Testing

@testable import Crew

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct FrameTests {
    func frame(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        let at = Frame.begin(&out)
        out.append(contentsOf: payload)
        try! Frame.end(&out, at: at, maxFrameSize: .max)
        return out
    }

    @Test func framesSplitAtEveryByteReassemble() throws {
        let payloads: [[UInt8]] = [[1], [], [2, 3, 4], Array(repeating: 9, count: 300)]
        let stream = payloads.flatMap(frame)
        var reader = FrameReader(maxFrameSize: 1024, initialCapacity: 8)
        var seen: [[UInt8]] = []
        for byte in stream {
            reader.append([byte])
            while let range = try reader.next() { seen.append(Array(reader.buffer[range])) }
        }
        #expect(seen == payloads)
        #expect(reader.buffered == 0)
    }

    @Test func manyFramesInOneRead() throws {
        let payloads = (0..<100).map { [UInt8](repeating: UInt8($0), count: $0) }
        var reader = FrameReader(maxFrameSize: 1024)
        reader.append(payloads.flatMap(frame))
        var seen: [[UInt8]] = []
        while let range = try reader.next() { seen.append(Array(reader.buffer[range])) }
        #expect(seen == payloads)
    }

    @Test func anOversizedHeaderIsATypedError() {
        var reader = FrameReader(maxFrameSize: 100)
        reader.append([101, 0, 0, 0])
        #expect { try reader.next() } throws: { ($0 as? CrewError)?.code == .frameTooLarge }
    }

    @Test func aTruncatedFrameWaitsForMore() throws {
        var reader = FrameReader(maxFrameSize: 100)
        reader.append([5, 0, 0, 0, 1, 2])
        #expect(try reader.next() == nil)
        reader.append([3, 4, 5])
        let range = try #require(try reader.next())
        #expect(Array(reader.buffer[range]) == [1, 2, 3, 4, 5])
    }

    @Test func writingAFrameOverTheLimitLeavesTheBufferAsItWas() {
        var out: [UInt8] = [7, 7]
        let at = Frame.begin(&out)
        out.append(contentsOf: [UInt8](repeating: 0, count: 11))
        #expect { try Frame.end(&out, at: at, maxFrameSize: 10) } throws: { ($0 as? CrewError)?.code == .frameTooLarge }
        #expect(out == [7, 7])
    }

    @Test func framesThroughASocketInOneWrite() throws {
        var pair: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer {
            close(pair[0])
            close(pair[1])
        }
        var out: [UInt8] = []
        for i in 0..<1000 {
            let at = Frame.begin(&out)
            out.append(contentsOf: [UInt8(i & 0xFF), UInt8(i >> 8)])
            try Frame.end(&out, at: at, maxFrameSize: 16)
        }
        #expect(out.withUnsafeBytes { write(pair[0], $0.baseAddress, $0.count) } == out.count)
        var reader = FrameReader(maxFrameSize: 16, initialCapacity: 64)
        var count = 0
        while count < 1000 {
            #expect(reader.read(from: pair[1]) > 0)
            while let range = try reader.next() {
                #expect(Array(reader.buffer[range]) == [UInt8(count & 0xFF), UInt8(count >> 8)])
                count += 1
            }
        }
    }

    @Test func messagesRoundTrip() throws {
        var out: [UInt8] = []
        try Message.appendCall(id: 300, function: "square", to: &out, maxFrameSize: 1024) {
            $0.append(contentsOf: [9, 9])
        }
        Message.appendShutdown(to: &out)
        var reader = FrameReader(maxFrameSize: 1024)
        reader.append(out)
        var range = try #require(try reader.next())
        #expect(
            try Message.parseChildBound(reader.buffer, range)
                == .call(
                    id: 300, function: "square", arguments: (range.upperBound - 2)..<range.upperBound, chunk: false))
        range = try #require(try reader.next())
        #expect(try Message.parseChildBound(reader.buffer, range) == .shutdown)

        out = []
        Message.appendHello(pid: 1234, to: &out)
        let at = Message.beginResult(id: 7, to: &out)
        out.append(42)
        try Frame.end(&out, at: at, maxFrameSize: 100)
        let failure = RemoteFailure(kind: .threw, type: "My.Error", message: "went wrong")
        Message.appendFailure(id: 8, failure, to: &out)
        Message.appendProtocolError("bad bytes", to: &out)
        reader = FrameReader(maxFrameSize: 1024)
        reader.append(out)
        var messages: [ParentBound] = []
        while let r = try reader.next() { messages.append(try Message.parseParentBound(reader.buffer, r)) }
        #expect(messages.count == 4)
        #expect(messages[0] == .hello(pid: 1234, version: wireProtocolVersion))
        if case .result(let id, let value) = messages[1] {
            #expect(id == 7 && Array(reader.buffer[value]) == [42])
        } else {
            Issue.record("expected a result")
        }
        #expect(messages[2] == .failure(id: 8, failure))
        #expect(messages[3] == .protocolError("bad bytes"))
    }

    @Test(arguments: [
        [UInt8](),  // empty
        [99],  // unknown kind
        [1],  // call without an id
        [1, 0x80],  // truncated varint
        [1, 5, 200],  // name longer than the frame
        [1, 5, 2, 0xC3, 0x28],  // name not UTF-8
        [1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],  // id over 64 bits
    ])
    func malformedMessagesAreProtocolErrors(payload: [UInt8]) {
        #expect { try Message.parseChildBound(payload, 0..<payload.count) } throws: {
            ($0 as? CrewError)?.code == .protocolError
        }
    }

    @Test(arguments: [
        [UInt8](), [16], [16, 1], [18, 1, 99, 0], [18, 1, 1, 5], [17], [200],
    ])
    func malformedParentMessagesAreProtocolErrors(payload: [UInt8]) {
        #expect { try Message.parseParentBound(payload, 0..<payload.count) } throws: {
            ($0 as? CrewError)?.code == .protocolError
        }
    }

    @Test func childMarkersRoundTripAndRejectGarbage() {
        let marker = ChildMarker(fd: 3, parentPID: 42, mode: .worker, maxFrameSize: 1 << 20, spinNanoseconds: 50_000)
        #expect(ChildMarker(marker.encoded) == marker)
        for bad in [
            "", "1:3:42:w:10", "x:3:42:w:10:0", "1:-3:42:w:10:0", "1:3:42:q:10:0", "1:3:42:w:0:0",
            "1:3:42:w:10:0:extra",
            "1:3:42:w:10:99999999999",
        ] {
            #expect(ChildMarker(bad) == nil, "\(bad)")
        }
    }
}
