import CrewTestHelpers
import Testing

@testable import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// The decisions of a child connection, without processes or sockets: events in, actions out.
@Suite struct ChildConnectionStateMachineTests {
    typealias SM = ChildConnectionStateMachine

    func call(_ id: UInt64, _ function: String = "f") -> SM.Call { SM.Call(id: id, function: function) }

    func report(_ status: Crew.ExitStatus = .signaled(9), served: Bool = false) -> DeathReport {
        DeathReport(pid: 7, status: status, lastStderr: "", served: served)
    }

    func sent(_ result: Result<[SM.Action], CrewError>) -> [SM.Action] {
        (try? result.get()) ?? []
    }

    @Test func oneWriterAtATimeAndFramesInOrder() {
        var sm = SM()
        // The first caller sends at once; the next ones queue behind it.
        #expect(sent(sm.submit([1], call: call(1))) == [.send([1])])
        #expect(sent(sm.submit([2], call: call(2))) == [])
        #expect(sent(sm.submit([3], call: nil)) == [])
        #expect(sm.writer == .caller)
        // The writer, done, sends what queued meanwhile, in order, then lets go.
        #expect(sm.sendFinished() == [.send([2, 3])])
        #expect(sm.sendFinished() == [])
        #expect(sm.writer == .none)
        #expect(sm.pending == [1: "f", 2: "f"])
    }

    @Test func aFullSocketHandsTheRestAndTheRightToWriteToTheReactor() {
        var sm = SM()
        _ = sm.submit([1, 2, 3], call: call(1))
        #expect(sm.sendBlocked(rest: [3]) == [.watchWritable(rest: [3])])
        #expect(sm.writer == .reactor)
        // A caller meanwhile only queues; the reactor sends it after the rest.
        #expect(sent(sm.submit([4], call: call(2))) == [])
        #expect(sm.flush() == [])
        #expect(sm.sendFinished() == [.send([4])])
        #expect(sm.sendFinished() == [])
        #expect(sm.writer == .none)
    }

    @Test func queuedFramesGoOutWithAFlush() {
        var sm = SM()
        #expect(sm.queue([1], calls: [call(1)]) == nil)
        #expect(sm.queue([2], calls: []) == nil)
        #expect(sm.flush() == [.send([1, 2])])
        #expect(sm.flush() == [])  // The writer holds the right; what queues next goes with its next round.
    }

    @Test func answersCompleteOnlyTheCallsStillWaiting() {
        var sm = SM()
        _ = sm.submit([1], call: call(1))
        _ = sm.submit([2], call: call(2))
        #expect(sm.answersReceived([1, 9]) == [.answered([1])])
        #expect(sm.answersReceived([1]) == [])
        #expect(sm.pending == [2: "f"])
    }

