// The decisions of the parent's side of one child process, without sockets, threads or clocks: the I/O shell
// (`ChildConnection`) reports what happened — a call submitted, a send that finished or would block, answers read,
// the end of the socket, a timer, the child's exit — and performs the actions that come back, in order.
//
// It owns the child's phase (starting, initializing, serving, draining, exited), who may write to the socket (one
// writer at a time, which keeps frames in order across threads) and who may read it, when the socket may be closed
// (never while someone writes or reads it), which calls are still waiting for an answer, when the child is sent a
// signal (a failed initializer, bytes that are not the protocol, a socket closed without an exit, a close asked
// for), and what its death fails.

struct ChildConnectionStateMachine {
    /// Where the connection is in the child's life.
    enum Phase: Equatable {
        /// Started; the child has not said hello yet.
        case starting
        /// The child said hello and runs its initializer (a pool's `initializer`): it serves once that succeeds.
        case initializing
        /// The child said hello (and its initializer, if it has one, succeeded): it runs calls.
        case serving
        /// The child closed its socket (it is exiting); nothing more can be sent or received.
        case draining
        /// The child has exited.
        case exited
    }

    /// Who holds the right to write to the socket.
    enum Writer: Equatable {
        /// Nobody: the next sender takes it.
        case none
        /// A caller's thread is sending.
        case caller
        /// The reactor is sending what a caller could not (the socket was full), and watches for room.
        case reactor
    }

    /// Who reads the socket for answers now.
    enum Reader: Equatable {
        /// Nobody: the reactor is woken when input comes.
        case none
        /// A caller (or the connection's reader thread) reads for itself, and the reactor leaves the socket alone.
        case caller
        /// The reactor is reading the socket and handing out what it read: a caller must not start reading then,
        /// or it could find the socket empty and sleep while the reactor completes its call.
        case reactor
    }

    /// What the connection knows of the child's exit.
    enum ExitSight: Equatable {
        /// The child has not been seen to exit.
        case notSeen
        /// The reactor saw the exit (no caller starts reading any more).
        case seen
        /// The reactor saw the child exit with this status while a caller was reading: what the child sent is read
        /// by that caller, and the exit is handled when it stops (so no answer in the socket is failed as lost).
        case waitsForCaller(Crew.ExitStatus)
    }

    /// The signals the connection sends its child.
    enum Signal: Equatable {
        /// SIGTERM: the child may finish what it does and exit.
        case terminate
        /// SIGKILL: the child ends at once.
        case kill

        var number: Int32 { self == .terminate ? 15 : 9 }
    }

    enum Action: Equatable {
        /// Send these bytes (the one told holds the writing right until it reports how the send went).
        case send([UInt8])
        /// Watch the socket for room to write, and send `rest` then what is queued when there is.
        case watchWritable(rest: [UInt8])
        /// Stop watching the socket (its end was read, or the child exited).
        case unregisterSocket
        /// Close the socket: nobody writes or reads it any more.
        case closeSocket
        /// Kill the child if it has not exited in this many nanoseconds (it closed its socket).
        case startGraceTimer(UInt64)
        case cancelGraceTimer
        /// Send the child this signal.
        case kill(Signal)
        /// These calls are answered or failed: hand them their outcomes (the shell holds their completions).
        case answered([UInt64])
        /// The child is dead: fail these calls with the report's error, then tell the owner.
        case failAndReport(calls: [Call], DeathReport)
        /// Handle the child's exit now (on the reactor thread): read what is left, then report it
        /// (``childExited(_:)``). Put off while a caller read the socket, it comes when the caller stops.
        case handleExit(Crew.ExitStatus)
        /// The socket's reader let go of it: wake the reader thread that waits for it.
        case wakeWaitingReader
    }

    /// A call that waits for its answer.
    struct Call: Equatable {
        var id: UInt64
        var function: String
    }

    /// How long a child that closed its socket may take to exit before it is killed.
    static let exitGraceNanoseconds: UInt64 = 2_000_000_000

    private(set) var phase = Phase.starting
    private(set) var writer = Writer.none
    private(set) var reader = Reader.none
    private(set) var exit = ExitSight.notSeen
    /// A reader thread waits for the reader that holds the socket to let go of it.
    private(set) var readerWaiting = false
    /// Frames waiting for the writer.
    private(set) var queued: [UInt8] = []
    /// Calls sent (or queued) and not yet answered, by id.
    private(set) var pending: [UInt64: String] = [:]
    /// The call that runs the child's initializer, until it answers.
    private(set) var initializerCall: UInt64?
    /// The child said hello (it reached `Crew.bootstrap`).
    private(set) var helloSeen = false
    /// The child got as far as serving: it said hello, and its initializer (if any) succeeded.
    private(set) var served = false
    private(set) var socketClosed = false
    private(set) var graceTimerRunning = false
    /// The error that fails every call from now on, once the child is dead.
    private(set) var failure: CrewError?

