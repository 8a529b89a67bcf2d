// The messages between a parent and a child, one per frame. The first payload byte is the kind.
//
//   parent → child   call      varint id, varint name length, name, encoded arguments (the rest)
//                    chunk     as call, with an encoded [Arguments]; the result is an encoded [Result]
//                    shutdown  (nothing): finish the calls in flight, then exit 0
//   child → parent   hello     varint pid, varint protocol version
//                    result    varint id, encoded result (the rest)
//                    failure   varint id, varint kind, varint type length, type, message (the rest); for the kind
//                              `threwDeclared`: varint message length, message, the error's encoding (the rest)
//                    protocolError  message (the rest): the child read bytes it could not parse, and exits

enum MessageKind {
    static let call: UInt8 = 1
    static let shutdown: UInt8 = 2
    static let chunk: UInt8 = 3
    static let hello: UInt8 = 16
    static let result: UInt8 = 17
    static let failure: UInt8 = 18
    static let protocolError: UInt8 = 19
}

/// The version of this protocol; a child started from a different build refuses to serve.
let wireProtocolVersion: UInt64 = 1

/// Why a call failed in the child.
struct RemoteFailure: Equatable {
    enum Kind: UInt64 {
        case threw = 1
        case unknownFunction, decodingFailed, encodingFailed, frameTooLarge
        /// The function threw an error of a type it declared (`Crew.Function.throwing`): `value` is its encoding.
        case threwDeclared
    }

    var kind: Kind
    var type: String
    var message: String
    /// The encoded error, for `threwDeclared`.
    var value: [UInt8] = []

    func error(function: String?, pid: Int32?) -> CrewError {
        switch kind {
        case .threw:
            CrewError(.remoteError, "\(type): \(message)", pid: pid, remoteErrorType: type, function: function)
        case .threwDeclared:
            Self.declared(type: type, message: message, value: value, function: function, pid: pid)
        case .unknownFunction:
            CrewError(.unknownFunction, message, pid: pid, function: function)
        case .decodingFailed:
            CrewError(.decodingFailed, message, pid: pid, function: function)
        case .encodingFailed:
            CrewError(.encodingFailed, message, pid: pid, function: function)
        case .frameTooLarge:
            CrewError(.frameTooLarge, message, pid: pid, function: function)
        }
    }
}

extension RemoteFailure {
    /// A `remoteError` whose ``CrewError/thrown`` is the declared error decoded; if it does not decode (a child of
    /// another build), the error says so and keeps the child's description.
    static func declared(type: String, message: String, value: [UInt8], function: String?, pid: Int32?) -> CrewError {
        var error = CrewError(
            .remoteError, "\(type): \(message)", pid: pid, remoteErrorType: type, function: function)
        guard let codec = DeclaredErrors.codec(named: type) else {
            error.message += " (\(type) is not declared by this program's functions, so it stays a CrewError)"
            return error
        }
        do {
            error.thrown = try codec.decode(value)
        } catch {
            return CrewError(
                .decodingFailed, "the function threw a \(type) (\(message)) that did not decode here: \(error)",
                pid: pid, remoteErrorType: type, function: function)
        }
        return error
    }
}

/// A message a child reads.
enum ChildBound: Equatable {
    case call(id: UInt64, function: String, arguments: Range<Int>, chunk: Bool)
    case shutdown
}

/// A message a parent reads.
enum ParentBound: Equatable {
    case hello(pid: Int32, version: UInt64)
    case result(id: UInt64, value: Range<Int>)
    case failure(id: UInt64, RemoteFailure)
    case protocolError(String)
}

enum Message {
    // MARK: Writing

    static func appendCall(
        id: UInt64,
        function: String,
        chunk: Bool = false,
        to out: inout [UInt8],
        maxFrameSize: Int,
        arguments: (inout [UInt8]) throws -> Void
    ) throws {
        let at = Frame.begin(&out)
        out.append(chunk ? MessageKind.chunk : MessageKind.call)
        out.appendVarint(id)
        appendString(function, to: &out)
        do {
            try arguments(&out)
        } catch {
            out.removeSubrange(at...)
            throw error
        }
        try Frame.end(&out, at: at, maxFrameSize: maxFrameSize)
    }

    static func appendShutdown(to out: inout [UInt8]) {
        let at = Frame.begin(&out)
        out.append(MessageKind.shutdown)
        try! Frame.end(&out, at: at, maxFrameSize: .max)
    }

    static func appendHello(pid: Int32, to out: inout [UInt8]) {
        let at = Frame.begin(&out)
        out.append(MessageKind.hello)
        out.appendVarint(UInt64(UInt32(bitPattern: pid)))
        out.appendVarint(wireProtocolVersion)
        try! Frame.end(&out, at: at, maxFrameSize: .max)
    }

