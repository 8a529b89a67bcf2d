// Over 500 lines: one value type whose transitions are read together (a death touches dispatch, timers and
// recycling); PoolStateMachineTests tests each of them without processes.

// The bookkeeping of a process pool, without sockets, processes or clocks: events go in, actions come out.
//
// It decides which worker gets which task, what a worker's death fails and what it gives back to the queue,
// what a timeout kills, when a worker is recycled or replaced, and when a closed pool is done. The pool's I/O
// shell (`PoolCore`) feeds it events under a lock and performs the actions it returns, in order.
//
// A worker runs the synchronous calls it is sent one after the other, in the order sent, and notes in a page of
// memory shared with the parent the id of each call it starts and finishes, with a copy of the answers it has not
// sent yet (the connection delivers those before it reports the death). So when a worker dies, the machine knows
// the call it was running (that call fails), and the calls behind that never started (they go back to the front
// of the queue for another worker). A finished call still without an answer then (the page was unreadable) fails
// as finished-but-lost: running it again could repeat its effects. Without that page (a worker
// that died before writing any) the oldest unanswered call is taken as the one running. Calls with `async` bodies
// start as soon as they arrive, so a death fails all of them.
//
// How many calls a worker holds at once adapts to how long calls take: one while the pool knows nothing, and
// up to `maxInFlight` once calls are known to be short (so that tiny calls travel in batches), but never more
// than one behind a call that has been running long (so that a long call does not trap short ones that another
// worker could run).

struct PoolStateMachine {
    typealias WorkerID = Int
    typealias TaskID = UInt64

    struct Configuration: Equatable {
        /// How many workers the pool keeps.
        var processes: Int
        /// The most calls a worker holds at once when calls are short.
        var maxInFlight: Int = 256
        /// How much expected work a worker holds at once: calls of about `heldWorkNanoseconds / maxInFlight` or
        /// less fill `maxInFlight`; longer ones fewer (so that a worker that has finished is never left idle
        /// while another has a long queue of calls it will not get to soon).
        var heldWorkNanoseconds: UInt64 = 2_000_000
        /// Workers are replaced after this many calls (Python's `maxtasksperchild`).
        var maxTasksPerChild: Int?
        /// Between `SIGTERM` and `SIGKILL` when a call times out.
        var graceNanoseconds: UInt64 = 500_000_000
        /// Calls that take longer than this are "long": a worker running one gets no more calls behind it.
        var longCallNanoseconds: UInt64 = 1_000_000
        /// After this many workers in a row end without ever serving, the pool stops starting new ones.
        var maxFailedStarts: Int = 3
        /// If set, a worker whose oldest call is `async` holds this many calls, however long they run (they run
        /// concurrently in the worker).
        var asyncInFlight: Int?
        /// Every new worker runs the pool's initializer (Python's `initializer`) before it gets tasks.
        var initializer = false
    }

    /// Why the pool failed a task.
    enum Failure: Equatable {
        /// The worker died while running it.
        case crashed(WorkerID)
        /// The worker died while running it beside other calls (`async` calls run together): any of them may
        /// have caused the death.
        case diedWithOthers(WorkerID)
        /// It finished, but the worker died before sending its result.
        case lost(WorkerID)
        /// It ran longer than its timeout; its worker was killed.
        case timedOut(WorkerID)
        /// `terminate()` ended the pool.
        case terminated
        /// The pool cannot start workers (they die before serving, or cannot be spawned).
        case broken
    }

