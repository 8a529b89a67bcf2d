import CCrewShims
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// The parent's side of one child process: its socket, its standard error pipe and its pidfd.
//
// Callers write calls from their own thread (one `send` carries every frame queued meanwhile). The reactor
// thread reads results and completes the calls, copies the child's standard error through to ours while
// keeping its tail, and learns of the child's death from its pidfd (never by polling). When the child dies,
// the output it wrote before dying is read first; then every call still pending fails with a `CrewError`
// that says how the child ended and what it last wrote to standard error.

/// The outcome of one call: the encoded result, or why there is none.
typealias CallCompletion = @Sendable (Result<[UInt8], CrewError>) -> Void

final class ChildConnection: ReactorSource, @unchecked Sendable {
    // @unchecked Sendable: `state` is behind a mutex; `reader`, `stderrTail`, the cookies and the open flags
    // are used only on the reactor thread.

    static let socketTag: UInt8 = 0
    static let stderrTag: UInt8 = 1
    static let pidfdTag: UInt8 = 2

    /// How long a child that closed its socket may take to exit before it is killed.
    static let exitGraceNanoseconds: UInt64 = 2_000_000_000

    let pid: Int32
    let mode: ChildMarker.Mode
    private let socket: Int32
    private let stderrPipe: Int32
    private let pidfd: Int32
    private let maxFrameSize: Int
    private let tailLimit: Int
    private let logger: Logger

    private let nextID = Atomic<UInt64>(1)
    /// Completed once with how the child ended.
    let exited = Completion<Crew.ExitStatus>()

    private struct State {
        var pending: [UInt64: (function: String, completion: CallCompletion)] = [:]
        var out: [UInt8] = []
        /// Someone (a caller or the reactor) is sending `out`; the socket stays open while this is true.
        var writing = false
        var socketClosed = false
        var closeSocketWhenIdle = false
        var pidfdClosed = false
        /// Set when the child is gone: every later call fails with it.
        var failure: CrewError?
        var exitStatus: Crew.ExitStatus?
        var helloSeen = false
    }

    private let state = Mutex(State())

    // Reactor thread only.
    private var reader: FrameReader
    private var stderrTail: [UInt8] = []
    /// The first line that starts with "Fatal error" (what Swift prints when it traps), kept even after a long
    /// crash report has pushed it out of the tail.
    private var fatalLine: String?
    private var socketCookie: UInt64 = 0
    private var stderrCookie: UInt64 = 0
    private var pidfdCookie: UInt64 = 0
    private var watchingWritable = false
    private var socketEOF = false
    private var stderrOpen = true
    private var finalized = false
    private var protocolErrorMessage: String?
    private var graceTimer: UInt64?
    /// Keeps the connection alive while the reactor watches it, whoever else lets go of it.
    private var selfReference: ChildConnection?

    private init(
        pid: Int32,
        mode: ChildMarker.Mode,
        socket: Int32,
        stderrPipe: Int32,
        pidfd: Int32,
        options: Crew.Options
    ) {
        self.pid = pid
        self.mode = mode
        self.socket = socket
        self.stderrPipe = stderrPipe
        self.pidfd = pidfd
        self.maxFrameSize = options.maxFrameSize
        self.tailLimit = max(256, options.stderrTailBytes)
        self.logger = options.logger
        self.reader = FrameReader(maxFrameSize: options.maxFrameSize)
    }

    // MARK: Starting a child

    /// Starts a child process running `crew.options.executable` and connects to it.
    static func spawn(crew: Crew, mode: ChildMarker.Mode) throws -> ChildConnection {
        try Reactor.shared.sync { try spawnOnReactorThread(crew: crew, mode: mode) }
    }

    private static func spawnOnReactorThread(crew: Crew, mode: ChildMarker.Mode) throws -> ChildConnection {
        let options = crew.options
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw systemCallError("socketpair")
        }
        var errPipe: [Int32] = [-1, -1]
        guard crew_pipe_cloexec(&errPipe) == 0 else {
            let error = systemCallError("pipe2")
            close(pair[0])
            close(pair[1])
            throw error
        }
        let childFD: Int32 = 3
        let marker = ChildMarker(fd: childFD, parentPID: getpid(), mode: mode, maxFrameSize: options.maxFrameSize)
        let arguments = options.arguments ?? CommandLine.arguments
        let environment = childEnvironment(marker: marker, extra: options.environment)

