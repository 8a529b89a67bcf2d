// A child's end, as its connection sees it: the pidfd (or the fork server) says it exited; what it wrote before is
// read first, the answers its progress page kept are delivered, and then the machine fails what is still pending
// and the owner is told, with a death report.

import CCrewShims
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension ChildConnection {
    /// The pidfd is readable: the child has exited. Collect its status and its last words, then fail what is
    /// still pending.
    func reap() {
        guard state.withLock({ $0.machine.exit == .notSeen }) else { return }
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
        finalize(exitStatus)
    }

    /// The child has exited: read what it wrote before, deliver the answers its page kept, then let the machine
    /// fail what is still pending, and tell the owner.
    func finalize(_ exitStatus: Crew.ExitStatus) {
        let (first, actions) = state.withLock { state in
            (state.machine.exit == .notSeen, state.machine.childExitSeen(exitStatus))
        }
        guard first else { return }
        if !foreign { Reactor.shared.unregister(fd: pidfd, cookie: pidfdCookie) }
        // Handled now, or (while a caller reads the socket, reading what is left in it) when that caller stops.
        perform(actions)
    }

    /// The exit, once nobody else reads the socket (reactor thread).
    func handleExit(_ exitStatus: Crew.ExitStatus) {
        if state.withLock({ !$0.machine.socketClosed && $0.machine.phase != .exited }) { _ = readAvailable() }
        readStderr()
        closeStderr()
        // A pool worker's page holds the answers it had finished but not yet sent: they are answers, not losses.
        if let progress { deliverUnsent(progress.unsentOutput) }

        let report = DeathReport(
            pid: pid, status: exitStatus, lastStderr: stderr.tail.text, served: false,
            protocolError: readSide.withLock { $0.protocolErrorMessage }
        )
        let (actions, completions): ([Machine.Action], [UInt64: (function: String, completion: CallCompletion)]) =
            state.withLock { state in
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
    func deliverUnsent(_ bytes: [UInt8]) {
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
    static func named(_ result: Result<[UInt8], CrewError>, _ function: String) -> Result<[UInt8], CrewError> {
        guard case .failure(var error) = result else { return result }
        error.function = function
        return .failure(error)
    }

    /// The completion of call `id` if it is still waiting (its answer arrives now).
    func takeCompletion(_ id: UInt64) -> (function: String, completion: CallCompletion)? {
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