    enum Action: Equatable {
        /// Start a worker process for this id.
        case spawn(WorkerID)
        /// Send these tasks to the worker, in this order, in one write: at once if `urgent` (the worker was idle,
        /// or they are `async` calls, which start on arrival), or with the next write to that worker otherwise.
        case send(WorkerID, [TaskID], urgent: Bool)
        /// Run the pool's initializer on this new worker, then report `workerInitialized`.
        case initialize(WorkerID)
        /// Call `timeoutFired(task:)` after this many nanoseconds.
        case startTimer(TaskID, UInt64)
        case cancelTimer(TaskID)
        /// Send the worker's process a signal: `terminate` lets it end gently, `kill` ends it.
        case signal(WorkerID, ChildConnectionStateMachine.Signal)
        /// Call `graceExpired(worker:)` after this many nanoseconds.
        case startGraceTimer(WorkerID, UInt64)
        /// Ask the worker to exit once idle (it holds nothing).
        case shutdown(WorkerID)
        /// Fail the task.
        case fail(TaskID, Failure)
        /// The pool is closed or terminated and every worker has exited: `join` may return.
        case finished
    }

    enum Lifecycle: Equatable {
        case running, closed, terminated
    }

    struct Task: Equatable {
        var synchronous: Bool
        var timeout: UInt64?
        var worker: WorkerID?
        /// When it started running (for a synchronous task: when it became the oldest on its worker).
        var startedAt: UInt64?
        /// How many calls it is (a chunk of a map is several), for the average time of a call.
        var calls: Int = 1
    }

    enum Phase: Equatable {
        /// Being started; not yet known to be running.
        case starting
        /// Started, running the pool's initializer: it gets no tasks until that succeeds.
        case initializing
        case running
        /// Finishes what it holds, takes nothing new, then is shut down (recycling, or the pool is closed).
        case retiring
        /// Being killed (a timeout, or terminate).
        case stopping
    }

    struct Worker: Equatable {
        var phase: Phase
        var inFlight: [TaskID] = []
        var completed = 0
        /// The task whose timeout is killing this worker.
        var timedOut: TaskID?
        /// The task whose timer is running (a synchronous worker times only the task it is running).
        var timed: TaskID?
        /// A replacement was started when this worker was retired, so its exit needs none.
        var replaced = false
        /// Its initializer failed: it was killed, and its exit counts as a failed start.
        var initializerFailed = false
    }

    let configuration: Configuration
    private(set) var lifecycle = Lifecycle.running
    private(set) var workers = IDMap<WorkerID, Worker>()
    private(set) var tasks = IDMap<TaskID, Task>()
    private(set) var queue: [TaskID] = []
    private var queueHead = 0
    private var nextWorker = 0
    /// The ids of `workers`, in ascending order.
    private var workerOrder: [WorkerID] = []
    /// An exponentially weighted average of how long one call takes (a chunk of `n` calls counts `n`), once any
    /// has finished.
    private(set) var averageNanoseconds: UInt64?
    private var failedStartsInARow = 0
    private(set) var broken = false
    private var finishedAnnounced = false

    init(_ configuration: Configuration) {
        precondition(configuration.processes >= 1 && configuration.maxInFlight >= 1)
        self.configuration = configuration
    }

    /// Starts the workers.
    mutating func start() -> [Action] {
        var actions: [Action] = []
        for _ in 0..<configuration.processes { actions.append(.spawn(newWorker())) }
        return actions
    }

    private mutating func newWorker() -> WorkerID {
        let id = nextWorker
        nextWorker += 1
        workers[id] = Worker(phase: .starting)
        workerOrder.append(id)  // Ids only grow: the order stays sorted.
        return id
    }

    private mutating func removeWorker(_ id: WorkerID) -> Worker? {
        guard let worker = workers.removeValue(forKey: id) else { return nil }
        if let index = workerOrder.firstIndex(of: id) { workerOrder.remove(at: index) }
        return worker
    }

    var queuedCount: Int { queue.count - queueHead }

    // MARK: Events

    /// A new task. The caller has checked that the pool is running.
    mutating func submit(_ id: TaskID, synchronous: Bool, timeout: UInt64?, calls: Int = 1, now: UInt64) -> [Action] {
        precondition(lifecycle == .running && tasks[id] == nil)
        if broken { return [.fail(id, .broken)] }
        tasks[id] = Task(synchronous: synchronous, timeout: timeout, calls: max(1, calls))
        queue.append(id)
        return dispatch(now: now)
    }