        // Whatever this process has buffered for standard output goes out before the child can write.
        fflush(nil)
        var pid: pid_t = 0
        let rc = withCStrings(arguments) { argv in
            withCStrings(environment) { envp in
                let fds: [Int32] = [-1, 1, errPipe[1], pair[1]]
                return fds.withUnsafeBufferPointer { fdBuffer in
                    crew_spawn(options.executable, argv, envp, fdBuffer.baseAddress, Int32(fds.count), &pid)
                }
            }
        }
        close(pair[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(pair[0])
            close(errPipe[0])
            let text = strerror(rc).map { String(cString: $0) } ?? "errno \(rc)"
            throw CrewError(.spawnFailed, "could not start \(options.executable): \(text) (errno \(rc))")
        }
        let pidfd = crew_pidfd_open(pid)
        if pidfd < 0 {
            let error = systemCallError("pidfd_open")
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            close(pair[0])
            close(errPipe[0])
            throw error
        }
        setNonBlocking(pair[0])
        setNonBlocking(errPipe[0])
        let connection = ChildConnection(
            pid: pid,
            mode: mode,
            socket: pair[0],
            stderrPipe: errPipe[0],
            pidfd: pidfd,
            options: options
        )
        connection.attach()
        options.logger.debug("started child", metadata: ["crew.pid": "\(pid)", "crew.mode": "\(mode)"])
        return connection
    }

    /// This process's environment, without any marker of its own, plus the child's marker and `extra`.
    private static func childEnvironment(marker: ChildMarker, extra: [String: String]) -> [String] {
        var result: [String] = []
        var overridden = Set(extra.keys)
        overridden.insert(ChildMarker.variable)
        var entry = environ
        while let pointer = entry.pointee {
            let item = String(cString: pointer)
            let name = item.split(separator: "=", maxSplits: 1).first.map(String.init) ?? item
            if !overridden.contains(name) { result.append(item) }
            entry += 1
        }
        for (name, value) in extra.sorted(by: { $0.key < $1.key }) { result.append("\(name)=\(value)") }
        result.append("\(ChildMarker.variable)=\(marker.encoded)")
        return result
    }

    private func attach() {
        let reactor = Reactor.shared
        selfReference = self
        socketCookie = reactor.register(
            fd: socket,
            events: UInt32(CREW_EPOLLIN | CREW_EPOLLRDHUP),
            source: self,
            tag: Self.socketTag
        )
        stderrCookie = reactor.register(fd: stderrPipe, events: CREW_EPOLLIN, source: self, tag: Self.stderrTag)
        pidfdCookie = reactor.register(fd: pidfd, events: CREW_EPOLLIN, source: self, tag: Self.pidfdTag)
    }

    // MARK: Calls

    /// Sends a call of `function` with arguments written by `encodeArguments`; `completion` runs once with the
    /// result, on the reactor thread (keep it short) or on the calling thread if the call fails at once.
    func call(
        _ function: String,
        encodeArguments: (inout [UInt8]) throws -> Void,
        completion: @escaping CallCompletion
    ) {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        var frame: [UInt8] = []
        do {
            try Message.appendCall(
                id: id,
                function: function,
                to: &frame,
                maxFrameSize: maxFrameSize,
                arguments: encodeArguments
            )
        } catch var error as CrewError {
            error.function = function
            completion(.failure(error))
            return
        } catch {
            completion(.failure(CrewError(.encodingFailed, "the arguments did not encode: \(error)", function: function)))
            return
        }
        if var error = enqueue(frame, pending: (id, function, completion)) {
            error.function = function
            completion(.failure(error))
        }
    }

    /// Asks the child to finish its calls and exit.
    func shutdown() {
        var frame: [UInt8] = []
        Message.appendShutdown(to: &frame)
        _ = enqueue(frame, pending: nil)
    }

