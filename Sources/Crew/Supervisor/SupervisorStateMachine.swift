// The decisions of a prefork supervisor (gunicorn's arbiter), without processes, signals or clocks: the shell
// (`Crew.Supervisor`) reports what happened — a worker spawned, ready, beating, exited; a signal to the supervisor;
// the time passing — and performs the actions that come back: spawn a worker, signal one, stop.
//
// It keeps `target` workers of the current generation alive, restarting the dead with exponential backoff; stops
// the server when workers keep failing to boot (a crash loop); ends a worker whose heartbeat stops; reloads (a new
// generation ready before the old one drains); scales by one worker up or down; and stops gracefully (every worker
// finishes its work, up to a deadline) or quickly.

struct SupervisorStateMachine {
    /// A worker's number: 1, 2, 3… in start order, never reused (gunicorn's worker age).
    typealias WorkerID = Int

    struct Configuration: Equatable {
        /// How many workers to keep.
        var workers: Int
        /// The first restart's delay after a worker died early (see `stableNanoseconds`); it doubles with each
        /// such death in a row, up to `backoffMaxNanoseconds`.
        var backoffNanoseconds: UInt64 = 100_000_000
        var backoffMaxNanoseconds: UInt64 = 10_000_000_000
        /// A worker that served this long before it died is restarted at once, and the backoff starts over.
        var stableNanoseconds: UInt64 = 1_000_000_000
        /// This many workers that died before they were ready, within `crashLoopWindowNanoseconds`, stop the
        /// server: its workers cannot start.
        var crashLoopDeaths: Int = 5
        var crashLoopWindowNanoseconds: UInt64 = 10_000_000_000
        /// A worker silent this long (no heartbeat, or not ready this long after its start) is ended and replaced;
        /// nil: never.
        var timeoutNanoseconds: UInt64? = 30_000_000_000
        /// How long a worker ended for silence has after `SIGTERM` before `SIGKILL`.
        var killGraceNanoseconds: UInt64 = 5_000_000_000
        /// How long a graceful stop (or an old generation's drain, or a worker scaled away) waits for workers to
        /// finish before `SIGKILL`.
        var gracefulTimeoutNanoseconds: UInt64 = 30_000_000_000
        /// How long a quick stop waits after `SIGQUIT` before `SIGKILL`.
        var quickTimeoutNanoseconds: UInt64 = 1_000_000_000

        init(workers: Int) {
            self.workers = workers
        }
    }

    /// What the supervisor itself was asked, by a signal (gunicorn's names in the comments).
    enum Command: Equatable {
        /// TERM, INT: stop gracefully.
        case stop
        /// QUIT: stop quickly.
        case quickStop
        /// HUP: start a new generation of workers, then let the old one drain.
        case reload
        /// TTIN: one worker more.
        case addWorker
        /// TTOU: one worker fewer (never below one).
        case removeWorker
    }

    /// What a worker is sent.
    enum WorkerSignal: Equatable {
        /// SIGTERM: stop taking work, finish what is in hand, exit.
        case terminate
        /// SIGQUIT: exit now.
        case quit
        /// SIGKILL.
        case kill
    }

    /// How a worker ended.
    enum Exit: Equatable {
        /// It exited with status 0 on its own (it served its `--max-requests`) or when asked to.
        case clean
        /// Anything else: a trap, a signal, a non-zero status. The text says which.
        case failed(String)
    }

    /// Why the supervisor stops.
    enum StopReason: Equatable {
        /// It was asked to (TERM, INT or QUIT).
        case asked
        /// Workers kept dying before they were ready.
        case crashLoop(deaths: Int, windowNanoseconds: UInt64)

        /// The supervisor's exit status: 0 when asked, 3 for a crash loop (gunicorn's "worker failed to boot").
        var exitStatus: Int32 { self == .asked ? 0 : 3 }
    }

    /// What the shell should tell its logger.
    enum Event: Equatable {
        /// A worker died unasked; its replacement starts after this many nanoseconds (0: at once; nil: it is not
        /// replaced, for the supervisor stops).
        case died(WorkerID, Exit, restartAfterNanoseconds: UInt64?)
        /// A worker exited cleanly on its own (it served its request limit): replaced at once.
        case recycled(WorkerID)
        /// A worker was silent for longer than the timeout: it is sent SIGTERM, then SIGKILL.
        case timedOut(WorkerID)
        /// A worker that was sent SIGTERM did not exit in time: it is killed.
        case killedAfterGrace(WorkerID)
        /// A reload's new generation is ready; the old one drains.
        case reloaded(generation: Int)
        case stopping(StopReason)
    }

