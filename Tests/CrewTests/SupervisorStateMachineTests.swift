import Testing

@testable import Crew

/// The supervisor's decisions, without processes: each transition of gunicorn's arbiter, on a clock of numbers.
@Suite struct SupervisorStateMachineTests {
    typealias SM = SupervisorStateMachine
    static let ms: UInt64 = 1_000_000
    static let s: UInt64 = 1_000_000_000

    func machine(_ workers: Int = 2, _ change: (inout SM.Configuration) -> Void = { _ in }) -> SM {
        var configuration = SM.Configuration(workers: workers)
        change(&configuration)
        return SM(configuration: configuration)
    }

    /// Starts every worker the actions ask for, with pid 100 + id, and makes them ready.
    func startAndReady(_ sm: inout SM, _ actions: [SM.Action], now: UInt64) {
        for case .spawn(let id) in actions {
            _ = sm.spawned(id, pid: Int32(100 + id), now: now)
            _ = sm.ready(id, now: now)
        }
    }

    func spawns(_ actions: [SM.Action]) -> [SM.WorkerID] {
        actions.compactMap { if case .spawn(let id) = $0 { id } else { nil } }
    }

    func signals(_ actions: [SM.Action]) -> [String] {
        actions.compactMap { if case .signal(let id, _, let signal) = $0 { "\(id):\(signal)" } else { nil } }
    }

    @Test func startSpawnsTheWorkersWhichBootThenServe() {
        var sm = machine(3)
        let started = sm.start(now: 0)
        #expect(started == [.spawn(1), .spawn(2), .spawn(3)])
        #expect(sm.start(now: 1) == [])
        #expect(sm.spawned(1, pid: 101, now: 5 * Self.ms) == [])
        #expect(sm.workers[1]?.state == .booting)
        #expect(sm.ready(1, now: 6 * Self.ms) == [])
        #expect(sm.workers[1]?.state == .ready)
        #expect(sm.pids == [1: 101])
    }

