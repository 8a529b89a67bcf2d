import CrewTestHelpers
import Testing

@testable import Crew

/// The pool's bookkeeping, without processes: events in, actions out.
@Suite struct PoolStateMachineTests {
    typealias SM = PoolStateMachine
    let ms: UInt64 = 1_000_000

    /// A running pool of `n` started workers (ids 0..<n).
    func running(_ n: Int, _ configure: (inout SM.Configuration) -> Void = { _ in }) -> SM {
        var configuration = SM.Configuration(processes: n)
        configure(&configuration)
        var sm = SM(configuration)
        #expect(sm.start() == (0..<n).map { .spawn($0) })
        for id in 0..<n { #expect(sm.workerStarted(id, now: 0) == []) }
        return sm
    }

    func sends(_ actions: [SM.Action]) -> [Int: [UInt64]] {
        var result: [Int: [UInt64]] = [:]
        for case .send(let worker, let tasks, _) in actions { result[worker, default: []] += tasks }
        return result
    }

    @Test func anUnknownPoolGivesEachWorkerOneTaskAtATime() {
        var sm = running(2)
        var actions: [SM.Action] = []
        for id in 1...5 as ClosedRange<UInt64> { actions += sm.submit(id, synchronous: true, timeout: nil, now: 0) }
        #expect(sends(actions) == [0: [1], 1: [2]])
        #expect(sm.queuedCount == 3)
        // A 3 s task finishes: its worker gets the next one, and only one (calls are long).
        actions = sm.taskFinished(1, worker: 0, now: 3000 * ms)
        #expect(sends(actions) == [0: [3]])
        actions = sm.taskFinished(2, worker: 1, now: 3000 * ms)
        #expect(sends(actions) == [1: [4]])
    }

    @Test func shortCallsArePipelined() {
        var sm = running(2) { $0.maxInFlight = 8 }
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        _ = sm.taskFinished(1, worker: 0, now: 10_000)  // 10 µs: short
        var actions: [SM.Action] = []
        for id in 2...41 as ClosedRange<UInt64> {
            actions += sm.submit(id, synchronous: true, timeout: nil, now: 20_000)
        }
        let batches = sends(actions)
        #expect(batches[0]?.count == 8 && batches[1]?.count == 8)
        #expect(sm.queuedCount == 40 - 16)
    }

    @Test func aWorkerHoldsAboutTwoMillisecondsOfExpectedWork() {
        var sm = running(1) { $0.maxInFlight = 256 }
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        _ = sm.taskFinished(1, worker: 0, now: 100_000)  // 100 µs a call: 20 of them make 2 ms
        let actions = sm.submitMany(Array(2...101), synchronous: true, timeout: nil, now: 200_000)
        #expect(sends(actions)[0]?.count == 20)
        #expect(sm.queuedCount == 80)
    }

    @Test func callsAnsweredTogetherShareTheTimeTheyTook() {
        var sm = running(1) { $0.maxInFlight = 4 }
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        _ = sm.taskFinished(1, worker: 0, now: 10_000)
        _ = sm.submitMany([2, 3, 4, 5], synchronous: true, timeout: nil, now: 10_000)
        // Four answers in one read, 400 µs after the first of them started: 100 µs each, not 400.
        _ = sm.tasksFinished([2, 3, 4, 5], worker: 0, now: 410_000)
        #expect(sm.averageNanoseconds! < 200_000)
    }

    @Test func aChunkCountsAsItsCallsInTheAverage() {
        var sm = running(1) { $0.maxInFlight = 256 }
        // A chunk of 1000 calls that took 5 ms is 5 µs a call: single calls after it are short ones.
        _ = sm.submitMany([1], synchronous: true, timeout: nil, calls: 1000, now: 0)
        _ = sm.taskFinished(1, worker: 0, now: 5 * ms)
        #expect(sm.averageNanoseconds == 5_000)
        let actions = sm.submitMany(Array(2...301), synchronous: true, timeout: nil, now: 6 * ms)
        #expect(sends(actions)[0]?.count == 256)
        // And a chunk of 1000 such calls is long (5 ms): a worker holds one at a time.
        _ = sm.tasksFinished(Array(2...257), worker: 0, now: 7 * ms)
        _ = sm.tasksFinished(Array(258...301), worker: 0, now: 7 * ms + 200_000)
        let chunks = sm.submitMany([400, 401], synchronous: true, timeout: nil, calls: 1000, now: 8 * ms)
        #expect(sends(chunks) == [0: [400]])
        #expect(sm.queuedCount == 1)
    }

    @Test func tasksSubmittedTogetherGoOutAsOneSendPerWorker() {
        var sm = running(2) { $0.maxInFlight = 8 }
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        _ = sm.taskFinished(1, worker: 0, now: 10_000)  // short calls
        let actions = sm.submitMany(Array(2...41), synchronous: true, timeout: nil, now: 20_000)
        let sendActions = actions.filter { if case .send = $0 { true } else { false } }
        #expect(sendActions.count == 2)
        // Least loaded first, in queue order: the workers take turns until each holds its eight.
        #expect(sends(actions) == [0: [2, 4, 6, 8, 10, 12, 14, 16], 1: [3, 5, 7, 9, 11, 13, 15, 17]])
        #expect(sm.queuedCount == 40 - 16)
        // The rest go out as answers come back, and every task is handed out exactly once.
        var handedOut = sends(actions).values.flatMap { $0 }
        var now: UInt64 = 30_000
        while sm.queuedCount > 0 || !sm.workers.isEmpty && handedOut.count < 40 {
            for worker in 0..<2 {
                let held = sm.workers[worker]!.inFlight
                guard !held.isEmpty else { continue }
                handedOut += sends(sm.tasksFinished(held, worker: worker, now: now)).values.flatMap { $0 }
                now += 10_000
            }
        }
        #expect(handedOut.sorted() == Array(2...41))
    }

    @Test func aBrokenPoolFailsEveryTaskSubmittedTogether() {
        var sm = running(1) { $0.maxFailedStarts = 1 }
        _ = sm.workerExited(0, served: false, progress: nil, now: 0)
        #expect(sm.broken)
        #expect(
            sm.submitMany([7, 8], synchronous: true, timeout: nil, now: 0) == [.fail(7, .broken), .fail(8, .broken)])
    }