    /// Several tasks submitted together (the chunks of one map): the same as one `submit` each, with one round
    /// of dispatching at the end, so each worker gets its share in one frame. `calls` is how many calls each is.
    mutating func submitMany(
        _ ids: [TaskID],
        synchronous: Bool,
        timeout: UInt64?,
        calls: Int = 1,
        now: UInt64
    ) -> [Action] {
        precondition(lifecycle == .running)
        if broken { return ids.map { .fail($0, .broken) } }
        for id in ids {
            precondition(tasks[id] == nil)
            tasks[id] = Task(synchronous: synchronous, timeout: timeout, calls: max(1, calls))
            queue.append(id)
        }
        return dispatch(now: now)
    }

    /// The worker process exists and can be sent tasks.
    mutating func workerStarted(_ worker: WorkerID, now: UInt64) -> [Action] {
        // Terminated while it was being started: the kill sent then found no process.
        if workers[worker]?.phase == .stopping { return [.signal(worker, .kill)] }
        guard workers[worker]?.phase == .starting else { return [] }
        if configuration.initializer {
            workers[worker]!.phase = .initializing
            return [.initialize(worker)]
        }
        return serving(worker, now: now)
    }

    /// The worker's initializer answered: it serves, or (if the initializer failed) its connection kills it and
    /// its exit counts as a failed start (enough in a row break the pool, rather than restart workers forever).
    mutating func workerInitialized(_ worker: WorkerID, succeeded: Bool, now: UInt64) -> [Action] {
        guard workers[worker]?.phase == .initializing else { return [] }
        guard succeeded else {
            workers[worker]!.initializerFailed = true
            return []
        }
        return serving(worker, now: now)
    }

    /// Whether `worker`'s initializer failed (its exit then keeps the initializer's error as the pool's reason).
    func initializerFailed(_ worker: WorkerID) -> Bool {
        workers[worker]?.initializerFailed ?? false
    }

    /// The worker is ready for tasks.
    private mutating func serving(_ worker: WorkerID, now: UInt64) -> [Action] {
        workers[worker]!.phase = lifecycle == .running || queuedCount > 0 ? .running : .retiring
        var actions = dispatch(now: now)
        actions += retireIfIdle(worker)
        return actions
    }

    /// The worker could not be started.
    mutating func workerFailedToStart(_ worker: WorkerID, now: UInt64) -> [Action] {
        guard removeWorker(worker) != nil else { return [] }
        return failedStart(now: now)
    }

    /// The worker answered `task` (with a value or an error of the function's own: the worker is healthy).
    mutating func taskFinished(_ task: TaskID, worker: WorkerID, now: UInt64) -> [Action] {
        tasksFinished([task], worker: worker, now: now)
    }

    /// The worker answered these tasks (one read's worth): the same as one `taskFinished` each, with one round of
    /// dispatching at the end instead of one per task.
    mutating func tasksFinished(_ finished: [TaskID], worker: WorkerID, now: UInt64) -> [Action] {
        guard var w = workers[worker] else { return [] }
        var actions: [Action] = []
        var calls = 0
        var earliest: UInt64?
        // Answers come in the order the worker holds its calls: they are a prefix of `inFlight`, removed at once.
        var prefix = 0
        for task in finished {
            if prefix < w.inFlight.count && w.inFlight[prefix] == task {
                prefix += 1
            } else {
                if prefix > 0 {
                    w.inFlight.removeFirst(prefix)
                    prefix = 0
                }
                guard let index = w.inFlight.firstIndex(of: task) else { continue }
                w.inFlight.remove(at: index)
            }
            let info = tasks.removeValue(forKey: task)
            calls += info?.calls ?? 1
            w.completed += 1
            if w.timed == task {
                actions.append(.cancelTimer(task))
                w.timed = nil
            } else if let info, Self.hasOwnTimer(info), w.timedOut != task {
                actions.append(.cancelTimer(task))
            }
            if let started = info?.startedAt, now >= started { earliest = min(earliest ?? started, started) }
        }
        if prefix > 0 { w.inFlight.removeFirst(prefix) }
        guard calls > 0 else { return actions }
        // Calls of one worker run one after another: those answered together took this long each, on average.
        if let earliest { record((now - earliest) / UInt64(calls)) }
        failedStartsInARow = 0
        workers[worker] = w
        actions += startTimers(worker, now: now)
        if let limit = configuration.maxTasksPerChild, w.completed >= limit, w.phase == .running {
            workers[worker]!.phase = .retiring
        }
        actions += dispatch(now: now)
        actions += retireIfIdle(worker)
        return actions
    }