    enum Action: Equatable {
        /// Start a worker with this id (of the current generation). Report `spawned` or `spawnFailed`.
        case spawn(WorkerID)
        case signal(WorkerID, pid: Int32, WorkerSignal)
        case log(Event)
        /// Every worker has exited: the supervisor exits with this status.
        case exit(status: Int32)
    }

    enum Phase: Equatable {
        case idle
        case running
        /// A reload: workers of `generation` start while the older ones still serve.
        case reloading
        /// Stopping; every worker still alive is killed at the deadline.
        case stopping(StopReason, deadline: UInt64)
        case stopped
    }

    struct Worker: Equatable {
        enum State: Equatable {
            /// Asked for, not yet started (no pid).
            case spawning
            /// Started, not yet ready.
            case booting
            case ready
            /// Sent a signal to stop; killed at `killAt` if still alive.
            case stopping(killAt: UInt64)
        }

        let id: WorkerID
        let generation: Int
        var state: State
        var pid: Int32?
        let spawnedAt: UInt64
        var readyAt: UInt64?
        /// The last sign of life: the start, readiness or a heartbeat.
        var lastBeat: UInt64
        /// The signal to send once it has a pid (it was told to stop while it was being started).
        var heldSignal: WorkerSignal? = nil

        var isStopping: Bool {
            if case .stopping = state { return true }
            return false
        }
    }

    let configuration: Configuration
    private(set) var phase = Phase.idle
    /// How many workers of the current generation to keep.
    private(set) var target: Int
    private(set) var generation = 1
    private(set) var workers: [WorkerID: Worker] = [:]
    private var nextID: WorkerID = 1
    /// Deaths in a row of workers that died early, for the backoff.
    private(set) var earlyDeaths = 0
    /// No worker is started before this time (the backoff).
    private(set) var spawnNotBefore: UInt64 = 0
    /// When recent workers died before being ready (for the crash loop).
    private(set) var bootFailures: [UInt64] = []

    init(configuration: Configuration) {
        precondition(configuration.workers >= 1, "a supervisor keeps at least one worker")
        self.configuration = configuration
        self.target = configuration.workers
    }

    /// The earliest time the machine wants a `tick`, if any: a backoff's end, a heartbeat's or a boot's timeout,
    /// a kill after a grace, a stop's deadline.
    var nextDeadline: UInt64? {
        var times: [UInt64] = []
        if phase == .running || phase == .reloading, missingWorkers > 0, spawnNotBefore > 0 {
            times.append(spawnNotBefore)
        }
        for worker in workers.values {
            switch worker.state {
            case .stopping(let killAt):
                times.append(killAt)
            case .booting, .ready:
                if let timeout = configuration.timeoutNanoseconds { times.append(worker.lastBeat &+ timeout) }
            case .spawning:
                break
            }
        }
        if case .stopping(_, let deadline) = phase { times.append(deadline) }
        return times.min()
    }

    /// The process ids of the workers alive now, by id.
    var pids: [WorkerID: Int32] { workers.compactMapValues(\.pid) }

    // MARK: Events

    /// The supervisor starts: it spawns its workers.
    mutating func start(now: UInt64) -> [Action] {
        guard phase == .idle else { return [] }
        phase = .running
        return spawnMissing(now: now)
    }

    /// A worker asked for by `.spawn` has started.
    mutating func spawned(_ id: WorkerID, pid: Int32, now: UInt64) -> [Action] {
        guard var worker = workers[id] else { return [] }
        worker.pid = pid
        worker.lastBeat = now
        switch worker.state {
        case .spawning:
            worker.state = .booting
            workers[id] = worker
            // Started while the supervisor stops, or after its generation was replaced: it stops at once.
            if case .stopping(_, let deadline) = phase { return stop(id, .terminate, killAt: deadline) }
            return []
        case .stopping:
            // Asked to stop before it had a pid (a stop while it was spawning): send what was held back (SIGKILL
            // if its deadline passed meanwhile, SIGQUIT for a quick stop).
            workers[id] = worker
            return [.signal(id, pid: pid, worker.heldSignal ?? .terminate)]
        default:
            workers[id] = worker
            return []
        }
    }

    /// A worker could not be started: as a worker that died before it was ready.
    mutating func spawnFailed(_ id: WorkerID, reason: String, now: UInt64) -> [Action] {
        exited(id, .failed(reason), now: now)
    }