    @Test func nothingQueuesBehindACallThatRunsLong() {
        var sm = running(2) { $0.maxInFlight = 8 }
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        _ = sm.taskFinished(1, worker: 0, now: 10_000)
        _ = sm.submit(2, synchronous: true, timeout: nil, now: 100_000)  // to worker 0 (least loaded, id order)
        _ = sm.submit(3, synchronous: true, timeout: nil, now: 100_000)  // to worker 1
        // 50 ms later both calls still run: new work waits in the queue rather than behind them.
        let actions = sm.submit(4, synchronous: true, timeout: nil, now: 50 * ms)
        #expect(sends(actions).isEmpty)
        #expect(sm.queuedCount == 1)
    }

    @Test func aCrashFailsTheRunningCallAndRequeuesTheOthers() {
        var sm = running(1) { $0.maxInFlight = 8 }
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        _ = sm.taskFinished(1, worker: 0, now: 1000)
        var actions: [SM.Action] = []
        for id in 2...4 as ClosedRange<UInt64> { actions += sm.submit(id, synchronous: true, timeout: nil, now: 2000) }
        #expect(sends(actions) == [0: [2, 3, 4]])
        actions = sm.workerExited(0, served: true, now: 3000)
        #expect(actions.contains(.fail(2, .crashed(0))))
        #expect(!actions.contains(.fail(3, .crashed(0))) && !actions.contains(.fail(4, .crashed(0))))
        #expect(actions.contains(.spawn(1)))
        #expect(sm.queuedCount == 2)
        // The replacement gets the requeued calls, in their order.
        actions = sm.workerStarted(1, now: 4000)
        #expect(sends(actions) == [1: [3, 4]])
    }

    @Test func theProgressPageSaysWhichCallRanWhichFinishedAndWhichNeverStarted() {
        var sm = running(1) { $0.maxInFlight = 8 }
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        _ = sm.taskFinished(1, worker: 0, now: 1000)
        for id in 2...6 as ClosedRange<UInt64> { _ = sm.submit(id, synchronous: true, timeout: nil, now: 2000) }
        // Calls 2 and 3 finished (their results were not sent), 4 was running, 5 and 6 never started.
        let actions = sm.workerExited(0, served: true, progress: WorkerProgress(started: 4, finished: 3), now: 3000)
        #expect(actions.contains(.fail(2, .lost(0))) && actions.contains(.fail(3, .lost(0))))
        #expect(actions.contains(.fail(4, .crashed(0))))
        #expect(sm.queuedCount == 2)
        #expect(sends(sm.workerStarted(1, now: 4000)) == [1: [5, 6]])
    }

