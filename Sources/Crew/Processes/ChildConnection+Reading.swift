// The reading paths of a child's connection: the reactor reads when told the socket has input; a caller waiting
// for its own answer, or the connection's reader thread, reads for itself, sleeping in the read. The machine says
// who may read; answers go to the calls' completions, or to the pool's handler in batches.

import CCrewShims
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension ChildConnection {
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
    func armSocket(afterEvent: Bool = false) {
        arming.withLock { closed in
            guard !closed else { return }
            guard let interest = state.withLock({ $0.machine.socketInterest(afterEvent: afterEvent) }) else { return }
            var events = UInt32(CREW_EPOLLONESHOT | CREW_EPOLLRDHUP)
            if interest.read { events |= UInt32(CREW_EPOLLIN) }
            if interest.write { events |= UInt32(CREW_EPOLLOUT) }
            Reactor.shared.modify(fd: socket, cookie: socketCookie, events: events)
        }
    }

    enum ReadOutcome {
        case data, empty, eof
    }

    /// Reads what the socket has without blocking, completes the calls it answers, and says whether it read
    /// anything or reached the end. Used by the reactor and by callers that read for themselves; with `sleep` (a
    /// caller that reads for itself, only) the first read sleeps until input comes or the receive timeout passes.
    func readAvailable(sleep: Bool = false) -> ReadOutcome {
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
    func readSocket() {
        guard state.withLock({ $0.machine.reactorStartsReading() }) else { return }
        let outcome = readAvailable()
        perform(state.withLock { $0.machine.reactorStopsReading() })
        guard outcome == .eof else { return }
        // End of stream (or a reset): the child is exiting or gone.
        perform(state.withLock { $0.machine.socketEnded() })
    }

    /// Parses the frames read so far: answers for the pool's handler (batched), or outcomes by call id, and
    /// whether the child said hello. Returns false if the bytes are not the protocol.
    func handleFrames(
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
                // The reactor (handing out what it read) or a caller holds the socket: sleep until it lets go.
                readerWakeup.withLock {
                    while state.withLock({ $0.machine.readerThreadWaits() }) { readerWakeup.wait(until: nil) }
                }
                if state.withLock({ $0.machine.readingIsOver }) { return }
            case .done, .outOfTime:
                continue
            }
        }
    }
}