    /// A worker is ready to serve (it listens, or its initializer finished).
    mutating func ready(_ id: WorkerID, now: UInt64) -> [Action] {
        guard var worker = workers[id], worker.state == .booting else { return [] }
        worker.state = .ready
        worker.readyAt = now
        worker.lastBeat = now
        workers[id] = worker
        guard phase == .reloading, worker.generation == generation else { return [] }
        // The new generation is whole: the old one drains.
        let current = workers.values.filter { $0.generation == generation && !$0.isStopping }
        guard current.count >= target, current.allSatisfy({ $0.state == .ready }) else { return [] }
        phase = .running
        var actions: [Action] = [.log(.reloaded(generation: generation))]
        let deadline = now &+ configuration.gracefulTimeoutNanoseconds
        for old in workers.values.sorted(by: { $0.id < $1.id })
        where old.generation < generation && !old.isStopping {
            actions += stop(old.id, .terminate, killAt: deadline)
        }
        return actions
    }

    /// A worker showed it is alive (its event loop still turns).
    mutating func heartbeat(_ id: WorkerID, now: UInt64) {
        guard var worker = workers[id] else { return }
        worker.lastBeat = max(worker.lastBeat, now)
        workers[id] = worker
    }

    /// A worker has exited (it is reaped).
    mutating func exited(_ id: WorkerID, _ exit: Exit, now: UInt64) -> [Action] {
        guard let worker = workers.removeValue(forKey: id) else { return [] }
        var actions: [Action] = []
        switch phase {
        case .stopping:
            return workers.isEmpty ? finish() : []
        case .idle, .stopped:
            return []
        case .running, .reloading:
            break
        }
        if worker.isStopping {
            // Asked to stop (drained, scaled away, timed out): its place, if it still has one, is filled now.
            return spawnMissing(now: now)
        }
        if exit == .clean && worker.readyAt != nil {
            actions.append(.log(.recycled(id)))
            earlyDeaths = 0
            spawnNotBefore = 0
            return actions + spawnMissing(now: now)
        }
        // An unasked death.
        if worker.readyAt == nil {
            bootFailures.append(now)
            bootFailures.removeAll { now &- $0 > configuration.crashLoopWindowNanoseconds }
            if bootFailures.count >= configuration.crashLoopDeaths {
                let reason = StopReason.crashLoop(
                    deaths: bootFailures.count, windowNanoseconds: configuration.crashLoopWindowNanoseconds)
                return [.log(.died(id, exit, restartAfterNanoseconds: nil))] + beginStop(reason, now: now)
            }
        }
        let stable = worker.readyAt.map { now &- $0 >= configuration.stableNanoseconds } ?? false
        var delay: UInt64 = 0
        if stable {
            earlyDeaths = 0
        } else {
            earlyDeaths += 1
            let shift = UInt64(min(earlyDeaths - 1, 40))
            delay = min(configuration.backoffNanoseconds << shift, configuration.backoffMaxNanoseconds)
        }
        spawnNotBefore = delay == 0 ? 0 : now &+ delay
        actions.append(.log(.died(id, exit, restartAfterNanoseconds: delay)))
        return actions + spawnMissing(now: now)
    }

    /// The supervisor got a command (a signal).
    mutating func command(_ command: Command, now: UInt64) -> [Action] {
        switch (command, phase) {
        case (_, .idle), (_, .stopped):
            return []
        case (.quickStop, .stopping(let reason, _)):
            // A quick stop during a graceful one hurries it.
            return beginQuickStop(reason, now: now)
        case (.stop, .stopping(let reason, _)):
            // A second TERM or INT (a second Ctrl-C) hurries the stop too.
            return beginQuickStop(reason, now: now)
        case (_, .stopping):
            return []
        case (.stop, _):
            return beginStop(.asked, now: now)
        case (.quickStop, _):
            return beginQuickStop(.asked, now: now)
        case (.reload, _):
            generation += 1
            phase = .reloading
            // The backoff does not hold back a reload.
            spawnNotBefore = 0
            return spawnMissing(now: now)
        case (.addWorker, _):
            target += 1
            return spawnMissing(now: now)
        case (.removeWorker, _):
            guard target > 1 else { return [] }
            target -= 1
            // The oldest worker of the current generation goes (gunicorn's choice).
            let current = workers.values.filter { $0.generation == generation && !$0.isStopping }
            guard current.count > target, let oldest = current.min(by: { $0.id < $1.id }) else { return [] }
            return stop(oldest.id, .terminate, killAt: now &+ configuration.gracefulTimeoutNanoseconds)
        }
    }