    @Test func aWorkerKilledBetweenCallsFailsNothing() {
        var sm = running(1) { $0.maxInFlight = 8 }
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        _ = sm.taskFinished(1, worker: 0, now: 1000)
        _ = sm.submit(2, synchronous: true, timeout: nil, now: 2000)
        _ = sm.submit(3, synchronous: true, timeout: nil, now: 2000)
        // The last call it started (1) was answered: 2 and 3 never started.
        let actions = sm.workerExited(0, served: true, progress: WorkerProgress(started: 1, finished: 1), now: 3000)
        #expect(!actions.contains { if case .fail = $0 { true } else { false } })
        #expect(sm.queuedCount == 2)
        // A call that finished but whose result was lost is reported so, not as a crash.
        _ = sm.workerStarted(1, now: 4000)
        let lost = sm.workerExited(1, served: true, progress: WorkerProgress(started: 2, finished: 2), now: 5000)
        #expect(lost.contains(.fail(2, .lost(1))))
    }

    @Test func aWorkerThatDiesBeforeServingDoesNotBounceItsCallsForever() {
        var sm = SM(SM.Configuration(processes: 1, maxFailedStarts: 2))
        _ = sm.start()
        _ = sm.workerStarted(0, now: 0)
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        #expect(
            sm.workerExited(0, served: false, progress: WorkerProgress(started: 0, finished: 0), now: 1) == [.spawn(1)])
        _ = sm.workerStarted(1, now: 2)
        let actions = sm.workerExited(1, served: false, progress: WorkerProgress(started: 0, finished: 0), now: 3)
        #expect(actions.contains(.fail(1, .broken)))
    }

    @Test func coroutinesEachCountsTheCallsOfAsyncChunks() {
        // Twenty at once per worker: single calls go twenty to a worker, chunks of ten two to a worker.
        var sm = running(1) { $0.asyncInFlight = 20 }
        var actions = sm.submitMany(Array(1...30), synchronous: false, timeout: nil, now: 0)
        #expect(sends(actions)[0]?.count == 20)
        sm = running(1) { $0.asyncInFlight = 20 }
        actions = sm.submitMany(Array(1...5), synchronous: false, timeout: nil, calls: 10, now: 0)
        #expect(sends(actions)[0] == [1, 2])
        #expect(sm.queuedCount == 3)
        // A chunk larger than the limit still goes, alone.
        sm = running(1) { $0.asyncInFlight = 20 }
        actions = sm.submitMany(Array(1...3), synchronous: false, timeout: nil, calls: 50, now: 0)
        #expect(sends(actions)[0] == [1])
    }

    @Test func aCrashFailsEveryAsyncCallItHeld() {
        var sm = running(1) { $0.maxInFlight = 8 }
        _ = sm.submit(1, synchronous: false, timeout: nil, now: 0)
        _ = sm.taskFinished(1, worker: 0, now: 1000)
        _ = sm.submit(2, synchronous: false, timeout: nil, now: 2000)
        _ = sm.submit(3, synchronous: false, timeout: nil, now: 2000)
        let actions = sm.workerExited(0, served: true, now: 3000)
        // Either may have caused the death.
        #expect(actions.contains(.fail(2, .diedWithOthers(0))) && actions.contains(.fail(3, .diedWithOthers(0))))
        #expect(sm.queuedCount == 0)
    }

    @Test func otherWorkersAreUntouchedByACrash() {
        var sm = running(2)
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        _ = sm.submit(2, synchronous: true, timeout: nil, now: 0)
        let actions = sm.workerExited(0, served: true, now: 10)
        #expect(actions.contains(.fail(1, .crashed(0))))
        #expect(!actions.contains { if case .fail(2, _) = $0 { true } else { false } })
        #expect(sm.tasks[2]?.worker == 1)
    }

    @Test func aTimeoutTermsThenKillsThenFailsAndReplaces() {
        var sm = running(1)
        var actions = sm.submit(1, synchronous: true, timeout: 100 * ms, now: 0)
        #expect(actions.contains(.startTimer(1, 100 * ms)))
        actions = sm.timeoutFired(1)
        #expect(actions == [.signal(0, .terminate), .startGraceTimer(0, 500 * ms)])
        #expect(sm.graceExpired(0) == [.signal(0, .kill)])
        actions = sm.workerExited(0, served: true, now: 700 * ms)
        #expect(actions.contains(.fail(1, .timedOut(0))))
        #expect(actions.contains(.spawn(1)))
        // The grace timer of a worker that is gone does nothing.
        #expect(sm.graceExpired(0) == [])
    }

    @Test func onlyTheRunningSynchronousCallIsTimed() {
        var sm = running(1) { $0.maxInFlight = 4 }
        _ = sm.submit(9, synchronous: true, timeout: nil, now: 0)
        _ = sm.taskFinished(9, worker: 0, now: 100)
        var actions = sm.submit(1, synchronous: true, timeout: 50 * ms, now: 200)
        actions += sm.submit(2, synchronous: true, timeout: 70 * ms, now: 200)
        #expect(actions.filter { if case .startTimer = $0 { true } else { false } } == [.startTimer(1, 50 * ms)])
        actions = sm.taskFinished(1, worker: 0, now: 1000)
        #expect(actions.contains(.cancelTimer(1)))
        #expect(actions.contains(.startTimer(2, 70 * ms)))
        // A timeout that fires after its call finished does nothing.
        #expect(sm.timeoutFired(1) == [])
    }

    @Test func anAsyncCallsTimerIsCancelledWhenItIsAnsweredOrItsWorkerDies() {
        var sm = running(1) { $0.maxInFlight = 4 }
        _ = sm.submit(9, synchronous: false, timeout: nil, now: 0)
        _ = sm.taskFinished(9, worker: 0, now: 100)
        var actions = sm.submit(1, synchronous: false, timeout: 50 * ms, now: 200)
        actions += sm.submit(2, synchronous: false, timeout: 70 * ms, now: 200)
        actions += sm.submit(3, synchronous: false, timeout: 90 * ms, now: 200)
        // Async calls run together: each has a timer of its own.
        #expect(
            actions.filter { if case .startTimer = $0 { true } else { false } }
                == [.startTimer(1, 50 * ms), .startTimer(2, 70 * ms), .startTimer(3, 90 * ms)])
        actions = sm.taskFinished(2, worker: 0, now: 1000)
        #expect(actions.contains(.cancelTimer(2)))
        #expect(!actions.contains(.cancelTimer(1)) && !actions.contains(.cancelTimer(3)))
        // The worker dies: the timers of the calls it held go with them.
        actions = sm.workerExited(0, served: true, now: 2000)
        #expect(actions.contains(.cancelTimer(1)) && actions.contains(.cancelTimer(3)))
        #expect(!actions.contains(.cancelTimer(2)))
    }

    @Test func aTimedOutWorkerRequeuesTheCallsBehindIt() {
        var sm = running(1) { $0.maxInFlight = 4 }
        _ = sm.submit(9, synchronous: true, timeout: nil, now: 0)
        _ = sm.taskFinished(9, worker: 0, now: 100)
        _ = sm.submit(1, synchronous: true, timeout: 50 * ms, now: 200)
        _ = sm.submit(2, synchronous: true, timeout: nil, now: 200)
        _ = sm.timeoutFired(1)
        let actions = sm.workerExited(0, served: true, now: 60 * ms)
        #expect(actions.contains(.fail(1, .timedOut(0))))
        #expect(!actions.contains { if case .fail(2, _) = $0 { true } else { false } })
        #expect(sm.queuedCount == 1)
    }

    @Test func workersAreRecycledAfterMaxTasks() {
        var sm = running(1) { $0.maxTasksPerChild = 2 }
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        _ = sm.submit(2, synchronous: true, timeout: nil, now: 0)
        _ = sm.submit(3, synchronous: true, timeout: nil, now: 0)
        _ = sm.taskFinished(1, worker: 0, now: 10)
        let actions = sm.taskFinished(2, worker: 0, now: 20)
        #expect(actions.contains(.shutdown(0)))
        #expect(actions.contains(.spawn(1)))
        // The old worker's exit starts no second replacement.
        #expect(!sm.workerExited(0, served: true, now: 30).contains { if case .spawn = $0 { true } else { false } })
        #expect(sends(sm.workerStarted(1, now: 40)) == [1: [3]])
    }

    @Test func closeLetsTheQueueFinishThenEnds() {
        var sm = running(1)
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        _ = sm.submit(2, synchronous: true, timeout: nil, now: 0)
        #expect(sm.close() == [])
        #expect(sends(sm.taskFinished(1, worker: 0, now: 5 * ms)) == [0: [2]])
        #expect(sm.taskFinished(2, worker: 0, now: 10 * ms) == [.shutdown(0)])
        #expect(sm.workerExited(0, served: true, now: 11 * ms) == [.finished])
    }

    @Test func closeOfAnIdlePoolShutsEveryWorkerDown() {
        var sm = running(2)
        #expect(sm.close() == [.shutdown(0), .shutdown(1)])
        #expect(sm.workerExited(0, served: true, now: 1) == [])
        #expect(sm.workerExited(1, served: true, now: 2) == [.finished])
    }

    @Test func aCrashInAClosedPoolWithWorkLeftIsReplaced() {
        var sm = running(1)
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        _ = sm.submit(2, synchronous: true, timeout: nil, now: 0)
        _ = sm.close()
        let actions = sm.workerExited(0, served: true, now: 1)
        #expect(actions.contains(.fail(1, .crashed(0))))
        #expect(actions.contains(.spawn(1)))
    }

    @Test func terminateFailsEverythingAndKillsEveryWorker() {
        var sm = running(2)
        for id in 1...4 as ClosedRange<UInt64> { _ = sm.submit(id, synchronous: true, timeout: 10 * ms, now: 0) }
        var sm2 = sm
        let actions = sm.terminate()
        for id in 1...4 as ClosedRange<UInt64> { #expect(actions.contains(.fail(id, .terminated))) }
        #expect(actions.contains(.signal(0, .kill)) && actions.contains(.signal(1, .kill)))
        #expect(actions.contains(.cancelTimer(1)) && actions.contains(.cancelTimer(2)))
        #expect(sm.workerExited(0, served: true, now: 1) == [])
        #expect(sm.workerExited(1, served: true, now: 2) == [.finished])
        // A worker still starting when the pool is terminated is killed when it appears.
        var sm3 = SM(SM.Configuration(processes: 1))
        _ = sm3.start()
        _ = sm3.terminate()
        #expect(sm3.workerStarted(0, now: 0) == [.signal(0, .kill)])
        #expect(sm3.workerExited(0, served: false, now: 1) == [.finished])
        _ = sm2.close()
        #expect(!sm2.terminate().isEmpty)
    }

    @Test func workersThatDieBeforeServingBreakThePoolInsteadOfLooping() {
        var sm = SM(SM.Configuration(processes: 1, maxFailedStarts: 3))
        _ = sm.start()
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        #expect(sm.workerExited(0, served: false, now: 1) == [.spawn(1)])
        #expect(sm.workerExited(1, served: false, now: 2) == [.spawn(2)])
        #expect(sm.workerExited(2, served: false, now: 3) == [.fail(1, .broken)])
        #expect(sm.broken)
        #expect(sm.submit(2, synchronous: true, timeout: nil, now: 4) == [.fail(2, .broken)])
        #expect(sm.close() == [.finished])
    }

    @Test func aFailedSpawnCountsAsAFailedStart() {
        var sm = SM(SM.Configuration(processes: 1, maxFailedStarts: 2))
        _ = sm.start()
        #expect(sm.workerFailedToStart(0, now: 0) == [.spawn(1)])
        #expect(sm.workerFailedToStart(1, now: 0) == [])
        #expect(sm.broken)
    }

    @Test func eventsForUnknownWorkersAndTasksAreIgnored() {
        var sm = running(1)
        #expect(sm.taskFinished(42, worker: 0, now: 0) == [])
        #expect(sm.taskFinished(1, worker: 7, now: 0) == [])
        #expect(sm.workerExited(7, served: true, now: 0) == [])
        #expect(sm.timeoutFired(42) == [])
        #expect(sm.workerStarted(7, now: 0) == [])
    }

    @Test func loadGoesToTheLeastLoadedWorker() {
        var sm = running(3) { $0.maxInFlight = 4 }
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        _ = sm.taskFinished(1, worker: 0, now: 1000)
        var actions: [SM.Action] = []
        for id in 2...7 as ClosedRange<UInt64> { actions += sm.submit(id, synchronous: true, timeout: nil, now: 2000) }
        let batches = sends(actions)
        #expect(batches.values.map(\.count).sorted() == [2, 2, 2])
    }

    // MARK: The initializer, urgency, races

    @Test func aNewWorkerRunsTheInitializerBeforeItGetsTasks() {
        var configuration = SM.Configuration(processes: 1)
        configuration.initializer = true
        var sm = SM(configuration)
        #expect(sm.start() == [.spawn(0)])
        #expect(sends(sm.submit(1, synchronous: true, timeout: nil, now: 0)).isEmpty)
        #expect(sm.workerStarted(0, now: 0) == [.initialize(0)])
        #expect(sm.workers[0]?.phase == .initializing)
        #expect(sm.submit(2, synchronous: true, timeout: nil, now: 0) == [])  // Still nothing for it.
        let actions = sm.workerInitialized(0, succeeded: true, now: 0)
        #expect(actions.contains(.send(0, [1], urgent: true)))
        #expect(sm.workers[0]?.phase == .running)
    }

    @Test func aFailedInitializerCountsAsAFailedStart() {
        var configuration = SM.Configuration(processes: 1)
        configuration.initializer = true
        configuration.maxFailedStarts = 2
        var sm = SM(configuration)
        _ = sm.start()
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        for worker in 0..<2 {
            #expect(sm.workerStarted(worker, now: 0) == [.initialize(worker)])
            // Its connection kills it (ChildConnectionStateMachineTests); the pool only notes why it ends.
            #expect(sm.workerInitialized(worker, succeeded: false, now: 0) == [])
            #expect(sm.initializerFailed(worker))
            // It had said hello (it served the initializer call), yet its exit is a failed start.
            let actions = sm.workerExited(worker, served: true, now: 0)
            if worker == 0 {
                #expect(actions.contains(.spawn(1)))
            } else {
                #expect(actions.contains(.fail(1, .broken)) && !actions.contains(.spawn(2)))
            }
        }
        #expect(sm.broken)
    }

    @Test func aKillDuringTheInitializerEndsTheWorkerAndStartsNoOther() {
        var configuration = SM.Configuration(processes: 1)
        configuration.initializer = true
        var sm = SM(configuration)
        _ = sm.start()
        _ = sm.workerStarted(0, now: 0)
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        let actions = sm.terminate()
        #expect(actions.contains(.fail(1, .terminated)) && actions.contains(.signal(0, .kill)))
        #expect(sm.workerInitialized(0, succeeded: true, now: 0) == [])  // Too late: it is being killed.
        let exit = sm.workerExited(0, served: true, now: 0)
        #expect(exit == [.finished] && !sm.broken)
    }

    @Test func anAnswerThatBeatsTheDeathOfATimedOutWorkerIsAnAnswer() {
        var sm = running(1)
        _ = sm.submit(1, synchronous: true, timeout: 100 * ms, now: 0)
        #expect(sm.timeoutFired(1) == [.signal(0, .terminate), .startGraceTimer(0, 500 * ms)])
        // The answer arrives after the timeout fired but before the worker died: the call succeeded.
        _ = sm.taskFinished(1, worker: 0, now: 110 * ms)
        let actions = sm.workerExited(0, served: true, now: 120 * ms)
        #expect(!actions.contains { if case .fail(1, _) = $0 { true } else { false } })
        // And a timeout that fires after the answer does nothing.
        _ = sm.workerStarted(1, now: 130 * ms)
        _ = sm.submit(2, synchronous: true, timeout: 100 * ms, now: 130 * ms)
        _ = sm.taskFinished(2, worker: 1, now: 140 * ms)
        #expect(sm.timeoutFired(2) == [])
    }

    @Test func sendsAreUrgentForAnIdleWorkerOrAsyncTasksOnly() {
        var sm = running(1) { $0.maxInFlight = 8 }
        _ = sm.submit(1, synchronous: true, timeout: nil, now: 0)
        _ = sm.taskFinished(1, worker: 0, now: 10_000)  // Short calls: the worker holds several.
        #expect(sm.submit(2, synchronous: true, timeout: nil, now: 20_000) == [.send(0, [2], urgent: true)])
        // The worker is busy with 2: 3 rides with its next write.
        #expect(sm.submit(3, synchronous: true, timeout: nil, now: 20_000) == [.send(0, [3], urgent: false)])
    }
}