    /// Nobody will read the socket for answers any more: its end was read, or the child is dead or being handled
    /// as dead.
    var readingIsOver: Bool {
        socketClosed || failure != nil || exit != .notSeen || phase == .draining || phase == .exited
    }

    /// Whether the reactor should watch the socket for input now.
    var reactorReads: Bool { reader != .caller && phase != .draining && phase != .exited }

    /// What the socket's one-shot registration should watch for now, or nil to leave it disarmed: input unless
    /// a caller reads for itself, room to write while the reactor holds the right to write. After an event
    /// (`afterEvent`), a socket the reactor wants neither to read nor to write stays disarmed (a hang-up is
    /// reported whatever is asked for, so re-arming it would wake the reactor again at once).
    func socketInterest(afterEvent: Bool) -> (read: Bool, write: Bool)? {
        guard phase != .draining && phase != .exited else { return nil }
        if afterEvent && !reactorReads && writer != .reactor { return nil }
        return (reactorReads, writer == .reactor)
    }

    /// A caller that sleeps reading the socket should stop: the child is dead, or its exit waits for the caller.
    var callerShouldStopReading: Bool {
        if case .waitsForCaller = exit { return true }
        return failure != nil
    }

    // MARK: Writing

    /// A caller submits `frame` (with the call it carries, if any). Returns the error that ended the child if it is
    /// dead (nothing is sent then); otherwise what to send now, if this caller may.
    mutating func submit(_ frame: [UInt8], call: Call?) -> Result<[Action], CrewError> {
        if let failure { return .failure(failure) }
        if let call { pending[call.id] = call.function }
        switch writer {
        case .none where phase != .draining:
            writer = .caller
            if queued.isEmpty { return .success([.send(frame)]) }
            queued.append(contentsOf: frame)
            defer { queued = [] }
            return .success([.send(queued)])
        default:
            queued.append(contentsOf: frame)
            return .success([])
        }
    }

    /// The child's initializer is submitted as its first call (`frame`, carrying `call`): the child serves once it
    /// succeeds (``initializerFinished(succeeded:)``).
    mutating func initialize(_ frame: [UInt8], call: Call) -> Result<[Action], CrewError> {
        precondition(initializerCall == nil, "a child runs one initializer")
        let outcome = submit(frame, call: call)
        if case .success = outcome {
            initializerCall = call.id
            // The child may have said hello before its initializer was sent: it serves once that answers.
            if phase == .serving {
                phase = .initializing
                served = false
            }
        }
        return outcome
    }

    /// The initializer answered (its answer is handed out as an answer too): the child serves, or, if the
    /// initializer failed, it is killed (its death then fails what it holds, and it never served).
    mutating func initializerFinished(succeeded: Bool) -> [Action] {
        guard initializerCall != nil else { return [] }
        // A failed initializer stays the child's story (its death report says it was initializing).
        guard succeeded else { return phase == .exited ? [] : [.kill(.kill)] }
        initializerCall = nil
        if phase == .initializing || phase == .starting {
            phase = .serving
            served = true
        }
        return []
    }

    /// The owner asks the child to finish its calls and exit: `frame` (the shutdown message) goes after every
    /// call already submitted.
    mutating func closeAsked(_ frame: [UInt8]) -> [Action] {
        guard phase != .draining && phase != .exited else { return [] }
        switch submit(frame, call: nil) {
        case .success(let actions): return actions
        case .failure: return []  // The child is dead already: there is nothing to close.
        }
    }

    /// The owner asks for the child to be ended now: gently (`terminate`) or at once (`kill`). A child that has
    /// exited is not signalled (its pid may be another process's by now).
    mutating func stopAsked(_ signal: Signal) -> [Action] {
        phase == .exited ? [] : [.kill(signal)]
    }

    /// Frames (and their calls) queued without sending, for a caller that keeps frames in order under a lock of
    /// its own and flushes after it.
    mutating func queue(_ frames: [UInt8], calls: [Call]) -> CrewError? {
        if let failure { return failure }
        for call in calls { pending[call.id] = call.function }
        queued.append(contentsOf: frames)
        return nil
    }

    /// Sends what is queued, unless someone is sending already (they will send it).
    mutating func flush() -> [Action] {
        guard writer == .none, !queued.isEmpty, failure == nil, phase != .draining else { return [] }
        writer = .caller
        defer { queued = [] }
        return [.send(queued)]
    }

    /// The writer sent everything it was given: it sends what was queued meanwhile, or lets go.
    mutating func sendFinished() -> [Action] {
        guard writer != .none else { return [] }
        if !queued.isEmpty && failure == nil {
            defer { queued = [] }
            return [.send(queued)]
        }
        writer = .none
        return closeIfIdle()
    }

    /// A caller's send would block: the reactor takes over the rest, and the right to write.
    mutating func sendBlocked(rest: [UInt8]) -> [Action] {
        writer = .reactor
        return [.watchWritable(rest: rest)]
    }