    /// The worker's process has exited. `served` says whether it ever got as far as serving; `progress` is what
    /// its progress page said (the last synchronous call started and finished), if it had one.
    mutating func workerExited(
        _ worker: WorkerID,
        served: Bool,
        progress: WorkerProgress? = nil,
        now: UInt64
    ) -> [Action] {
        guard let w = removeWorker(worker) else { return [] }
        // A worker that died in its initializer, or whose initializer failed, never served.
        let served = served && w.phase != .initializing && !w.initializerFailed
        var actions: [Action] = []
        var requeue: [TaskID] = []
        if let timed = w.timed, timed != w.timedOut { actions.append(.cancelTimer(timed)) }
        for task in w.inFlight where task != w.timedOut {
            if let info = tasks[task], Self.hasOwnTimer(info) { actions.append(.cancelTimer(task)) }
        }
        // Where the worker was in its synchronous calls: the index of the call it had started last, and whether
        // that call had finished. Without a page, the oldest unanswered call is the one that was running.
        let synchronous = w.inFlight.filter { tasks[$0]?.synchronous == true }
        let running: Int?
        let runningFinished: Bool
        if let progress, progress.started != 0 {
            running = synchronous.firstIndex(of: progress.started)
            runningFinished = progress.finished == progress.started
        } else if progress != nil {
            running = nil  // It never started any.
            runningFinished = false
        } else {
            running = synchronous.isEmpty ? nil : 0
            runningFinished = false
        }
        for task in w.inFlight {
            guard let info = tasks[task] else { continue }
            if task == w.timedOut {
                tasks[task] = nil
                actions.append(.fail(task, .timedOut(worker)))
            } else if !info.synchronous {
                tasks[task] = nil
                actions.append(.fail(task, w.inFlight.count > 1 ? .diedWithOthers(worker) : .crashed(worker)))
            } else if let running, let index = synchronous.firstIndex(of: task), index <= running {
                tasks[task] = nil
                actions.append(.fail(task, index < running || runningFinished ? .lost(worker) : .crashed(worker)))
            } else {
                requeue.append(task)  // It never started.
            }
        }
        for task in requeue {
            tasks[task]?.worker = nil
            tasks[task]?.startedAt = nil
        }
        queue.replaceSubrange(queueHead..<queueHead, with: requeue)
        if served {
            failedStartsInARow = 0
        } else if w.phase == .starting || w.phase == .initializing || w.phase == .running {
            // It died before serving anything, unasked: a crash at start (a broken initializer or program).
            return actions + failedStart(now: now)
        }
        if !w.replaced && lifecycle != .terminated && (lifecycle == .running || queuedCount > 0) && !broken {
            actions.append(.spawn(newWorker()))
        }
        actions += dispatch(now: now)
        actions += finishIfDone()
        return actions
    }

    /// A task's timeout has passed.
    mutating func timeoutFired(_ task: TaskID) -> [Action] {
        guard let worker = tasks[task]?.worker, var w = workers[worker], w.inFlight.contains(task),
            w.phase != .stopping
        else { return [] }
        w.phase = .stopping
        w.timedOut = task
        if w.timed == task { w.timed = nil }
        workers[worker] = w
        return [.signal(worker, .terminate), .startGraceTimer(worker, configuration.graceNanoseconds)]
    }

    /// The grace period after `SIGTERM` is over.
    mutating func graceExpired(_ worker: WorkerID) -> [Action] {
        guard workers[worker] != nil else { return [] }
        return [.signal(worker, .kill)]
    }