    /// Begins a result frame; the caller appends the encoded value and calls `Frame.end`.
    static func beginResult(id: UInt64, to out: inout [UInt8]) -> Int {
        let at = Frame.begin(&out)
        out.append(MessageKind.result)
        out.appendVarint(id)
        return at
    }

    static func appendFailure(id: UInt64, _ failure: RemoteFailure, to out: inout [UInt8]) {
        let at = Frame.begin(&out)
        out.append(MessageKind.failure)
        out.appendVarint(id)
        out.appendVarint(failure.kind.rawValue)
        appendString(String(decoding: failure.type.utf8.prefix(1024), as: UTF8.self), to: &out)
        // Error descriptions can be long; keep a failure well inside any frame limit.
        // (Cut at 64 KiB; a character cut in two is replaced, not the whole message dropped.)
        let message = String(decoding: failure.message.utf8.prefix(64 << 10), as: UTF8.self)
        if failure.kind == .threwDeclared {
            appendString(message, to: &out)
            out.append(contentsOf: failure.value)
        } else {
            out.append(contentsOf: message.utf8)
        }
        try! Frame.end(&out, at: at, maxFrameSize: .max)
    }

    static func appendProtocolError(_ message: String, to out: inout [UInt8]) {
        let at = Frame.begin(&out)
        out.append(MessageKind.protocolError)
        out.append(contentsOf: message.utf8.prefix(4096))
        try! Frame.end(&out, at: at, maxFrameSize: .max)
    }

    private static func appendString(_ string: String, to out: inout [UInt8]) {
        var copy = string
        copy.withUTF8 { utf8 in
            out.appendVarint(UInt64(utf8.count))
            out.append(contentsOf: utf8)
        }
    }

    // MARK: Reading

    private static func malformed(_ what: String) -> CrewError {
        CrewError(.protocolError, "malformed message: \(what)")
    }

    private static func string(_ reader: ByteReader, _ i: inout Int, end: Int) throws(CrewError) -> String {
        let n: Int
        do {
            n = try reader.length(&i, end: end)
        } catch {
            throw malformed(error.message)
        }
        let decoded = reader.bytes.withUnsafeBufferPointer {
            String(validating: UnsafeBufferPointer(rebasing: $0[i..<i + n]), as: UTF8.self)
        }
        guard let decoded else { throw malformed("a name is not UTF-8") }
        i += n
        return decoded
    }

    private static func varint(_ reader: ByteReader, _ i: inout Int, end: Int) throws(CrewError) -> UInt64 {
        do {
            return try reader.varint(&i, end: end)
        } catch {
            throw malformed(error.message)
        }
    }

    static func parseChildBound(_ bytes: [UInt8], _ payload: Range<Int>) throws(CrewError) -> ChildBound {
        guard !payload.isEmpty else { throw malformed("empty frame") }
        let reader = ByteReader(bytes: bytes)
        var i = payload.lowerBound + 1
        switch bytes[payload.lowerBound] {
        case MessageKind.call, MessageKind.chunk:
            let id = try varint(reader, &i, end: payload.upperBound)
            let name = try string(reader, &i, end: payload.upperBound)
            return .call(
                id: id,
                function: name,
                arguments: i..<payload.upperBound,
                chunk: bytes[payload.lowerBound] == MessageKind.chunk
            )
        case MessageKind.shutdown:
            return .shutdown
        case let kind:
            throw malformed("unknown message kind \(kind) for a child")
        }
    }

    static func parseParentBound(_ bytes: [UInt8], _ payload: Range<Int>) throws(CrewError) -> ParentBound {
        guard !payload.isEmpty else { throw malformed("empty frame") }
        let reader = ByteReader(bytes: bytes)
        var i = payload.lowerBound + 1
        let end = payload.upperBound
        switch bytes[payload.lowerBound] {
        case MessageKind.hello:
            let pid = try varint(reader, &i, end: end)
            let version = try varint(reader, &i, end: end)
            guard pid <= UInt64(Int32.max) else { throw malformed("pid out of range") }
            return .hello(pid: Int32(pid), version: version)
        case MessageKind.result:
            let id = try varint(reader, &i, end: end)
            return .result(id: id, value: i..<end)
        case MessageKind.failure:
            let id = try varint(reader, &i, end: end)
            guard let kind = RemoteFailure.Kind(rawValue: try varint(reader, &i, end: end)) else {
                throw malformed("unknown failure kind")
            }
            let type = try string(reader, &i, end: end)
            if kind == .threwDeclared {
                let message = try string(reader, &i, end: end)
                return .failure(
                    id: id, RemoteFailure(kind: kind, type: type, message: message, value: Array(bytes[i..<end])))
            }
            let message = String(decoding: bytes[i..<end], as: UTF8.self)
            return .failure(id: id, RemoteFailure(kind: kind, type: type, message: message))
        case MessageKind.protocolError:
            return .protocolError(String(decoding: bytes[i..<end], as: UTF8.self))
        case let kind:
            throw malformed("unknown message kind \(kind) for a parent")
        }
    }
}