    /// The socket is broken (the child is gone): what is queued is dropped; its exit will say how.
    mutating func sendBroken() -> [Action] {
        queued = []
        writer = .none
        return closeIfIdle()
    }

    // MARK: Reading

    /// A caller wants to read the socket itself (saving the reactor's wake-up). True if it may.
    mutating func callerStartsReading() -> Bool {
        guard reader == .none, exit == .notSeen, !socketClosed, failure == nil, phase != .draining,
            phase != .exited
        else {
            return false
        }
        reader = .caller
        return true
    }

    /// The reactor was told the socket has input. True if it may read (no caller reads for itself).
    mutating func reactorStartsReading() -> Bool {
        guard reactorReads else { return false }
        reader = .reactor
        return true
    }

    /// The reactor has read and handed out the answers.
    mutating func reactorStopsReading() -> [Action] {
        guard reader == .reactor else { return [] }
        reader = .none
        return wakeReader()
    }

    mutating func callerStopsReading() -> [Action] {
        var actions: [Action] = []
        if reader == .caller {
            reader = .none
            actions = wakeReader()
        }
        if case .waitsForCaller(let status) = exit {
            exit = .seen
            return actions + [.handleExit(status)]
        }
        return actions + closeIfIdle()
    }

    /// A reader thread was refused the socket (``callerStartsReading()``): true if it should sleep until the
    /// reader that holds the socket lets go of it (`.wakeWaitingReader`); false if it may try again now, or if
    /// reading is over (``readingIsOver``).
    mutating func readerThreadWaits() -> Bool {
        guard !readingIsOver, reader != .none else { return false }
        readerWaiting = true
        return true
    }

    private mutating func wakeReader() -> [Action] {
        guard readerWaiting else { return [] }
        readerWaiting = false
        return [.wakeWaitingReader]
    }

    /// The child has exited with `status` (seen by the reactor, which reaped it): it is handled now, or, while a
    /// caller reads the socket, when that caller stops (so what the child sent is read first). Nothing once the
    /// exit was seen before.
    mutating func childExitSeen(_ status: Crew.ExitStatus) -> [Action] {
        guard exit == .notSeen else { return [] }
        guard reader == .caller else {
            exit = .seen
            return [.handleExit(status)]
        }
        exit = .waitsForCaller(status)
        return []
    }

    /// The child said hello (it speaks the protocol): it serves, or first runs its initializer.
    mutating func helloReceived() {
        helloSeen = true
        guard phase == .starting else { return }
        if initializerCall != nil {
            phase = .initializing
        } else {
            phase = .serving
            served = true
        }
    }

    /// Answers (or failures) arrived for these calls: those still pending are handed their outcome.
    mutating func answersReceived(_ ids: [UInt64]) -> [Action] {
        let answered = ids.filter { pending.removeValue(forKey: $0) != nil }
        return answered.isEmpty ? [] : [.answered(answered)]
    }

    /// The child sent bytes that are not the protocol: it cannot be trusted to answer.
    mutating func protocolErrorReceived() -> [Action] {
        phase == .exited ? [] : [.kill(.kill)]
    }

    /// The socket reached its end: the child is exiting. It gets a grace period to do so.
    mutating func socketEnded() -> [Action] {
        guard phase != .draining && phase != .exited else { return [] }
        phase = .draining
        graceTimerRunning = true
        return [.unregisterSocket] + closeIfIdle() + [.startGraceTimer(Self.exitGraceNanoseconds)]
    }

    /// The grace period is over and the child has not exited.
    mutating func graceTimerFired() -> [Action] {
        guard graceTimerRunning else { return [] }
        graceTimerRunning = false
        return phase == .exited ? [] : [.kill(.kill)]
    }

    // MARK: The child's end

    /// The child has exited (its output read first, by the shell): every call still waiting fails.
    mutating func childExited(_ report: DeathReport) -> [Action] {
        guard phase != .exited else { return [] }
        let wasDraining = phase == .draining
        var report = report
        report.served = report.served || served
        // Said hello, then ended before its initializer answered (its socket may have ended first: draining).
        report.initializing = helloSeen && initializerCall != nil
        phase = .exited
        initializerCall = nil
        failure = report.error(function: nil)
        queued = []
        var actions: [Action] = []
        if graceTimerRunning {
            graceTimerRunning = false
            actions.append(.cancelGraceTimer)
        }
        if !wasDraining { actions.append(.unregisterSocket) }
        actions += closeIfIdle()
        let calls = pending.sorted { $0.key < $1.key }.map { Call(id: $0.key, function: $0.value) }
        pending = [:]
        actions.append(.failAndReport(calls: calls, report))
        return actions
    }

    /// Closes the socket once it is no use (ended, or the child gone) and nobody writes or reads it.
    private mutating func closeIfIdle() -> [Action] {
        guard !socketClosed, phase == .draining || phase == .exited, writer == .none, reader != .caller else {
            return []
        }
        socketClosed = true
        return [.closeSocket]
    }
}