    /// Sends `bytes` as they are (tests use it to check how a child treats bytes that are not the protocol).
    func sendRaw(_ bytes: [UInt8]) {
        _ = enqueue(bytes, pending: nil)
    }

    /// Queues `frame` (registering the call it carries) and sends it, unless the child is gone.
    private func enqueue(
        _ frame: [UInt8],
        pending: (id: UInt64, function: String, completion: CallCompletion)?
    ) -> CrewError? {
        var toSend: [UInt8]?
        let failure: CrewError? = state.withLock { state in
            if let error = state.failure { return error }
            if let pending { state.pending[pending.id] = (pending.function, pending.completion) }
            if state.writing {
                state.out.append(contentsOf: frame)
            } else if state.out.isEmpty {
                state.writing = true
                toSend = frame
            } else {
                state.out.append(contentsOf: frame)
                state.writing = true
                toSend = state.out
                state.out = []
            }
            return nil
        }
        if failure != nil { return failure }
        if var bytes = toSend { sendFromCaller(&bytes) }
        return nil
    }

    /// Sends `bytes` and then whatever else was queued meanwhile, holding the writing token; if the socket is
    /// full, hands the rest to the reactor.
    private func sendFromCaller(_ bytes: inout [UInt8]) {
        while true {
            let outcome = sendSome(&bytes)
            switch outcome {
            case .done:
                let more: [UInt8]? = state.withLock { state in
                    if state.out.isEmpty {
                        releaseWritingToken(&state)
                        return nil
                    }
                    defer { state.out = [] }
                    return state.out
                }
                guard let more else { return }
                bytes = more
            case .wouldBlock:
                state.withLock { state in state.out.insert(contentsOf: bytes, at: 0) }
                Reactor.shared.submit { [self] in watchWritable() }
                return
            case .broken:
                state.withLock { state in
                    state.out.removeAll()
                    releaseWritingToken(&state)
                }
                return
            }
        }
    }

    private enum SendOutcome {
        case done, wouldBlock, broken
    }

