// Over 500 lines: the reading paths (reactor, reader thread, caller), the writing paths and the exit's handling
// share this connection's locks and buffers, so they stay in one type; each decision they take is the state
// machine's (ChildConnectionStateMachine.swift), and moving more of them there is what will shrink this file.

import CCrewShims
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// The parent's side of one child process: its socket, its standard error pipe and its pidfd. This is the I/O
// shell of `ChildConnectionStateMachine`, which decides who writes, when the socket closes, which calls an answer
// or a death completes, and when a child that closed its socket is killed: the shell reports events to it under
// one lock and performs the actions it returns outside that lock.
//
// Callers write calls from their own thread (one `send` carries every frame queued meanwhile). The reactor
// thread reads results and completes the calls, copies the child's standard error through to ours while
// keeping its tail, and learns of the child's death from its pidfd (a caller blocked in a synchronous wait also
// looks every 100 ms). When the child dies, the output it wrote before dying is read first; then every call still
// pending fails with a `CrewError` that says how the child ended and what it last wrote to standard error.

/// The outcome of one call: the encoded result, or why there is none.
typealias CallCompletion = @Sendable (Result<[UInt8], CrewError>) -> Void

// Named structs rather than tuples for what travels per call: a tuple type's metadata is looked up in a global
// cache at run time whenever an array of them is made, which showed in profiles of the pool's hot path.

/// The encoded value of an answer: a range of the buffer it was read into, which may hold other answers too.
/// Decode it at once: the reader reuses the buffer (keeping it longer only costs a copy of the buffer).
@usableFromInline
struct Payload: Sendable {
    @usableFromInline let bytes: [UInt8]
    @usableFromInline let range: Range<Int>
}

/// An answer from a child, by call id.
struct Answer: Sendable {
    var id: UInt64
    var result: Result<Payload, CrewError>
}

/// A completion to run with its outcome, once locks are released.
struct Finished: Sendable {
    var completion: CallCompletion
    var result: Result<[UInt8], CrewError>
}

final class ChildConnection: ReactorSource, @unchecked Sendable {
    // @unchecked Sendable: `state` (the machine and the calls' completions) and `readSide` are behind mutexes;
    // the rest (the stderr tail, the cookies, the reactor's send buffer, the handlers) is used only on the reactor
    // thread.

    typealias Machine = ChildConnectionStateMachine

    static let socketTag: UInt8 = 0
    static let stderrTag: UInt8 = 1
    static let pidfdTag: UInt8 = 2

    let pid: Int32
    let mode: ChildMarker.Mode
    private let socket: Int32
    private let stderrPipe: Int32
    private let pidfd: Int32
    private let maxFrameSize: Int
    private let logger: Logger

    private let nextID = Atomic<UInt64>(1)
    /// Completed once with how the child ended.
    let exited = Completion<Crew.ExitStatus>()

    private struct State {
        var machine = Machine()
        /// The completions of the calls the machine holds as pending, with their functions' names.
        var completions: [UInt64: (function: String, completion: CallCompletion)] = [:]
        /// The child has been reaped: its pidfd is closed, and signals can no longer reach it.
        var pidfdClosed = false
        var exitStatus: Crew.ExitStatus?
    }

    private let state = Locked(State())
    /// Held while the socket's registration is changed (see `armSocket`).
    /// Also says whether the socket is closed: its descriptor number may then belong to another file, which a
    /// late re-arm must not touch.
    private let arming = Locked(false)

    /// The reading side of the socket, used by the reactor or by a caller that reads for itself.
    private struct ReadSide {
        var reader: FrameReader
        var protocolErrorMessage: String?
        /// The socket is closed: its descriptor number may already be another file's, so nothing reads it.
        var closed = false
    }

    private let readSide: Locked<ReadSide>
    /// How long a caller spins reading the socket before it sleeps (0: never spins).
    private let spinNanoseconds: UInt64

