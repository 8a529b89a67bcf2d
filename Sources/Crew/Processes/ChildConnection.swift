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
// Callers write calls from their own thread (one `send` carries every frame queued meanwhile). Answers are read
// by the connection's reader thread where it has one (a pool worker's: asleep in a blocking read, waking at least
// every `receiveTimeoutMilliseconds` to look for the child's death), by a caller that reads for itself (a
// `ChildWorker`), or else by the reactor thread. The reactor copies the child's standard error through to ours while
// keeping its tail (`StderrRelay`), and learns of the child's death from its pidfd. When the child dies, the output
// it wrote before dying is read first; then every call still pending fails with a `CrewError` that says how the
// child ended and what it last wrote to standard error.
//
// This file holds the connection's state, its start and the calls' entry points; its writing paths, reading paths
// and end are in ChildConnection+Writing.swift, +Reading.swift and +Exit.swift, its standard error in
// StderrRelay.swift.

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
    let socket: Int32
    let pidfd: Int32
    let maxFrameSize: Int
    let logger: Logger

    let nextID = Atomic<UInt64>(1)
    /// Completed once with how the child ended.
    let exited = Completion<Crew.ExitStatus>()

    struct State {
        var machine = Machine()
        /// The completions of the calls the machine holds as pending, with their functions' names.
        var completions: [UInt64: (function: String, completion: CallCompletion)] = [:]
    }

    let state = Locked(State())
    /// Held while the socket's registration is changed (see `armSocket`).
    /// Also says whether the socket is closed: its descriptor number may then belong to another file, which a
    /// late re-arm must not touch.
    let arming = Locked(false)

    /// The reading side of the socket, used by the reactor or by a caller that reads for itself.
    struct ReadSide {
        var reader: FrameReader
        var protocolErrorMessage: String?
        /// The socket is closed: its descriptor number may already be another file's, so nothing reads it.
        var closed = false
    }

    let readSide: Locked<ReadSide>
    /// Where the reader thread sleeps while another reader holds the socket (see `readOnOwnThread`).
    let readerWakeup = ConditionLock()
    /// How long a caller spins reading the socket before it sleeps (0: never spins).
    let spinNanoseconds: UInt64

    // Reactor thread only.
    /// The child's standard error: copied through to ours, its tail kept for the death report.
    var stderr: StderrRelay
    var socketCookie: UInt64 = 0
    var stderrCookie: UInt64 = 0
    var pidfdCookie: UInt64 = 0
    /// What the reactor is sending while it holds the right to write, and how much of it is sent.
    var flushBuffer: [UInt8] = []
    var flushOffset = 0
    var graceTimer: UInt64?
    /// Keeps the connection alive while the reactor watches it, whoever else lets go of it.
    var selfReference: ChildConnection?
    /// Told when the child has exited (set before the reactor watches the child).
    var exitHandler: ExitHandler?
    /// Not our child (the fork server's): we cannot wait for it; its exit status comes from the fork server.
    var foreign = false
    /// The page where a pool worker notes its calls.
    var progress: ProgressPage?
    /// When set, answers are handed here in batches (one call per read) instead of to per-call completions.
    var resultsHandler: ResultsHandler?

    private init(
        pid: Int32,
        mode: ChildMarker.Mode,
        socket: Int32,
        stderrPipe: Int32,
        pidfd: Int32,
        options: Crew.Options,
        stderrLines: (@Sendable (String) -> Void)?
    ) {
        self.pid = pid
        self.mode = mode
        self.socket = socket
        self.pidfd = pidfd
        self.maxFrameSize = options.maxFrameSize
        self.stderr = StderrRelay(
            fd: stderrPipe, pid: pid, tailBytes: options.stderrTailBytes, lines: stderrLines)
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
        /// The child's standard error a line at a time, instead of copied to ours (see ``StderrRelay``).
        var onStderrLine: (@Sendable (String) -> Void)?
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

    static func spawnOnReactorThread(
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
            options: options,
            stderrLines: handlers.onStderrLine
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

    func attach() {
        let reactor = Reactor.shared
        selfReference = self
        socketCookie = reactor.register(
            fd: socket,
            events: UInt32(CREW_EPOLLIN | CREW_EPOLLRDHUP | CREW_EPOLLONESHOT),
            source: self,
            tag: Self.socketTag
        )
        stderrCookie = reactor.register(fd: stderr.fd, events: CREW_EPOLLIN, source: self, tag: Self.stderrTag)
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
    func submit(_ frame: [UInt8], call: (call: Machine.Call, completion: CallCompletion)?) -> CrewError? {
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
    func perform(_ actions: [Machine.Action]) {
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
            case .handleExit(let status):
                if Reactor.shared.isOnReactorThread {
                    handleExit(status)
                } else {
                    Reactor.shared.submit { [self] in handleExit(status) }
                }
            case .wakeWaitingReader:
                // Taking the lock first: the reader thread checks the machine and sleeps under it, so this cannot
                // fall between its check and its sleep.
                readerWakeup.withLock { readerWakeup.broadcast() }
            case .answered, .failAndReport:
                break
            }
        }
    }

    /// Reads the child's standard error (reactor thread); once it ends, stops watching it and closes it.
    func readStderr() {
        guard stderr.isOpen, !stderr.readAvailable() else { return }
        closeStderr()
    }

    func closeStderr() {
        guard stderr.isOpen else { return }
        Reactor.shared.unregister(fd: stderr.fd, cookie: stderrCookie)
        stderr.close()
    }

    // MARK: Signals and status

    /// Sends `signal` to the child, unless it has already been reaped. Returns false if it was.
    @discardableResult
    func signal(_ signal: Int32) -> Bool {
        state.withLock { state in
            // Once the machine has the exit, the pidfd is closed (its number may be another file's).
            guard state.machine.phase != .exited else { return false }
            return crew_pidfd_send_signal(pidfd, signal) == 0
        }
    }

    /// True until the child has exited (a child that exited but is not yet reaped counts as exited).
    var isAlive: Bool {
        state.withLock { state in
            guard state.machine.phase != .exited else { return false }
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
}