    /// Time passed: backoffs end, silent workers are ended, graces and deadlines expire.
    mutating func tick(now: UInt64) -> [Action] {
        var actions: [Action] = []
        for id in workers.keys.sorted() {
            guard let worker = workers[id] else { continue }
            switch worker.state {
            case .stopping(let killAt) where now >= killAt:
                if let pid = worker.pid {
                    actions.append(.log(.killedAfterGrace(id)))
                    actions.append(.signal(id, pid: pid, .kill))
                } else {
                    workers[id]?.heldSignal = .kill
                }
                // Killed once: the exit follows.
                workers[id]?.state = .stopping(killAt: .max)
            case .booting, .ready:
                guard let timeout = configuration.timeoutNanoseconds, now &- worker.lastBeat >= timeout,
                    phase == .running || phase == .reloading
                else { continue }
                actions.append(.log(.timedOut(id)))
                actions += stop(id, .terminate, killAt: now &+ configuration.killGraceNanoseconds)
            default:
                continue
            }
        }
        if case .stopping(let reason, let deadline) = phase, now >= deadline {
            phase = .stopping(reason, deadline: .max)
            for id in workers.keys.sorted() {
                guard let pid = workers[id]?.pid, workers[id]?.state != .stopping(killAt: .max) else { continue }
                actions.append(.signal(id, pid: pid, .kill))
                workers[id]?.state = .stopping(killAt: .max)
            }
        }
        if phase == .running || phase == .reloading {
            actions += spawnMissing(now: now)
        }
        return actions
    }

    // MARK: Helpers

    /// Workers of the current generation short of the target (those stopping do not count).
    private var missingWorkers: Int {
        target - workers.values.filter { $0.generation == generation && !$0.isStopping }.count
    }

    /// Spawns the workers the current generation lacks, unless the backoff holds them back.
    private mutating func spawnMissing(now: UInt64) -> [Action] {
        guard phase == .running || phase == .reloading else { return [] }
        let missing = missingWorkers
        guard missing > 0, now >= spawnNotBefore else { return [] }
        var actions: [Action] = []
        for _ in 0..<missing {
            let id = nextID
            nextID += 1
            workers[id] = Worker(
                id: id, generation: generation, state: .spawning, pid: nil, spawnedAt: now, readyAt: nil, lastBeat: now)
            actions.append(.spawn(id))
        }
        return actions
    }

    /// Sends `signal` to a worker and marks it stopping, to be killed at `killAt`. A worker without a pid yet is
    /// sent the signal when it has one.
    private mutating func stop(_ id: WorkerID, _ signal: WorkerSignal, killAt: UInt64) -> [Action] {
        guard var worker = workers[id] else { return [] }
        worker.state = .stopping(killAt: killAt)
        guard let pid = worker.pid else {
            worker.heldSignal = signal
            workers[id] = worker
            return []
        }
        workers[id] = worker
        return [.signal(id, pid: pid, signal)]
    }

    private mutating func beginStop(_ reason: StopReason, now: UInt64) -> [Action] {
        let deadline = now &+ configuration.gracefulTimeoutNanoseconds
        phase = .stopping(reason, deadline: deadline)
        var actions: [Action] = [.log(.stopping(reason))]
        for id in workers.keys.sorted() where workers[id]?.isStopping == false {
            actions += stop(id, .terminate, killAt: deadline)
        }
        return workers.isEmpty ? actions + finish() : actions
    }

    private mutating func beginQuickStop(_ reason: StopReason, now: UInt64) -> [Action] {
        let deadline = now &+ configuration.quickTimeoutNanoseconds
        let alreadyStopping: Bool = if case .stopping = phase { true } else { false }
        phase = .stopping(reason, deadline: deadline)
        var actions: [Action] = alreadyStopping ? [] : [.log(.stopping(reason))]
        for id in workers.keys.sorted() {
            guard let worker = workers[id], worker.state != .stopping(killAt: .max) else { continue }
            workers[id]?.state = .stopping(killAt: deadline)
            if let pid = worker.pid {
                actions.append(.signal(id, pid: pid, .quit))
            } else {
                workers[id]?.heldSignal = .quit
            }
        }
        return workers.isEmpty ? actions + finish() : actions
    }

    private mutating func finish() -> [Action] {
        guard case .stopping(let reason, _) = phase else { return [] }
        phase = .stopped
        return [.exit(status: reason.exitStatus)]
    }
}