    // Reactor thread only.
    private var stderrTail: StderrTail
    /// Bytes of the child's standard error not copied to ours because ours was full.
    private var droppedStderr = 0
    private var socketCookie: UInt64 = 0
    private var stderrCookie: UInt64 = 0
    private var pidfdCookie: UInt64 = 0
    /// The child's exit status while its handling waits for a caller that reads the socket.
    private var exitPutOff: Crew.ExitStatus?
    /// What the reactor is sending while it holds the right to write, and how much of it is sent.
    private var flushBuffer: [UInt8] = []
    private var flushOffset = 0
    private var stderrOpen = true
    private var finalized = false
    private var graceTimer: UInt64?
    /// Keeps the connection alive while the reactor watches it, whoever else lets go of it.
    private var selfReference: ChildConnection?
    /// Told when the child has exited (set before the reactor watches the child).
    private var exitHandler: ExitHandler?
    /// Not our child (the fork server's): we cannot wait for it; its exit status comes from the fork server.
    private var foreign = false
    /// The page where a pool worker notes its calls.
    private var progress: ProgressPage?
    /// When set, answers are handed here in batches (one call per read) instead of to per-call completions.
    private var resultsHandler: ResultsHandler?

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
        self.stderrTail = StderrTail(limit: options.stderrTailBytes)
        self.logger = options.logger
        self.readSide = Locked(ReadSide(reader: FrameReader(maxFrameSize: options.maxFrameSize)))
        self.spinNanoseconds = Crew.effectiveSpinNanoseconds(options)
    }

    // MARK: Starting a child

    /// What a connection reports when its child has exited: how, the error that fails what it still held
    /// (without a function name), and whether the child ever got as far as serving.
    typealias ExitHandler =
        @Sendable (_ status: Crew.ExitStatus, _ error: CrewError, _ served: Bool, _ progress: WorkerProgress?) -> Void

    /// Answers by call id, as many as one read brought. A failure's error has no function name (the receiver
    /// knows it).
    typealias ResultsHandler = @Sendable (_ answers: [Answer]) -> Void

    /// Who hears from a child: its exit, and (for pools) its answers in batches.
    struct Handlers: Sendable {
        var onExit: ExitHandler?
        var onResults: ResultsHandler?
        /// Give the child a ``ProgressPage`` and report what it says when the child exits.
        var trackProgress = false
        /// Read the child's answers on a thread of the connection's own, asleep in a blocking read (see
        /// `readOnOwnThread`), rather than on the reactor: for a pool worker, whose answers are awaited one by one.
        var answersOnOwnThread = false
    }

    /// Starts a child process running `crew.options.executable` and connects to it.
    /// `handed` descriptors become the child's 5, 6, ... (see ``HandedDescriptors``); they must stay open until
    /// the child has started.
    static func spawn(
        crew: Crew,
        mode: ChildMarker.Mode,
        handed: [Int32] = [],
        handlers: Handlers = Handlers()
    ) throws -> ChildConnection {
        if Reactor.shared.isOnReactorThread {
            guard crew.options.startMethod == .spawn else {
                throw CrewError(
                    .spawnFailed, "a forkserver child cannot be started from Crew's I/O thread (a callback)")
            }
            return try spawnOnReactorThread(crew: crew, mode: mode, handed: handed, handlers: handlers)
        }
        let done = Completion<Result<ChildConnection, CrewError>>()
        spawnAsync(crew: crew, mode: mode, handed: handed, handlers: handlers) { done.complete($0) }
        return try done.wait(timeout: nil)!.get()
    }

    /// Starts a child on the reactor thread without waiting; `completion` runs there with the connection, before
    /// any event of the child (its exit included) is handled.
    static func spawnAsync(
        crew: Crew,
        mode: ChildMarker.Mode,
        handed: [Int32] = [],
        handlers: Handlers,
        completion: @escaping @Sendable (Result<ChildConnection, CrewError>) -> Void
    ) {
        Reactor.shared.submit {
            if crew.options.startMethod == .forkserver {
                ForkServer.fork(
                    options: crew.options, mode: mode, handed: handed, handlers: handlers, completion: completion)
                return
            }
            do {
                completion(
                    .success(try spawnOnReactorThread(crew: crew, mode: mode, handed: handed, handlers: handlers)))
            } catch let error as CrewError {
                completion(.failure(error))
            } catch {
                completion(.failure(CrewError(.spawnFailed, "\(error)")))
            }
        }
    }

    private static func spawnOnReactorThread(
        crew: Crew,
        mode: ChildMarker.Mode,
        handed: [Int32],
        handlers: Handlers
    ) throws -> ChildConnection {
        let progress = handlers.trackProgress ? ProgressPage.create() : nil
        defer { if let progress { close(progress.fd) } }
        let child = try Launcher.spawn(options: crew.options, mode: mode, progressFD: progress?.fd, handed: handed)
        return make(
            child, mode: mode, options: crew.options, handlers: handlers, foreign: false, progress: progress?.page)
    }

    /// Wraps a started child (reactor thread). A `foreign` child is not ours to wait for (the fork server's):
    /// its exit comes through ``foreignExited(_:)``, and its pidfd serves only to signal it.
    static func make(
        _ child: LaunchedChild,
        mode: ChildMarker.Mode,
        options: Crew.Options,
        handlers: Handlers,
        foreign: Bool,
        progress: ProgressPage?
    ) -> ChildConnection {
        // The socket stays blocking, so that a caller waiting for its answer sleeps in the read itself (one
        // system call; see `readUntil`), at most `receiveTimeoutMilliseconds` at a time; every other read and
        // send passes MSG_DONTWAIT.
        setBlocking(child.socket)
        setReceiveTimeout(child.socket, milliseconds: receiveTimeoutMilliseconds)
        setNonBlocking(child.stderr)
        let connection = ChildConnection(
            pid: child.pid,
            mode: mode,
            socket: child.socket,
            stderrPipe: child.stderr,
            pidfd: child.pidfd,
            options: options
        )
        connection.foreign = foreign
        connection.progress = progress
        connection.exitHandler = handlers.onExit
        connection.resultsHandler = handlers.onResults
        connection.attach()
        if handlers.answersOnOwnThread {
            // If the system refuses the thread, the reactor reads the answers, as it does while no reader thread
            // reads.
            if case .failure(let error) = startThreadIfPossible(
                name: "crew-pool-read", { connection.readOnOwnThread() })
            {
                options.logger.warning(
                    "a child's answers are read by the I/O thread: \(String(reflecting: error))",
                    metadata: ["crew.pid": "\(child.pid)"])
            }
        }
        options.logger.debug("started child", metadata: ["crew.pid": "\(child.pid)", "crew.mode": "\(mode)"])
        return connection
    }

    private func attach() {
        let reactor = Reactor.shared
        selfReference = self
        socketCookie = reactor.register(
            fd: socket,
            events: UInt32(CREW_EPOLLIN | CREW_EPOLLRDHUP | CREW_EPOLLONESHOT),
            source: self,
            tag: Self.socketTag
        )
        stderrCookie = reactor.register(fd: stderrPipe, events: CREW_EPOLLIN, source: self, tag: Self.stderrTag)
        if !foreign {
            pidfdCookie = reactor.register(fd: pidfd, events: CREW_EPOLLIN, source: self, tag: Self.pidfdTag)
        }
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
            completion(
                .failure(CrewError(.encodingFailed, "the arguments did not encode: \(error)", function: function)))
            return
        }
        if var error = submit(frame, call: (Machine.Call(id: id, function: function), completion)) {
            error.function = function
            completion(.failure(error))
        }
    }

    /// The id of the initializer's call: outside the ids of a pool's tasks, which share the socket with it.
    static let initializerCallID = UInt64.max

    /// Sends the child its initializer, a call of `function` with `arguments` (already encoded), before any other
    /// call; `completion` runs once with its outcome. The machine keeps the child initializing until it answers,
    /// and kills the child if it fails.
    func initialize(
        _ function: String,
        arguments: [UInt8],
        completion: @escaping CallCompletion
    ) {
        var frame: [UInt8] = []
        do {
            try Message.appendCall(id: Self.initializerCallID, function: function, to: &frame, maxFrameSize: .max) {
                $0.append(contentsOf: arguments)
            }
        } catch {
            // The arguments are encoded already; a frame around them cannot fail.
            preconditionFailure("the initializer's call frame did not build: \(error)")
        }
        let call = Machine.Call(id: Self.initializerCallID, function: function)
        let finished: CallCompletion = { [self] result in
            let succeeded = if case .success = result { true } else { false }
            let actions = state.withLock { $0.machine.initializerFinished(succeeded: succeeded) }
            // The owner hears of a failed initializer before the kill it brings, so that the death is told as the
            // initializer's.
            completion(result)
            perform(actions)
        }
        let outcome: Result<[Machine.Action], CrewError> = state.withLock { state in
            let outcome = state.machine.initialize(frame, call: call)
            if case .success = outcome { state.completions[call.id] = (function, finished) }
            return outcome
        }
        switch outcome {
        case .success(let actions): perform(actions)
        case .failure(var error):
            error.function = function
            completion(.failure(error))
        }
    }

    /// Asks the child to finish its calls and exit.
    func shutdown() {
        var frame: [UInt8] = []
        Message.appendShutdown(to: &frame)
        perform(state.withLock { $0.machine.closeAsked(frame) })
    }

    /// Ends the child: gently (`SIGTERM`) or at once (`SIGKILL`). Does nothing once it has exited.
    func stop(_ signal: Machine.Signal) {
        perform(state.withLock { $0.machine.stopAsked(signal) })
    }

    /// Sends `bytes` as they are (tests use it to check how a child treats bytes that are not the protocol).
    func sendRaw(_ bytes: [UInt8]) {
        _ = submit(bytes, call: nil)
    }

    /// Hands `frame` (and the call it carries) to the machine, and sends if this caller gets to. Returns the error
    /// that ended the child, if it has ended.
    private func submit(_ frame: [UInt8], call: (call: Machine.Call, completion: CallCompletion)?) -> CrewError? {
        let outcome: Result<[Machine.Action], CrewError> = state.withLock { state in
            let outcome = state.machine.submit(frame, call: call?.call)
            if case .success = outcome, let call {
                state.completions[call.call.id] = (call.call.function, call.completion)
            }
            return outcome
        }
        switch outcome {
        case .failure(let error):
            return error
        case .success(let actions):
            perform(actions)
            return nil
        }
    }

    /// Queues ready-made call frames without sending: callers that must keep the order of frames across threads
    /// queue under their own lock and ``flush()`` after it. Returns the error that ended the child, if it has
    /// ended (nothing is queued then).
    func queue(_ frames: [UInt8]) -> CrewError? {
        state.withLock { $0.machine.queue(frames, calls: []) }
    }

    /// Sends what is queued, unless a send is already under way (which will send it).
    func flush() {
        perform(state.withLock { $0.machine.flush() })
    }

    // MARK: Performing actions

    /// Performs the machine's actions. `.send` is the caller's own (it holds the right to write): it sends on this
    /// thread, and goes on with what the machine says after. `.answered` and `.failAndReport` come only from the
    /// events that handle them.
    private func perform(_ actions: [Machine.Action]) {
        for action in actions {
            switch action {
            case .send(let bytes):
                sendFromCaller(bytes)
            case .watchWritable(let rest):
                Reactor.shared.submit { [self] in
                    flushBuffer = rest
                    flushOffset = 0
                    armSocket()
                    flushFromReactor()
                }
            case .closeSocket:
                // Nobody reads or writes it now (the machine says so), so neither lock is held for long; taking
                // both keeps a late re-arm or a last read from touching a reused descriptor number.
                arming.withLock { closed in
                    closed = true
                    readSide.withLock { side in
                        side.closed = true
                        close(socket)
                    }
                }
            case .kill(let signal):
                self.signal(signal.number)
            case .unregisterSocket:
                // Reactor thread (the events that return it are the reactor's).
                Reactor.shared.unregister(fd: socket, cookie: socketCookie)
            case .startGraceTimer(let nanoseconds):
                graceTimer = Reactor.shared.schedule(afterNanoseconds: nanoseconds) { [self] in
                    graceTimer = nil
                    let actions = state.withLock { $0.machine.graceTimerFired() }
                    if !actions.isEmpty {
                        logger.notice(
                            "child closed its socket but did not exit; killing it", metadata: ["crew.pid": "\(pid)"])
                    }
                    perform(actions)
                }
            case .cancelGraceTimer:
                if let graceTimer { Reactor.shared.cancelTimer(graceTimer) }
                graceTimer = nil
            case .handleExit:
                Reactor.shared.submit { [self] in
                    guard let exitStatus = exitPutOff else { return }
                    exitPutOff = nil
                    handleExit(exitStatus)
                }
            case .answered, .failAndReport:
                break
            }
        }
    }

    /// Sends `bytes` and then whatever the machine says was queued meanwhile; if the socket is full, hands the
    /// rest to the reactor.
    private func sendFromCaller(_ first: [UInt8]) {
        var bytes = first
        while true {
            var offset = 0
            switch sendSome(bytes, from: &offset) {
            case .done:
                let next = state.withLock { $0.machine.sendFinished() }
                if case .send(let more)? = next.first {
                    bytes = more
                    continue
                }
                perform(next)
            case .wouldBlock:
                perform(state.withLock { $0.machine.sendBlocked(rest: Array(bytes[offset...])) })
            case .broken:
                perform(state.withLock { $0.machine.sendBroken() })
            }
            return
        }
    }

    /// Sends while the reactor holds the right to write: first what a caller could not send, then what the
    /// machine says was queued since; keeps watching for room while the socket is full.
    private func flushFromReactor() {
        while true {
            if flushOffset >= flushBuffer.count {
                let next = state.withLock { $0.machine.sendFinished() }
                if case .send(let more)? = next.first {
                    flushBuffer = more
                    flushOffset = 0
                    continue
                }
                flushBuffer = []
                flushOffset = 0
                perform(next)
                armSocket()
                return
            }
            switch sendSome(flushBuffer, from: &flushOffset) {
            case .done:
                continue
            case .wouldBlock:
                armSocket()
                return
            case .broken:
                flushBuffer = []
                flushOffset = 0
                perform(state.withLock { $0.machine.sendBroken() })
                armSocket()
                return
            }
        }
    }

    private enum SendOutcome {
        case done, wouldBlock, broken
    }

    /// Sends as much of `bytes[offset...]` as the socket takes, advancing `offset` (never copying the rest).
    private func sendSome(_ bytes: [UInt8], from offset: inout Int) -> SendOutcome {
        while offset < bytes.count {
            let from = offset
            let n = bytes.withUnsafeBytes { raw in
                send(socket, raw.baseAddress! + from, raw.count - from, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if n > 0 {
                offset += n
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
            if foreign {
                // Not our child: its pidfd becomes readable when it exits.
                var p = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                return poll(&p, 1, 0) == 0
            }
            var code: Int32 = 0
            var status: Int32 = 0
            return crew_waitid_pidfd(pidfd, 1, 1, &code, &status) == 0
        }
    }

    // MARK: Reactor events

    func handle(events: UInt32, tag: UInt8) {
        switch tag {
        case Self.socketTag:
            if events & UInt32(CREW_EPOLLOUT) != 0 { flushFromReactor() }
            if events & UInt32(CREW_EPOLLIN | CREW_EPOLLHUP | CREW_EPOLLRDHUP | CREW_EPOLLERR) != 0 {
                readSocket()
            }
            armSocket(afterEvent: true)
        case Self.stderrTag:
            readStderr()
        default:
            reap()
        }
    }

    /// Re-arms the socket's one-shot registration for what the machine wants watched now
    /// (`socketInterest(afterEvent:)`). Serialized by a lock of its own, so
    /// callers and the reactor never arm it with stale wishes; the state lock is not held across the system call,
    /// so a caller woken by an answer does not wait on it (and sleep again) to submit its next call.
    ///
    /// After an event (`afterEvent`), a socket the reactor wants neither to read nor to write stays disarmed: a
    /// hang-up is reported whatever is asked for, so re-arming it while a reader thread has not yet read the end
    /// would wake the reactor again at once, and again. Whoever wants the reactor back (a reader that stops, a
    /// caller that hands it the rest of a send) arms it then.
    private func armSocket(afterEvent: Bool = false) {
        arming.withLock { closed in
            guard !closed else { return }
            guard let interest = state.withLock({ $0.machine.socketInterest(afterEvent: afterEvent) }) else { return }
            var events = UInt32(CREW_EPOLLONESHOT | CREW_EPOLLRDHUP)
            if interest.read { events |= UInt32(CREW_EPOLLIN) }
            if interest.write { events |= UInt32(CREW_EPOLLOUT) }
            Reactor.shared.modify(fd: socket, cookie: socketCookie, events: events)
        }
    }

    private enum ReadOutcome {
        case data, empty, eof
    }

    /// Reads what the socket has without blocking, completes the calls it answers, and says whether it read
    /// anything or reached the end. Used by the reactor and by callers that read for themselves; with `sleep` (a
    /// caller that reads for itself, only) the first read sleeps until input comes or the receive timeout passes.
    private func readAvailable(sleep: Bool = false) -> ReadOutcome {
        var outcomes: [(id: UInt64, result: Result<[UInt8], CrewError>)] = []
        var answers: [Answer] = []
        var hello = false
        var broken = false
        let outcome: ReadOutcome = readSide.withLock { side in
            if side.closed { return .eof }
            var got = false
            var wait = sleep
            while true {
                let n = side.reader.read(from: socket, wait: wait)
                wait = false
                if n > 0 {
                    got = true
                    if !handleFrames(&side, &outcomes, &answers, &hello) { broken = true }
                    // A short read emptied the socket: asking again would only say so (a system call saved).
                    if broken || !side.reader.lastReadFilled { return .data }
                    continue
                }
                if n < 0 && errno == EINTR {
                    wait = sleep && !got
                    continue
                }
                if n < 0 && errno == EAGAIN { return got ? .data : .empty }
                return .eof
            }
        }
        var finished: [Finished] = []
        var actions: [Machine.Action] = []
        if hello || broken || !outcomes.isEmpty {
            state.withLock { state in
                if hello { state.machine.helloReceived() }
                // The child sent bytes that are not our protocol: it cannot be trusted to answer. It is killed;
                // its death fails the pending calls with the message.
                if broken { actions += state.machine.protocolErrorReceived() }
                guard !outcomes.isEmpty else { return }
                for case .answered(let ids) in state.machine.answersReceived(outcomes.map(\.id)) {
                    let answered = Set(ids)
                    for outcome in outcomes where answered.contains(outcome.id) {
                        if let entry = state.completions.removeValue(forKey: outcome.id) {
                            finished.append(
                                Finished(
                                    completion: entry.completion, result: Self.named(outcome.result, entry.function)))
                        }
                    }
                }
            }
        }
        perform(actions)
        for done in finished { done.completion(done.result) }
        if !answers.isEmpty, let resultsHandler { resultsHandler(answers) }
        return outcome
    }

    /// Reads everything the socket has and completes the calls it answers (reactor thread).
    private func readSocket() {
        guard state.withLock({ $0.machine.reactorStartsReading() }) else { return }
        let outcome = readAvailable()
        state.withLock { $0.machine.reactorStopsReading() }
        guard outcome == .eof else { return }
        // End of stream (or a reset): the child is exiting or gone.
        perform(state.withLock { $0.machine.socketEnded() })
    }

    /// Parses the frames read so far: answers for the pool's handler (batched), or outcomes by call id, and
    /// whether the child said hello. Returns false if the bytes are not the protocol.
    private func handleFrames(
        _ side: inout ReadSide,
        _ outcomes: inout [(id: UInt64, result: Result<[UInt8], CrewError>)],
        _ answers: inout [Answer],
        _ hello: inout Bool
    ) -> Bool {
        let batched = resultsHandler != nil
        do {
            while let payload = try side.reader.next() {
                switch try Message.parseParentBound(side.reader.buffer, payload) {
                case .hello(_, let version):
                    guard version == wireProtocolVersion else {
                        throw CrewError(
                            .protocolError, "the child speaks protocol version \(version), not \(wireProtocolVersion)")
                    }
                    hello = true
                // A pool's answers go to its handler in a batch; the initializer's, to its own completion.
                case .result(let id, let range) where batched && id != Self.initializerCallID:
                    answers.append(Answer(id: id, result: .success(Payload(bytes: side.reader.buffer, range: range))))
                case .failure(let id, let failure) where batched && id != Self.initializerCallID:
                    answers.append(Answer(id: id, result: .failure(failure.error(function: nil, pid: pid))))
                case .result(let id, let range):
                    outcomes.append((id, .success(side.reader.copy(range))))
                case .failure(let id, let failure):
                    outcomes.append((id, .failure(failure.error(function: nil, pid: pid))))
                case .protocolError(let message):
                    side.protocolErrorMessage = message
                }
            }
            return true
        } catch {
            side.protocolErrorMessage = (error as? CrewError)?.message ?? "\(error)"
            return false
        }
    }

    // MARK: Reading on the caller's thread

    /// The longest a caller sleeps in one read of the socket before it looks at the child's state again.
    static let receiveTimeoutMilliseconds = 100

    /// Why `readUntil` returned.
    enum ReadStop {
        /// `isDone()` became true.
        case done
        /// Another reader holds the socket (a caller, or the reactor handing out what it read), or the connection
        /// is ending: nothing was read.
        case refused
        /// The spin time is over (when not blocking).
        case outOfTime
        /// The socket reached its end, or the child has exited: the reactor takes it from here.
        case ended
    }

    /// Waits until `isDone()` by reading the socket on the calling thread, which saves the two thread wake-ups
    /// of the reactor path. Spins (non-blocking reads) for the spin time; then, if `block`, sleeps in the read
    /// itself (waking every `receiveTimeoutMilliseconds` to look for a death). Returns early, leaving the rest to
    /// the reactor, if another caller or the reactor is reading, if the socket ends, if the child has exited, or
    /// (when not blocking) when the spin time is over. Never blocks when `block` is false.
    @discardableResult
    func readUntil(block: Bool, _ isDone: () -> Bool) -> ReadStop {
        if isDone() { return .done }
        guard spinNanoseconds > 0 || block else { return .outOfTime }
        guard state.withLock({ $0.machine.callerStartsReading() }) else { return .refused }
        armSocket()
        defer {
            perform(state.withLock { $0.machine.callerStopsReading() })
            armSocket()
        }
        let spinUntil = spinNanoseconds > 0 ? monotonicNanos() &+ spinNanoseconds : 0
        while !isDone() {
            var sleep = false
            if spinUntil == 0 || monotonicNanos() >= spinUntil {
                guard block else { return .outOfTime }
                if state.withLock({ $0.machine.callerShouldStopReading }) { return .ended }
                sleep = true
            }
            if readAvailable(sleep: sleep) == .eof { return .ended }
        }
        return .done
    }

    /// Reads the child's answers on the calling thread, a thread of its own, sleeping in each read, until the
    /// connection ends; the reactor then handles the end as before. A pool worker gets such a thread: on a
    /// virtual machine a thread asleep in a read wakes sooner than the reactor asleep in `epoll_wait`, which
    /// matters for calls awaited one at a time.
    func readOnOwnThread() {
        while true {
            switch readUntil(block: true, { false }) {
            case .ended:
                return
            case .refused:
                if state.withLock({ $0.machine.readingIsOver }) { return }
                usleep(200)  // The reactor is handing out what it read, which takes microseconds.
            case .done, .outOfTime:
                continue
            }
        }
    }

    private func readStderr() {
        guard stderrOpen else { return }
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(stderrPipe, $0.baseAddress!, $0.count) }
            if n > 0 {
                chunk.withUnsafeBytes { passThrough(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                stderrTail.append(chunk[0..<n])
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

    /// Copies a child's standard error to ours without ever blocking the I/O thread: a pipe nobody reads must not
    /// stall every child. Writes of at most `PIPE_BUF` bytes into a descriptor that polls writable do not block;
    /// what does not fit is dropped (and said so), while the tail for crash reports keeps everything.
    private func passThrough(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            var p = pollfd(fd: 2, events: Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, 0) == 1, p.revents & Int16(POLLOUT) != 0 else { break }
            let n = write(2, bytes.baseAddress! + offset, min(4096, bytes.count - offset))
            if n > 0 {
                offset += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        if offset < bytes.count {
            droppedStderr += bytes.count - offset
        } else if droppedStderr > 0 {
            var note =
                "[crew: \(droppedStderr) bytes of child \(pid)'s standard error were dropped: ours was not writable]\n"
            droppedStderr = 0
            note.withUTF8 { raw in
                var q = pollfd(fd: 2, events: Int16(POLLOUT), revents: 0)
                if poll(&q, 1, 0) == 1 { _ = write(2, raw.baseAddress, raw.count) }
            }
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
        } else {
            exitStatus = Crew.ExitStatus(code: code, status: status)
        }
        finalize(exitStatus)
    }

    /// The fork server reports that this (foreign) child has exited (reactor thread).
    func foreignExited(_ exitStatus: Crew.ExitStatus) {
        guard !finalized else { return }
        finalize(exitStatus)
    }

    /// The child has exited: read what it wrote before, deliver the answers its page kept, then let the machine
    /// fail what is still pending, and tell the owner.
    private func finalize(_ exitStatus: Crew.ExitStatus) {
        finalized = true
        if !foreign { Reactor.shared.unregister(fd: pidfd, cookie: pidfdCookie) }
        // A caller reading the socket reads what is left in it; the exit is handled when it stops.
        guard state.withLock({ $0.machine.childExitSeen() }) else {
            exitPutOff = exitStatus
            return
        }
        handleExit(exitStatus)
    }

    /// The exit, once nobody else reads the socket (reactor thread).
    private func handleExit(_ exitStatus: Crew.ExitStatus) {
        if state.withLock({ !$0.machine.socketClosed && $0.machine.phase != .exited }) { _ = readAvailable() }
        readStderr()
        if stderrOpen {
            stderrOpen = false
            Reactor.shared.unregister(fd: stderrPipe, cookie: stderrCookie)
            close(stderrPipe)
        }
        // A pool worker's page holds the answers it had finished but not yet sent: they are answers, not losses.
        if let progress { deliverUnsent(progress.unsentOutput) }

        let report = DeathReport(
            pid: pid, status: exitStatus, lastStderr: stderrTail.text, served: false,
            protocolError: readSide.withLock { $0.protocolErrorMessage }
        )
        let (actions, completions): ([Machine.Action], [UInt64: (function: String, completion: CallCompletion)]) =
            state.withLock { state in
                state.exitStatus = exitStatus
                state.pidfdClosed = true
                close(pidfd)
                let actions = state.machine.childExited(report)
                defer { state.completions = [:] }
                return (actions, state.completions)
            }
        if exitStatus.isSuccess {
            logger.debug("child exited", metadata: ["crew.pid": "\(pid)"])
        } else {
            logger.notice("child ended: \(exitStatus)", metadata: ["crew.pid": "\(pid)"])
        }
        perform(actions)
        for case .failAndReport(let calls, let report) in actions {
            for call in calls { completions[call.id]?.completion(.failure(report.error(function: call.function))) }
            exited.complete(exitStatus)
            let noted = progress.map { WorkerProgress(started: $0.started, finished: $0.finished) }
            progress = nil
            if let exitHandler {
                self.exitHandler = nil
                exitHandler(exitStatus, report.error(function: nil), report.served, noted)
            }
        }
        selfReference = nil
    }

    /// Delivers the answers in `bytes` (a dead worker's unsent output, copied to its page) whose calls are still
    /// waiting. Answers already read from the socket are there too, and are skipped by their ids. Bytes that are
    /// not the protocol end the delivery (the death then fails what is left).
    private func deliverUnsent(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        var reader = FrameReader(maxFrameSize: maxFrameSize, initialCapacity: bytes.count + 1)
        reader.append(bytes)
        var finished: [Finished] = []
        var answers: [Answer] = []
        let batched = resultsHandler != nil
        do {
            while let payload = try reader.next() {
                switch try Message.parseParentBound(reader.buffer, payload) {
                case .result(let id, let range) where batched && id != Self.initializerCallID:
                    answers.append(Answer(id: id, result: .success(Payload(bytes: reader.buffer, range: range))))
                case .failure(let id, let failure) where batched && id != Self.initializerCallID:
                    answers.append(Answer(id: id, result: .failure(failure.error(function: nil, pid: pid))))
                case .result(let id, let range):
                    if let entry = takeCompletion(id) {
                        finished.append(Finished(completion: entry.completion, result: .success(reader.copy(range))))
                    }
                case .failure(let id, let failure):
                    if let entry = takeCompletion(id) {
                        finished.append(
                            Finished(
                                completion: entry.completion,
                                result: .failure(failure.error(function: entry.function, pid: pid))))
                    }
                case .hello, .protocolError:
                    continue
                }
            }
        } catch {
            logger.notice(
                "a dead worker's unsent answers are not readable",
                metadata: ["crew.pid": "\(pid)", "crew.error": "\(String(reflecting: error))"]
            )
        }
        for done in finished { done.completion(done.result) }
        if !answers.isEmpty, let resultsHandler { resultsHandler(answers) }
    }

    /// `result`, its failure's error naming `function`.
    private static func named(_ result: Result<[UInt8], CrewError>, _ function: String) -> Result<[UInt8], CrewError> {
        guard case .failure(var error) = result else { return result }
        error.function = function
        return .failure(error)
    }

    /// The completion of call `id` if it is still waiting (its answer arrives now).
    private func takeCompletion(_ id: UInt64) -> (function: String, completion: CallCompletion)? {
        state.withLock { state in
            guard state.machine.answersReceived([id]) == [.answered([id])] else { return nil }
            return state.completions.removeValue(forKey: id)
        }
    }
}

/// What a dead worker's progress page said: the last synchronous call it started and the last it finished.
struct WorkerProgress: Equatable, Sendable {
    var started: UInt64
    var finished: UInt64
}