    @Test func aWorkerThatDiesAfterServingLongIsReplacedAtOnce() {
        var sm = machine(2)
        startAndReady(&sm, sm.start(now: 0), now: 0)
        let died = sm.exited(1, .failed("killed by signal 9 (SIGKILL)"), now: 10 * Self.s)
        #expect(
            died == [.log(.died(1, .failed("killed by signal 9 (SIGKILL)"), restartAfterNanoseconds: 0)), .spawn(3)])
    }

    @Test func workersThatDieEarlyAreRestartedWithAGrowingBackoff() {
        var sm = machine(1) { $0.crashLoopDeaths = 100 }
        startAndReady(&sm, sm.start(now: 0), now: 0)
        // Ready, then dead within a second: a backoff of 100 ms, then 200, 400…
        var now = 100 * Self.ms
        var id = 1
        var delays: [UInt64] = []
        for _ in 0..<4 {
            let actions = sm.exited(id, .failed("trap"), now: now)
            guard case .log(.died(_, _, let delay?)) = actions.first else {
                Issue.record("no death logged: \(actions)")
                return
            }
            delays.append(delay)
            #expect(spawns(actions) == [])
            #expect(sm.nextDeadline == now + delay)
            // Nothing starts before the backoff is over.
            #expect(spawns(sm.tick(now: now + delay - 1)) == [])
            now += delay
            let restarted = sm.tick(now: now)
            #expect(spawns(restarted).count == 1)
            id = spawns(restarted)[0]
            _ = sm.spawned(id, pid: 500, now: now)
            _ = sm.ready(id, now: now)
            now += 10 * Self.ms
        }
        #expect(delays == [100 * Self.ms, 200 * Self.ms, 400 * Self.ms, 800 * Self.ms])
        // A worker that then serves for long resets it.
        let stable = sm.exited(id, .failed("trap"), now: now + 5 * Self.s)
        #expect(stable.first == .log(.died(id, .failed("trap"), restartAfterNanoseconds: 0)))
        #expect(spawns(stable).count == 1)
    }

    @Test func theBackoffStopsAtItsMaximum() {
        var sm = machine(1) {
            $0.crashLoopDeaths = 1_000
            $0.backoffMaxNanoseconds = 1 * Self.s
        }
        startAndReady(&sm, sm.start(now: 0), now: 0)
        var now: UInt64 = 1
        var id = 1
        var last: UInt64 = 0
        for _ in 0..<50 {
            let actions = sm.exited(id, .failed("trap"), now: now)
            guard case .log(.died(_, _, let delay?)) = actions.first else { return }
            last = delay
            now += delay
            id = spawns(sm.tick(now: now))[0]
            _ = sm.spawned(id, pid: 1, now: now)
            _ = sm.ready(id, now: now)
        }
        #expect(last == 1 * Self.s)
    }

    @Test func workersThatNeverGetReadyStopTheServerAsACrashLoop() {
        var sm = machine(2) {
            $0.crashLoopDeaths = 3
            $0.crashLoopWindowNanoseconds = 10 * Self.s
        }
        _ = sm.start(now: 0)
        _ = sm.spawned(1, pid: 101, now: 0)
        _ = sm.spawned(2, pid: 102, now: 0)
        _ = sm.ready(2, now: 0)
        // Worker 1 dies while booting, twice (its replacement too), then a third time: the server stops.
        let first = sm.exited(1, .failed("exited with status 1"), now: 1 * Self.s)
        #expect(sm.phase == .running)
        let second = spawns(sm.tick(now: first.isEmpty ? 0 : 2 * Self.s))
        #expect(second.count == 1)
        _ = sm.spawned(second[0], pid: 103, now: 2 * Self.s)
        _ = sm.exited(second[0], .failed("exited with status 1"), now: 2 * Self.s)
        let third = spawns(sm.tick(now: 3 * Self.s))
        let last = sm.spawnFailed(third[0], reason: "fork failed", now: 3 * Self.s)
        #expect(last.first == .log(.died(third[0], .failed("fork failed"), restartAfterNanoseconds: nil)))
        let reason = SM.StopReason.crashLoop(deaths: 3, windowNanoseconds: 10 * Self.s)
        #expect(sm.phase == .stopping(reason, deadline: 3 * Self.s + sm.configuration.gracefulTimeoutNanoseconds))
        #expect(reason.exitStatus == 3)
        // The healthy worker is stopped gracefully; when it exits, the supervisor exits with status 3.
        #expect(sm.workers[2]?.isStopping == true)
        #expect(sm.exited(2, .clean, now: 4 * Self.s) == [.exit(status: 3)])
        #expect(sm.phase == .stopped)
    }

    @Test func bootFailuresOutsideTheWindowDoNotAddUp() {
        var sm = machine(1) {
            $0.crashLoopDeaths = 2
            $0.crashLoopWindowNanoseconds = 1 * Self.s
            $0.backoffNanoseconds = 1
        }
        _ = sm.start(now: 0)
        _ = sm.exited(1, .failed("boot"), now: 0)
        let next = spawns(sm.tick(now: 5 * Self.s))
        _ = sm.exited(next[0], .failed("boot"), now: 5 * Self.s)
        #expect(sm.phase == .running)
    }

    @Test func aTrapInAServingWorkerNeverStopsTheServer() {
        // Deaths after readiness are a request's fault, not the server's: any number of them restart the worker.
        var sm = machine(1) { $0.crashLoopDeaths = 2 }
        startAndReady(&sm, sm.start(now: 0), now: 0)
        var now: UInt64 = 0
        var id = 1
        for _ in 0..<20 {
            now += 20 * Self.s
            let actions = sm.exited(id, .failed("SIGILL"), now: now)
            #expect(sm.phase == .running)
            id = spawns(actions + sm.tick(now: now + 20 * Self.s))[0]
            _ = sm.spawned(id, pid: 1, now: now)
            _ = sm.ready(id, now: now)
        }
    }

    @Test func aCleanExitAfterServingIsARecycleReplacedAtOnce() {
        var sm = machine(2)
        startAndReady(&sm, sm.start(now: 0), now: 0)
        #expect(sm.exited(2, .clean, now: 50 * Self.ms) == [.log(.recycled(2)), .spawn(3)])
    }

    @Test func aSilentWorkerIsTerminatedThenKilledAndReplaced() {
        var sm = machine(2) {
            $0.timeoutNanoseconds = 30 * Self.s
            $0.killGraceNanoseconds = 5 * Self.s
        }
        startAndReady(&sm, sm.start(now: 0), now: 0)
        sm.heartbeat(1, now: 20 * Self.s)
        #expect(sm.nextDeadline == 30 * Self.s)
        #expect(sm.tick(now: 29 * Self.s) == [])
        // Worker 2 has been silent for 30 s; worker 1 beat at 20 s.
        let late = sm.tick(now: 30 * Self.s)
        #expect(late == [.log(.timedOut(2)), .signal(2, pid: 102, .terminate), .spawn(3)])
        #expect(sm.nextDeadline == 35 * Self.s)
        // It ignores SIGTERM (its event loop is blocked): SIGKILL after the grace.
        let killed = sm.tick(now: 35 * Self.s)
        #expect(killed == [.log(.killedAfterGrace(2)), .signal(2, pid: 102, .kill)])
        #expect(sm.tick(now: 36 * Self.s).filter { if case .signal = $0 { true } else { false } } == [])
        // Its exit asks for nothing more: its replacement already runs.
        #expect(sm.exited(2, .failed("killed by signal 9"), now: 36 * Self.s) == [])
    }

    @Test func aWorkerThatNeverGetsReadyTimesOutToo() {
        var sm = machine(1) { $0.timeoutNanoseconds = 10 * Self.s }
        _ = sm.start(now: 0)
        _ = sm.spawned(1, pid: 101, now: 1 * Self.s)
        #expect(sm.nextDeadline == 11 * Self.s)
        #expect(signals(sm.tick(now: 11 * Self.s)) == ["1:terminate"])
    }

    @Test func withoutATimeoutSilenceIsNeverPunished() {
        var sm = machine(1) { $0.timeoutNanoseconds = nil }
        startAndReady(&sm, sm.start(now: 0), now: 0)
        #expect(sm.nextDeadline == nil)
        #expect(sm.tick(now: 1_000 * Self.s) == [])
    }

    @Test func aGracefulStopTerminatesEveryWorkerKillsAtTheDeadlineAndExitsZero() {
        var sm = machine(3) { $0.gracefulTimeoutNanoseconds = 30 * Self.s }
        let started = sm.start(now: 0)
        startAndReady(&sm, Array(started.prefix(2)), now: 0)  // Worker 3 is still being started.
        let stop = sm.command(.stop, now: 1 * Self.s)
        #expect(stop.first == .log(.stopping(.asked)))
        #expect(signals(stop) == ["1:terminate", "2:terminate"])
        // Worker 3 gets its pid now: it is told to stop at once.
        #expect(sm.spawned(3, pid: 103, now: 2 * Self.s) == [.signal(3, pid: 103, .terminate)])
        // Nothing is restarted while stopping.
        #expect(sm.exited(1, .clean, now: 3 * Self.s) == [])
        #expect(sm.exited(3, .failed("SIGILL"), now: 3 * Self.s) == [])
        // Worker 2 is still busy at the deadline: killed.
        #expect(sm.nextDeadline == 31 * Self.s)
        #expect(signals(sm.tick(now: 31 * Self.s)) == ["2:kill"])
        #expect(sm.exited(2, .failed("killed by signal 9"), now: 31 * Self.s) == [.exit(status: 0)])
        #expect(sm.command(.reload, now: 32 * Self.s) == [])
    }

    @Test func aQuickStopSendsQuitAndASecondStopHurriesAGracefulOne() {
        var sm = machine(2) { $0.quickTimeoutNanoseconds = 1 * Self.s }
        startAndReady(&sm, sm.start(now: 0), now: 0)
        let quick = sm.command(.quickStop, now: 0)
        #expect(quick == [.log(.stopping(.asked)), .signal(1, pid: 101, .quit), .signal(2, pid: 102, .quit)])
        #expect(signals(sm.tick(now: 1 * Self.s)) == ["1:kill", "2:kill"])

        var graceful = machine(2)
        startAndReady(&graceful, graceful.start(now: 0), now: 0)
        _ = graceful.command(.stop, now: 0)
        // A second Ctrl-C.
        #expect(signals(graceful.command(.stop, now: 1 * Self.s)) == ["1:quit", "2:quit"])
        #expect(graceful.nextDeadline == 2 * Self.s)
    }

    @Test func aWorkerStillStartingWhenTheStopComesGetsTheSignalItMissed() {
        // A graceful stop whose deadline passes before the worker has a pid: SIGKILL, not SIGTERM, once it has one.
        var graceful = machine(1) { $0.gracefulTimeoutNanoseconds = 1 * Self.s }
        _ = graceful.start(now: 0)
        #expect(graceful.command(.stop, now: 0) == [.log(.stopping(.asked))])
        _ = graceful.tick(now: 2 * Self.s)
        #expect(signals(graceful.spawned(1, pid: 101, now: 3 * Self.s)) == ["1:kill"])
        // Within the deadline: SIGTERM.
        var inTime = machine(1) { $0.gracefulTimeoutNanoseconds = 10 * Self.s }
        _ = inTime.start(now: 0)
        _ = inTime.command(.stop, now: 0)
        #expect(signals(inTime.spawned(1, pid: 101, now: 1 * Self.s)) == ["1:terminate"])
        // A quick stop: SIGQUIT.
        var quick = machine(1)
        _ = quick.start(now: 0)
        _ = quick.command(.quickStop, now: 0)
        #expect(signals(quick.spawned(1, pid: 101, now: 0)) == ["1:quit"])
    }

    @Test func aStopWithNoWorkersLeftExitsAtOnce() {
        var sm = machine(1)
        _ = sm.start(now: 0)
        _ = sm.spawnFailed(1, reason: "no fork", now: 0)
        #expect(sm.command(.stop, now: 1) == [.log(.stopping(.asked)), .exit(status: 0)])
    }

    @Test func aReloadStartsANewGenerationAndDrainsTheOldOnceItIsReady() {
        var sm = machine(2) { $0.gracefulTimeoutNanoseconds = 30 * Self.s }
        startAndReady(&sm, sm.start(now: 0), now: 0)
        let reload = sm.command(.reload, now: 1 * Self.s)
        #expect(reload == [.spawn(3), .spawn(4)])
        #expect(sm.phase == .reloading)
        _ = sm.spawned(3, pid: 103, now: 1 * Self.s)
        _ = sm.spawned(4, pid: 104, now: 1 * Self.s)
        // The old workers serve until the whole new generation is ready.
        #expect(sm.ready(3, now: 2 * Self.s) == [])
        #expect(sm.workers[1]?.state == .ready)
        let drained = sm.ready(4, now: 2 * Self.s)
        #expect(
            drained == [
                .log(.reloaded(generation: 2)), .signal(1, pid: 101, .terminate), .signal(2, pid: 102, .terminate),
            ])
        #expect(sm.phase == .running)
        // The old ones exit: nothing is spawned for them.
        #expect(sm.exited(1, .clean, now: 3 * Self.s) == [])
        #expect(sm.exited(2, .clean, now: 3 * Self.s) == [])
        #expect(sm.workers.keys.sorted() == [3, 4])
    }

    @Test func anOldWorkerThatDiesDuringAReloadIsNotReplacedByItsGeneration() {
        var sm = machine(1)
        startAndReady(&sm, sm.start(now: 0), now: 0)
        _ = sm.command(.reload, now: 0)
        let died = sm.exited(1, .failed("SIGSEGV"), now: 5 * Self.s)
        #expect(spawns(died) == [])
        #expect(sm.workers.keys.sorted() == [2])
    }

    @Test func addAndRemoveAWorker() {
        var sm = machine(2) { $0.gracefulTimeoutNanoseconds = 30 * Self.s }
        startAndReady(&sm, sm.start(now: 0), now: 0)
        #expect(sm.command(.addWorker, now: 0) == [.spawn(3)])
        startAndReady(&sm, [.spawn(3)], now: 0)
        // One fewer: the oldest goes, gracefully.
        #expect(sm.command(.removeWorker, now: 0) == [.signal(1, pid: 101, .terminate)])
        #expect(sm.exited(1, .clean, now: 1 * Self.s) == [])
        #expect(sm.command(.removeWorker, now: 2 * Self.s) == [.signal(2, pid: 102, .terminate)])
        // Never below one.
        #expect(sm.command(.removeWorker, now: 3 * Self.s) == [])
        #expect(sm.target == 1)
    }

    @Test func eventsOfUnknownWorkersAndLateEventsChangeNothing() {
        var sm = machine(1)
        #expect(sm.command(.stop, now: 0) == [])  // Not started.
        startAndReady(&sm, sm.start(now: 0), now: 0)
        #expect(sm.exited(42, .clean, now: 0) == [])
        #expect(sm.ready(42, now: 0) == [])
        #expect(sm.spawned(42, pid: 1, now: 0) == [])
        #expect(sm.ready(1, now: 1) == [])  // Ready twice.
        sm.heartbeat(42, now: 0)
        #expect(sm.workers.count == 1)
    }
}