    @Test func deathWithCallsInFlightFailsThemAllAndLaterCallsAtOnce() {
        var sm = SM()
        for id in 1...5 as ClosedRange<UInt64> { _ = sm.submit([UInt8(id)], call: call(id, "f\(id)")) }
        #expect(sm.sendFinished() == [.send([2, 3, 4, 5])])
        #expect(sm.sendFinished() == [])
        sm.helloReceived()
        let actions = sm.childExited(report())
        #expect(
            actions == [
                .unregisterSocket, .closeSocket,
                .failAndReport(calls: (1...5).map { call($0, "f\($0)") }, report(served: true)),
            ])
        #expect(sm.phase == .exited && sm.pending.isEmpty)
        guard case .failure(let error) = sm.submit([6], call: call(6)) else {
            Issue.record("a call after the death was taken")
            return
        }
        #expect(error.code == .workerCrashed && error.pid == 7)
        #expect(sm.childExited(report()) == [])  // Once.
    }

    @Test func anAnswerReadWithTheDeathIsAnAnswer() {
        var sm = SM()
        _ = sm.submit([1], call: call(1))
        _ = sm.submit([2], call: call(2))
        // The shell reads the socket to its end before it handles the exit: the answer goes first.
        #expect(sm.answersReceived([1]) == [.answered([1])])
        let actions = sm.childExited(report())
        #expect(actions.last == .failAndReport(calls: [call(2)], report()))
    }

    @Test func deathWhileDrainingCancelsTheGraceTimer() {
        var sm = SM()
        _ = sm.submit([1], call: call(1))
        _ = sm.sendFinished()
        #expect(sm.socketEnded() == [.unregisterSocket, .closeSocket, .startGraceTimer(SM.exitGraceNanoseconds)])
        #expect(sm.phase == .draining)
        // Nothing more is sent once the socket has ended.
        #expect(sent(sm.submit([2], call: call(2))) == [])
        let actions = sm.childExited(report(.exited(0)))
        #expect(actions == [.cancelGraceTimer, .failAndReport(calls: [call(1), call(2)], report(.exited(0)))])
        #expect(sm.graceTimerFired() == [])
    }

    @Test func aChildThatClosesItsSocketButStaysIsKilled() {
        var sm = SM()
        _ = sm.socketEnded()
        #expect(sm.graceTimerFired() == [.kill(.kill)])
        #expect(sm.graceTimerFired() == [])
    }

    @Test func theSocketClosesOnlyWhenNobodyUsesIt() {
        var sm = SM()
        _ = sm.submit([1], call: call(1))  // A caller is writing.
        let first = sm.callerStartsReading()
        let second = sm.callerStartsReading()
        #expect(first)  // Another reads for itself.
        #expect(!second)  // One reader at a time.
        #expect(sm.socketEnded() == [.unregisterSocket, .startGraceTimer(SM.exitGraceNanoseconds)])
        #expect(!sm.socketClosed)
        #expect(sm.sendFinished() == [])  // The writer is done; the reader still reads.
        #expect(sm.callerStopsReading() == [.closeSocket])
        #expect(sm.socketClosed)
    }

    @Test func aBrokenSendDropsWhatWasQueued() {
        var sm = SM()
        _ = sm.submit([1], call: call(1))
        _ = sm.submit([2], call: call(2))
        #expect(sm.sendBroken() == [])
        #expect(sm.queued.isEmpty && sm.writer == .none)
        // Its exit fails the calls.
        #expect(sm.childExited(report()).last == .failAndReport(calls: [call(1), call(2)], report()))
    }

    @Test func aChildThatSpeaksSomethingElseIsKilled() {
        var sm = SM()
        #expect(sm.protocolErrorReceived() == [.kill(.kill)])
        var broken = report()
        broken.protocolError = "a frame of an unknown kind"
        guard case .failAndReport(_, let said)? = sm.childExited(broken).last else {
            Issue.record("no report")
            return
        }
        #expect(said.error(function: nil).code == .protocolError)
    }

    @Test func theReactorReadsUnlessACallerDoes() {
        var sm = SM()
        #expect(sm.reactorReads)
        let taken = sm.callerStartsReading()
        #expect(taken && !sm.reactorReads)
        _ = sm.callerStopsReading()
        #expect(sm.reactorReads)
        _ = sm.socketEnded()
        #expect(!sm.reactorReads)
    }

    @Test func anExitSeenWhileACallerReadsWaitsForIt() {
        var sm = SM()
        _ = sm.submit([1], call: call(1))
        _ = sm.sendFinished()
        let reads = sm.callerStartsReading()
        #expect(reads)
        // The caller may be in the middle of reading the child's last answers: failing the call now would lose one.
        let handleNow = sm.childExitSeen(.signaled(9))
        #expect(handleNow == [] && sm.exit == .waitsForCaller(.signaled(9)))
        #expect(sm.pending[1] != nil)
        // Seen twice (a late wake-up): nothing more.
        let twice = sm.childExitSeen(.signaled(9))
        #expect(twice == [])
        let stopped = sm.callerStopsReading()
        #expect(stopped == [.handleExit(.signaled(9))])
        // No other caller starts reading a dead child's socket, while the reactor reads what is left.
        let again = sm.callerStartsReading()
        #expect(!again)
        guard case .failAndReport(let calls, _)? = sm.childExited(report()).last else {
            Issue.record("no report")
            return
        }
        #expect(calls.map(\.id) == [1])
        // Without a caller reading, the exit is handled at once, and no caller starts reading after it.
        var other = SM()
        let otherNow = other.childExitSeen(.exited(0))
        let otherReads = other.callerStartsReading()
        #expect(otherNow == [.handleExit(.exited(0))] && !otherReads)
        let otherAgain = other.childExitSeen(.exited(0))
        #expect(otherAgain == [])
    }

    @Test func aCallerDoesNotStartReadingWhileTheReactorHandsOutWhatItRead() {
        var sm = SM()
        let reactor = sm.reactorStartsReading()
        #expect(reactor)
        // The reactor may have taken the caller's answer: the caller waits for it to be handed out instead.
        let caller = sm.callerStartsReading()
        #expect(!caller)
        let stopped = sm.reactorStopsReading()
        #expect(stopped == [])
        let callerNow = sm.callerStartsReading()
        #expect(callerNow)
        // And the reactor, woken by a registration armed before, leaves the socket to the caller.
        let reactorNow = sm.reactorStartsReading()
        #expect(!reactorNow)
        _ = sm.callerStopsReading()
        let reactorAfter = sm.reactorStartsReading()
        #expect(reactorAfter)
    }

    @Test func aRefusedReaderThreadSleepsUntilTheHolderLetsGoAndIsWokenOnce() {
        var sm = SM()
        // Nobody holds the socket: the reader thread tries again at once rather than sleep.
        let r1 = sm.readerThreadWaits()
        #expect(!r1)
        _ = sm.reactorStartsReading()
        let r2 = sm.callerStartsReading()
        #expect(!r2)
        let r3 = sm.readerThreadWaits()
        #expect(r3)
        let r4 = sm.reactorStopsReading()
        #expect(r4 == [.wakeWaitingReader])
        let r5 = sm.callerStartsReading()
        #expect(r5)
        // Held by a caller that reads for itself (a `ChildWorker`'s waiting call), the same: woken when it stops, and
        // only then.
        var other = SM()
        _ = other.callerStartsReading()
        let r6 = other.readerThreadWaits()
        #expect(r6)
        let r7 = other.callerStopsReading()
        #expect(r7 == [.wakeWaitingReader])
        let r8 = other.reactorStartsReading()
        #expect(r8)
        let r9 = other.reactorStopsReading()
        #expect(r9 == [])
        // Once reading is over (the socket ended), it does not sleep: it returns.
        var ended = SM()
        _ = ended.reactorStartsReading()
        _ = ended.socketEnded()
        let r10 = ended.readerThreadWaits()
        #expect(!r10)
        #expect(ended.readingIsOver)
        // A caller that held the socket when the child's exit was seen wakes the reader, and hands over the exit.
        var exiting = SM()
        _ = exiting.callerStartsReading()
        let r11 = exiting.readerThreadWaits()
        #expect(r11)
        let r12 = exiting.childExitSeen(.signaled(4))
        #expect(r12 == [])
        let r13 = exiting.callerStopsReading()
        #expect(r13 == [.wakeWaitingReader, .handleExit(.signaled(4))])
        #expect(exiting.readingIsOver)
    }

    @Test func aTimeoutRacingAnAnswerDeliversTheAnswerAndFailsOnlyTheRest() {
        // The pool's timer for call 1 fires: it asks for the worker to be killed. The answer to call 1 was already
        // on its way, and arrives in the same read as the socket's end; then the child's exit is seen.
        var sm = SM()
        _ = sm.submit([1], call: call(1, "slow"))
        _ = sm.submit([2], call: call(2, "queued"))
        _ = sm.sendFinished()
        _ = sm.sendFinished()
        sm.helloReceived()
        #expect(sm.stopAsked(.kill) == [.kill(.kill)])
        let reading = sm.reactorStartsReading()
        #expect(reading)
        #expect(sm.answersReceived([1]) == [.answered([1])])
        _ = sm.reactorStopsReading()
        _ = sm.socketEnded()
        #expect(sm.childExitSeen(.signaled(9)) == [.handleExit(.signaled(9))])
        guard case .failAndReport(let calls, _)? = sm.childExited(report(.signaled(9), served: true)).last else {
            Issue.record("no report")
            return
        }
        // The answered call is not failed by the kill its own timeout asked for; the one behind it is.
        #expect(calls == [call(2, "queued")])
        // And an answer that comes after the death (from the page of unsent answers) finds nothing left to answer.
        #expect(sm.answersReceived([1, 2]) == [])
    }

    @Test func afterTheDeathEveryEntryPointRefusesOrDoesNothing() {
        var sm = SM()
        _ = sm.submit([1], call: call(1))
        _ = sm.sendFinished()
        _ = sm.childExitSeen(.exited(1))
        _ = sm.childExited(report(.exited(1)))
        #expect(sm.phase == .exited && sm.socketClosed)
        // A call submitted now fails at once with the death's error; queueing and flushing send nothing.
        guard case .failure(let error) = sm.submit([2], call: call(2)) else {
            Issue.record("a call to a dead child was taken")
            return
        }
        #expect(error.code == .workerCrashed)
        #expect(sm.queue([3], calls: [call(3)])?.code == .workerCrashed)
        #expect(sm.flush() == [])
        #expect(sm.pending.isEmpty)
        // The initializer of a dead child is refused too, and a late socket end, grace timer or stop does nothing.
        var dead = SM()
        _ = dead.childExitSeen(.signaled(9))
        _ = dead.childExited(report())
        #expect((try? dead.initialize([9], call: call(UInt64.max, "setup")).get()) == nil)
        #expect(dead.socketEnded() == [])
        #expect(dead.graceTimerFired() == [])
        #expect(dead.stopAsked(.terminate) == [])
        #expect(dead.closeAsked([0]) == [])
        #expect(dead.childExited(report()) == [])
    }

    @Test func theInitializerRunsFirstAndTheChildServesWhenItSucceeds() {
        var sm = SM()
        #expect(sent(sm.initialize([0], call: call(99, "setup"))) == [.send([0])])
        #expect(sm.phase == .starting)
        sm.helloReceived()
        #expect(sm.phase == .initializing && !sm.served)
        #expect(sm.answersReceived([99]) == [.answered([99])])
        #expect(sm.initializerFinished(succeeded: true) == [])
        #expect(sm.phase == .serving && sm.served && sm.initializerCall == nil)
        // Without an initializer, hello is enough.
        var plain = SM()
        plain.helloReceived()
        #expect(plain.phase == .serving && plain.served)
    }

    @Test func aHelloBeforeTheInitializerIsSentStillWaitsForIt() {
        var sm = SM()
        sm.helloReceived()
        #expect(sm.phase == .serving)
        // A pool sends its initializer once it hears the worker started, which may be after its hello.
        _ = sm.initialize([0], call: call(99, "setup"))
        #expect(sm.phase == .initializing && !sm.served)
        _ = sm.answersReceived([99])
        #expect(sm.initializerFinished(succeeded: true) == [] && sm.phase == .serving && sm.served)
    }

    @Test func aFailedInitializerKillsTheChildWhichNeverServed() {
        var sm = SM()
        _ = sm.initialize([0], call: call(99, "setup"))
        _ = sm.sendFinished()
        sm.helloReceived()
        _ = sm.answersReceived([99])
        #expect(sm.initializerFinished(succeeded: false) == [.kill(.kill)])
        #expect(sm.phase == .initializing)
        guard case .failAndReport(let calls, let said)? = sm.childExited(report()).last else {
            Issue.record("no report")
            return
        }
        #expect(calls.isEmpty && !said.served && said.initializing)
    }

    @Test func aKillDuringTheInitializerFailsItAndTheChildNeverServed() {
        var sm = SM()
        _ = sm.initialize([0], call: call(99, "setup"))
        _ = sm.sendFinished()
        sm.helloReceived()
        var died = report(.signaled(9), served: false)
        died.initializing = true
        let actions = sm.childExited(report(.signaled(9)))
        #expect(actions.last == .failAndReport(calls: [call(99, "setup")], died))
        #expect(died.error(function: "setup").message.contains("running its initializer"))
        #expect(sm.phase == .exited && sm.initializerCall == nil)
        // Its completion, told of the death, reports the initializer's end: nothing more is signalled.
        #expect(sm.initializerFinished(succeeded: false) == [])
        // Its socket may end before its exit is seen: still a death in the initializer.
        var drained = SM()
        _ = drained.initialize([0], call: call(99, "setup"))
        _ = drained.sendFinished()
        drained.helloReceived()
        _ = drained.socketEnded()
        guard case .failAndReport(_, let said)? = drained.childExited(report()).last else {
            Issue.record("no report")
            return
        }
        #expect(said.initializing && !said.served)
        // One that never said hello did not reach its initializer: the report says it never started.
        var early = SM()
        _ = early.initialize([0], call: call(99, "setup"))
        guard case .failAndReport(_, let never)? = early.childExited(report()).last else {
            Issue.record("no report")
            return
        }
        #expect(!never.initializing && never.error(function: nil).message.contains("Crew.bootstrap"))
    }

    @Test func aCloseAskedSendsTheShutdownAfterTheCallsAndNothingOnceEnded() {
        var sm = SM()
        _ = sm.submit([1], call: call(1))
        #expect(sm.closeAsked([7]) == [])  // Queued behind the call being sent.
        #expect(sm.sendFinished() == [.send([7])])
        _ = sm.sendFinished()
        _ = sm.socketEnded()
        #expect(sm.closeAsked([7]) == [])
        _ = sm.childExited(report(.exited(0)))
        #expect(sm.closeAsked([7]) == [])
    }

    @Test func aStopAskedSignalsTheChildUntilItHasExited() {
        var sm = SM()
        #expect(sm.stopAsked(.terminate) == [.kill(.terminate)])
        #expect(sm.stopAsked(.kill) == [.kill(.kill)])
        _ = sm.socketEnded()
        #expect(sm.stopAsked(.kill) == [.kill(.kill)])  // Draining: still a process.
        _ = sm.childExited(report())
        #expect(sm.stopAsked(.terminate) == [] && sm.stopAsked(.kill) == [])
        #expect(sm.protocolErrorReceived() == [])
        #expect(SM.Signal.terminate.number == SIGTERM && SM.Signal.kill.number == SIGKILL)
    }

    @Test func theSocketIsWatchedForWhatTheMachineWants() {
        var sm = SM()
        #expect(sm.socketInterest(afterEvent: false).map { [$0.read, $0.write] } == [true, false])
        _ = sm.submit([1, 2], call: call(1))
        _ = sm.sendBlocked(rest: [2])
        #expect(sm.socketInterest(afterEvent: true).map { [$0.read, $0.write] } == [true, true])
        _ = sm.sendFinished()
        _ = sm.callerStartsReading()
        // A caller reads and nobody writes: after an event the socket stays disarmed; a caller re-arms it for
        // nothing but the hang-up.
        #expect(sm.socketInterest(afterEvent: true) == nil)
        #expect(sm.socketInterest(afterEvent: false).map { [$0.read, $0.write] } == [false, false])
        _ = sm.callerStopsReading()
        _ = sm.socketEnded()
        #expect(sm.socketInterest(afterEvent: false) == nil)
    }
}