    /// No new tasks; the queue is worked off, then the workers exit.
    mutating func close() -> [Action] {
        guard lifecycle == .running else { return [] }
        lifecycle = .closed
        var actions: [Action] = []
        for id in workerOrder { actions += retireIfIdle(id) }
        actions += finishIfDone()
        return actions
    }

    /// Fails every task and kills every worker now.
    mutating func terminate() -> [Action] {
        guard lifecycle != .terminated else { return [] }
        lifecycle = .terminated
        var actions: [Action] = []
        for id in queue[queueHead...] {
            tasks[id] = nil
            actions.append(.fail(id, .terminated))
        }
        queue.removeAll()
        queueHead = 0
        for id in workerOrder {
            var w = workers[id]!
            if let timed = w.timed { actions.append(.cancelTimer(timed)) }
            for task in w.inFlight {
                tasks[task] = nil
                actions.append(.fail(task, .terminated))
            }
            w.inFlight.removeAll()
            w.timed = nil
            w.timedOut = nil
            w.phase = .stopping
            workers[id] = w
            actions.append(.signal(id, .kill))
        }
        actions += finishIfDone()
        return actions
    }

    // MARK: Decisions

    private mutating func record(_ duration: UInt64) {
        if let average = averageNanoseconds {
            averageNanoseconds = (average * 7 + duration) / 8
        } else {
            averageNanoseconds = duration
        }
    }

    /// How many tasks the worker may hold now.
    private func capacity(_ w: Worker, now: UInt64) -> Int {
        guard w.phase == .running else { return 0 }
        let limit = min(unboundedCapacity(w, now: now), configuration.maxTasksPerChild.map { $0 - w.completed } ?? .max)
        return max(0, limit)
    }

    private func unboundedCapacity(_ w: Worker, now: UInt64) -> Int {
        guard let head = w.inFlight.first else { return 1 }
        if let concurrent = configuration.asyncInFlight, tasks[head]?.synchronous == false {
            // Counted in calls: a chunk's calls run together.
            return max(1, concurrent / max(1, tasks[head]?.calls ?? 1))
        }
        // The average is per call; a chunk of a map is several.
        guard let perCall = averageNanoseconds else { return 1 }
        let average = perCall.multipliedReportingOverflow(by: UInt64(tasks[head]?.calls ?? 1)).partialValue
        guard average < configuration.longCallNanoseconds else { return 1 }
        if let started = tasks[head]?.startedAt, now > started, now - started >= configuration.longCallNanoseconds {
            return w.inFlight.count  // Nothing more behind a call that runs long.
        }
        let fits = configuration.heldWorkNanoseconds / max(1, average)
        return Int(min(UInt64(configuration.maxInFlight), max(1, fits)))
    }

    /// A worker as `dispatch` sees it while it hands out tasks.
    private struct Slot {
        var worker: WorkerID
        var load: Int
        var room: Int
        var sent: [TaskID] = []
        /// How many of `sent` are already in the worker's `inFlight`.
        var appended = 0
    }