    /// Sends as much of `bytes` as the socket takes, removing what was sent.
    private func sendSome(_ bytes: inout [UInt8]) -> SendOutcome {
        var written = 0
        defer { if written > 0 { bytes.removeFirst(written) } }
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                send(socket, raw.baseAddress! + written, raw.count - written, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if n > 0 {
                written += n
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && errno == EAGAIN {
                return .wouldBlock
            } else {
                // EPIPE or ECONNRESET: the child is gone; its pidfd will say how.
                return .broken
            }
        }
        return .done
    }

    private func releaseWritingToken(_ state: inout State) {
        state.writing = false
        if state.closeSocketWhenIdle && !state.socketClosed {
            state.socketClosed = true
            close(socket)
        }
    }

    // MARK: Signals and status

    /// Sends `signal` to the child, unless it has already been reaped. Returns false if it was.
    @discardableResult
    func signal(_ signal: Int32) -> Bool {
        state.withLock { state in
            guard !state.pidfdClosed else { return false }
            return crew_pidfd_send_signal(pidfd, signal) == 0
        }
    }

    /// True until the child has exited (a child that exited but is not yet reaped counts as exited).
    var isAlive: Bool {
        state.withLock { state in
            guard !state.pidfdClosed, state.exitStatus == nil else { return false }
            var code: Int32 = 0
            var status: Int32 = 0
            return crew_waitid_pidfd(pidfd, 1, 1, &code, &status) == 0
        }
    }

    /// The last bytes the child wrote to standard error, as text, cut at a line start, with Swift's
    /// `Fatal error: ...` line first if the tail no longer holds it.
    private func tailText() -> String {
        var bytes = stderrTail[...]
        if bytes.count >= tailLimit, let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) {
            bytes = bytes[(newline + 1)...]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        if let fatalLine, !text.contains(fatalLine) { return fatalLine + "\n...\n" + text }
        return text
    }

    private static func fatalErrorLine(in bytes: [UInt8]) -> String? {
        let marker = Array("Fatal error".utf8)
        guard bytes.count >= marker.count else { return nil }
        var i = 0
        while i <= bytes.count - marker.count {
            if bytes[i] == marker[0] && bytes[i..<i + marker.count].elementsEqual(marker) {
                var start = i
                while start > 0 && bytes[start - 1] != UInt8(ascii: "\n") { start -= 1 }
                let end = bytes[i...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
                return String(decoding: bytes[start..<end], as: UTF8.self)
            }
            i += 1
        }
        return nil
    }

    // MARK: Reactor events

    func handle(events: UInt32, tag: UInt8) {
        switch tag {
        case Self.socketTag:
            if events & UInt32(CREW_EPOLLOUT) != 0 { flushFromReactor() }
            if events & UInt32(CREW_EPOLLIN | CREW_EPOLLHUP | CREW_EPOLLRDHUP | CREW_EPOLLERR) != 0 {
                readSocket()
            }
        case Self.stderrTag:
            readStderr()
        default:
            reap()
        }
    }

    private func watchWritable() {
        guard !finalized, !socketEOF, !watchingWritable else { return }
        watchingWritable = true
        Reactor.shared.modify(
            fd: socket,
            cookie: socketCookie,
            events: UInt32(CREW_EPOLLIN | CREW_EPOLLRDHUP | CREW_EPOLLOUT)
        )
        // It may have drained in the meantime.
        flushFromReactor()
    }

    /// Sends queued output while the reactor holds the writing token.
    private func flushFromReactor() {
        var bytes: [UInt8] = state.withLock { state in
            defer { state.out = [] }
            return state.out
        }
        let outcome = bytes.isEmpty ? .done : sendSome(&bytes)
        let finished: Bool = state.withLock { state in
            switch outcome {
            case .wouldBlock:
                state.out.insert(contentsOf: bytes, at: 0)
                return false
            case .broken:
                state.out.removeAll()
                releaseWritingToken(&state)
                return true
            case .done:
                if !state.out.isEmpty { return false }
                releaseWritingToken(&state)
                return true
            }
        }
        if finished && watchingWritable && !socketEOF {
            watchingWritable = false
            Reactor.shared.modify(fd: socket, cookie: socketCookie, events: UInt32(CREW_EPOLLIN | CREW_EPOLLRDHUP))
        } else if !finished && !watchingWritable {
            watchWritable()
        }
    }

    /// Reads everything the socket has and completes the calls it answers.
    private func readSocket() {
        guard !socketEOF else { return }
        while true {
            let n = reader.read(from: socket)
            if n > 0 {
                handleFrames()
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN { return }
            // End of stream (or a reset): the child is exiting or gone.
            socketEOF = true
            Reactor.shared.unregister(fd: socket, cookie: socketCookie)
            state.withLock { state in
                state.closeSocketWhenIdle = true
                if !state.writing && !state.socketClosed {
                    state.socketClosed = true
                    close(socket)
                }
            }
            if !finalized {
                graceTimer = Reactor.shared.schedule(afterNanoseconds: Self.exitGraceNanoseconds) { [self] in
                    graceTimer = nil
                    if !finalized {
                        logger.notice("child closed its socket but did not exit; killing it", metadata: ["crew.pid": "\(pid)"])
                        signal(SIGKILL)
                    }
                }
            }
            return
        }
    }

    private func handleFrames() {
        var finished: [(CallCompletion, Result<[UInt8], CrewError>)] = []
        do {
            while let payload = try reader.next() {
                switch try Message.parseParentBound(reader.buffer, payload) {
                case .hello(_, let version):
                    guard version == wireProtocolVersion else {
                        throw CrewError(.protocolError, "the child speaks protocol version \(version), not \(wireProtocolVersion)")
                    }
                    state.withLock { $0.helloSeen = true }
                case .result(let id, let range):
                    if let pending = state.withLock({ $0.pending.removeValue(forKey: id) }) {
                        finished.append((pending.completion, .success(Array(reader.buffer[range]))))
                    }
                case .failure(let id, let failure):
                    if let pending = state.withLock({ $0.pending.removeValue(forKey: id) }) {
                        finished.append((pending.completion, .failure(failure.error(function: pending.function, pid: pid))))
                    }
                case .protocolError(let message):
                    protocolErrorMessage = message
                }
            }
        } catch {
            // The child sent bytes that are not our protocol: it cannot be trusted to answer. Kill it; its death
            // fails the pending calls with this message.
            protocolErrorMessage = (error as? CrewError)?.message ?? "\(error)"
            signal(SIGKILL)
        }
        for (completion, result) in finished { completion(result) }
    }

    private func readStderr() {
        guard stderrOpen else { return }
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(stderrPipe, $0.baseAddress!, $0.count) }
            if n > 0 {
                chunk.withUnsafeBytes { _ = writeAll(2, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                stderrTail.append(contentsOf: chunk[0..<n])
                if fatalLine == nil { fatalLine = Self.fatalErrorLine(in: stderrTail) }
                if stderrTail.count > tailLimit { stderrTail.removeFirst(stderrTail.count - tailLimit) }
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN { return }
            stderrOpen = false
            Reactor.shared.unregister(fd: stderrPipe, cookie: stderrCookie)
            close(stderrPipe)
            return
        }
    }

    /// The pidfd is readable: the child has exited. Collect its status and its last words, then fail what is
    /// still pending.
    private func reap() {
        guard !finalized else { return }
        var code: Int32 = 0
        var status: Int32 = 0
        let rc = crew_waitid_pidfd(pidfd, 1, 0, &code, &status)
        if rc == 0 { return }  // Not exited yet (a spurious wake-up).
        let exitStatus: Crew.ExitStatus
        if rc < 0 {
            // ECHILD: someone else reaped it (SIGCHLD ignored, or a waitpid(-1) elsewhere).
            exitStatus = .exited(-1)
        } else if code == CLD_EXITED {
            exitStatus = .exited(status)
        } else {
            exitStatus = .signaled(status)
        }
        finalized = true
        if let graceTimer { Reactor.shared.cancelTimer(graceTimer) }
        readSocket()
        readStderr()
        if !socketEOF {
            socketEOF = true
            Reactor.shared.unregister(fd: socket, cookie: socketCookie)
        }
        if stderrOpen {
            stderrOpen = false
            Reactor.shared.unregister(fd: stderrPipe, cookie: stderrCookie)
            close(stderrPipe)
        }
        Reactor.shared.unregister(fd: pidfd, cookie: pidfdCookie)

        let tail = tailText()
        let (pending, helloSeen): ([(function: String, completion: CallCompletion)], Bool) = state.withLock { state in
            state.exitStatus = exitStatus
            state.pidfdClosed = true
            close(pidfd)
            state.closeSocketWhenIdle = true
            if !state.writing && !state.socketClosed {
                state.socketClosed = true
                close(socket)
            }
            state.failure = deathError(exitStatus, tail: tail, function: nil, helloSeen: state.helloSeen)
            defer { state.pending.removeAll() }
            return (Array(state.pending.values), state.helloSeen)
        }
        if exitStatus.isSuccess {
            logger.debug("child exited", metadata: ["crew.pid": "\(pid)"])
        } else {
            logger.notice("child ended: \(exitStatus)", metadata: ["crew.pid": "\(pid)"])
        }
        for call in pending {
            call.completion(.failure(deathError(exitStatus, tail: tail, function: call.function, helloSeen: helloSeen)))
        }
        exited.complete(exitStatus)
        selfReference = nil
    }

    private func deathError(_ status: Crew.ExitStatus, tail: String, function: String?, helloSeen: Bool) -> CrewError {
        if let protocolErrorMessage {
            return CrewError(
                .protocolError,
                "the connection to the child broke: \(protocolErrorMessage)",
                pid: pid,
                exitStatus: status,
                lastStderr: tail,
                function: function
            )
        }
        var message = "the child process \(pid) ended (\(status))"
        if let function { message += " before answering a call of \"\(function)\"" }
        if !helloSeen {
            message += "; it never started serving: does its main call Crew.bootstrap before anything else?"
        }
        return CrewError(.workerCrashed, message, pid: pid, exitStatus: status, lastStderr: tail, function: function)
    }
}

/// Calls `body` with a NULL-terminated C array of the strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