    /// Hands queued tasks to the least loaded workers that have room.
    private mutating func dispatch(now: UInt64) -> [Action] {
        guard queuedCount > 0 else { return [] }
        // Small arrays rather than dictionaries: a pool has few workers, and this runs for every submission and
        // every batch of answers. Each worker's load and room are read once, not once per task.
        var slots: [Slot] = []
        slots.reserveCapacity(workerOrder.count)
        for id in workerOrder {
            let w = workers[id]!
            slots.append(Slot(worker: id, load: w.inFlight.count, room: capacity(w, now: now)))
        }
        var order: [Int] = []  // Slots in the order they got their first task.
        while queuedCount > 0 {
            var best = -1
            var bestLoad = Int.max
            for i in slots.indices where slots[i].load < bestLoad && slots[i].load < slots[i].room {
                best = i
                bestLoad = slots[i].load
            }
            guard best >= 0 else { break }
            let task = queue[queueHead]
            queueHead += 1
            tasks[task]!.worker = slots[best].worker
            if slots[best].sent.isEmpty { order.append(best) }
            slots[best].sent.append(task)
            slots[best].load += 1
            if slots[best].load == 1 {
                // Its first call decides how many more it may hold (see `unboundedCapacity`).
                workers[slots[best].worker]!.inFlight.append(task)
                slots[best].room = capacity(workers[slots[best].worker]!, now: now)
                slots[best].appended = slots[best].sent.count
            }
        }
        for i in order {
            workers[slots[i].worker]!.inFlight.append(contentsOf: slots[i].sent[slots[i].appended...])
        }
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: true)
            queueHead = 0
        } else if queueHead > 1024 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        var actions: [Action] = []
        actions.reserveCapacity(order.count * 2)
        for i in order {
            // A worker that held nothing before is idle: its tasks go now. So do `async` tasks (they start on
            // arrival). Others ride with the worker's next write, after it answers what it holds.
            let worker = slots[i].worker
            let urgent =
                workers[worker]!.inFlight.count == slots[i].sent.count
                || slots[i].sent.contains { tasks[$0]?.synchronous == false }
            actions.append(.send(worker, slots[i].sent, urgent: urgent))
        }
        for i in order { actions += startTimers(slots[i].worker, now: now) }
        return actions
    }

    /// Marks the tasks of `worker` that have started as started, and starts the timer of the one whose time
    /// now runs: the oldest, for synchronous tasks (they run one after the other); every `async` task at once.
    /// An `async` task that started with a time limit has a timer of its own (a synchronous one shares its
    /// worker's, `timed`).
    private static func hasOwnTimer(_ info: Task) -> Bool {
        !info.synchronous && info.timeout != nil && info.startedAt != nil
    }

    private mutating func startTimers(_ worker: WorkerID, now: UInt64) -> [Action] {
        guard var w = workers[worker], w.phase == .running || w.phase == .retiring else { return [] }
        var actions: [Action] = []
        for (index, task) in w.inFlight.enumerated() {
            guard var info = tasks[task] else { continue }
            let running = index == 0 || !info.synchronous
            guard running, info.startedAt == nil else {
                if info.synchronous { break } else { continue }
            }
            info.startedAt = now
            tasks[task] = info
            if let timeout = info.timeout, w.timed == nil || !info.synchronous {
                if info.synchronous { w.timed = task }
                actions.append(.startTimer(task, timeout))
            }
        }
        workers[worker] = w
        return actions
    }

    /// Shuts the worker down if it is to retire (recycling, or a closed pool with nothing left) and holds nothing.
    private mutating func retireIfIdle(_ worker: WorkerID) -> [Action] {
        guard var w = workers[worker], w.inFlight.isEmpty else { return [] }
        if w.phase == .running && lifecycle == .closed && queuedCount == 0 { w.phase = .retiring }
        guard w.phase == .retiring else { return [] }
        w.phase = .stopping
        var actions: [Action] = [.shutdown(worker)]
        if lifecycle == .running || (lifecycle == .closed && queuedCount > 0) {
            w.replaced = true
            actions.append(.spawn(newWorker()))
        }
        workers[worker] = w
        return actions
    }

    private mutating func failedStart(now: UInt64) -> [Action] {
        failedStartsInARow += 1
        var actions: [Action] = []
        if failedStartsInARow >= configuration.maxFailedStarts {
            // Starting workers keeps failing: stop trying, and fail what waits rather than wait forever.
            broken = true
            for id in queue[queueHead...] {
                tasks[id] = nil
                actions.append(.fail(id, .broken))
            }
            queue.removeAll()
            queueHead = 0
        } else if lifecycle != .terminated && (lifecycle == .running || queuedCount > 0) {
            actions.append(.spawn(newWorker()))
        }
        actions += finishIfDone()
        return actions
    }

    private mutating func finishIfDone() -> [Action] {
        guard !finishedAnnounced, lifecycle != .running, workers.isEmpty else { return [] }
        finishedAnnounced = true
        return [.finished]
    }
}
