import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// The pool's I/O shell: it feeds `PoolStateMachine` events (submissions, answers, deaths, timers) under one
// lock, and performs the actions that come back. Frames are queued into a worker's connection under that same
// lock, so they reach each worker in the order the machine assigned them; the sends themselves, the callbacks
// and everything else happen outside it.

@usableFromInline
final class PoolCore: @unchecked Sendable {
    // @unchecked Sendable: `inner` is behind a mutex; `timers` is used only on the reactor thread.

    typealias WorkerID = PoolStateMachine.WorkerID
    typealias TaskID = PoolStateMachine.TaskID
    @usableFromInline
    typealias TaskCompletion = @Sendable (Result<Payload, CrewError>) -> Void

    /// A task's completion to run with its outcome, once locks are released.
    struct TaskFinished {
        var completion: TaskCompletion
        var result: Result<Payload, CrewError>
    }

    struct TaskRecord {
        var frame: [UInt8]
        var function: String
        var timeout: Duration?
        var complete: TaskCompletion
    }

    struct Inner {
        var machine: PoolStateMachine
        var connections: [WorkerID: ChildConnection] = [:]
        var records = IDMap<TaskID, TaskRecord>()
        /// Why the last worker that never served ended (for the error of a broken pool).
        var lastStartFailure: CrewError?
    }

    /// A call every new worker runs before it gets tasks (Python's `initializer`).
    struct Initializer: Sendable {
        var function: String
        var arguments: [UInt8]
        /// Descriptors every worker is started with (see `HandedDescriptors`).
        var handed: [Int32] = []
        /// The objects that own `handed`, kept open while the pool lives.
        var owners = HandedOwners([])
    }

    let crew: Crew
    private let inner: Locked<Inner>
    private let nextTask = Atomic<UInt64>(1)
    private let initializer: Initializer?
    /// Completed when the pool is closed or terminated and every worker has exited.
    let finished = Completion<Bool>()
    private var timers: [TaskID: UInt64] = [:]

    init(crew: Crew, configuration: PoolStateMachine.Configuration, initializer: Initializer?) {
        self.crew = crew
        self.initializer = initializer
        var configuration = configuration
        configuration.initializer = initializer != nil
        self.inner = Locked(Inner(machine: PoolStateMachine(configuration)))
    }

    func start() {
        step(nil) { inner in inner.machine.start() }
    }

    var lifecycle: PoolStateMachine.Lifecycle { inner.withLock { $0.machine.lifecycle } }

    // MARK: Submitting

    /// Submits one task: a call (or a chunk of calls) of `function`, whose encoded result goes to `complete`.
    ///
    /// - Throws: ``CrewError/Code/poolClosed`` after close or terminate; the frame's and the encoder's errors.
    @usableFromInline
    func submit(
        function: String,
        synchronous: Bool,
        chunk: Bool,
        timeout: Duration?,
        encode: (inout [UInt8]) throws -> Void,
        complete: @escaping TaskCompletion
    ) throws {
        let id = nextTask.wrappingAdd(1, ordering: .relaxed).oldValue
        let frame = try callFrame(id: id, function: function, chunk: chunk, encode: encode)
        let record = TaskRecord(frame: frame, function: function, timeout: timeout, complete: complete)
        var refused = false
        step(nil, flush: .ifIdle) { inner in
            guard inner.machine.lifecycle == .running else {
                refused = true
                return []
            }
            inner.records[id] = record
            return inner.machine.submit(
                id,
                synchronous: synchronous,
                timeout: timeout.map { max(1, $0.clampedNanoseconds) },
                now: monotonicNanos()
            )
        }
        if refused {
            throw CrewError(.poolClosed, "the pool is closed: it takes no new work", function: function)
        }
    }

    /// Submits `count` tasks of `function` at once (the chunks of a map): every frame is encoded first, then
    /// all go to the state machine under one lock, so the workers get them in few frames and the reactor is
    /// not held up by one lock round per chunk. Nothing is submitted if one of them fails to encode.
    @usableFromInline
    func submitMany(
        function: String,
        synchronous: Bool,
        timeout: Duration?,
        count: Int,
        callsEach: Int = 1,
        encode: (Int, inout [UInt8]) throws -> Void,
        complete: (Int) -> TaskCompletion
    ) throws {
        guard count > 0 else { return }
        let first = nextTask.wrappingAdd(UInt64(count), ordering: .relaxed).oldValue
        // In batches, so the workers start on the first chunks while the later ones are still being encoded.
        var done = 0
        var batch = 16
        var records: [TaskRecord] = []
        while done < count {
            let range = done..<min(count, done + batch)
            records.removeAll(keepingCapacity: true)
            records.reserveCapacity(range.count)
            for index in range {
                let frame = try callFrame(id: first + UInt64(index), function: function, chunk: true) {
                    try encode(index, &$0)
                }
                records.append(
                    TaskRecord(frame: frame, function: function, timeout: timeout, complete: complete(index)))
            }
            var refused = false
            step(nil, flush: .ifIdle) { inner in
                guard inner.machine.lifecycle == .running else {
                    refused = true
                    return []
                }
                var ids: [TaskID] = []
                ids.reserveCapacity(range.count)
                for (offset, record) in records.enumerated() {
                    let id = first + UInt64(range.lowerBound + offset)
                    inner.records[id] = record
                    ids.append(id)
                }
                return inner.machine.submitMany(
                    ids,
                    synchronous: synchronous,
                    timeout: timeout.map { max(1, $0.clampedNanoseconds) },
                    calls: callsEach,
                    now: monotonicNanos()
                )
            }
            if refused {
                throw CrewError(.poolClosed, "the pool is closed: it takes no new work", function: function)
            }
            done = range.upperBound
            batch = min(batch * 2, 256)
        }
    }

    /// The call frame of task `id`, with the function's name on the encoding errors.
    private func callFrame(
        id: TaskID,
        function: String,
        chunk: Bool,
        encode: (inout [UInt8]) throws -> Void
    ) throws -> [UInt8] {
        var frame: [UInt8] = []
        do {
            try Message.appendCall(
                id: id,
                function: function,
                chunk: chunk,
                to: &frame,
                maxFrameSize: crew.options.maxFrameSize,
                arguments: encode
            )
        } catch var error as CrewError {
            error.function = function
            throw error
        } catch {
            throw CrewError(.encodingFailed, "the arguments did not encode: \(error)", function: function)
        }
        return frame
    }

    // MARK: Lifecycle

    func close() {
        step(nil) { $0.machine.close() }
    }

    func terminate() {
        step(nil) { $0.machine.terminate() }
    }

    // MARK: Events

    private func spawned(_ worker: WorkerID, _ result: Result<ChildConnection, CrewError>) {
        switch result {
        case .success(let connection):
            step(nil, flush: .always) { inner in
                inner.connections[worker] = connection
                return inner.machine.workerStarted(worker, now: monotonicNanos())
            }
        case .failure(let error):
            step(nil) { inner in
                inner.lastStartFailure = error
                return inner.machine.workerFailedToStart(worker, now: monotonicNanos())
            }
        }
    }

    /// Sends the pool's initializer to a new worker (the machine asked for it). Its connection keeps the worker
    /// initializing until it answers (and kills it if it fails); the answer goes to the machine.
    private func initialize(_ worker: WorkerID, _ connection: ChildConnection) {
        guard let initializer else { return }
        connection.initialize(initializer.function, arguments: initializer.arguments) { [self] result in
            initialized(worker, result)
        }
    }

    private func initialized(_ worker: WorkerID, _ result: Result<[UInt8], CrewError>) {
        step(nil, flush: .always) { inner in
            var succeeded = true
            if case .failure(let error) = result {
                succeeded = false
                var failure = error
                failure.function = initializer?.function
                failure.message = "the pool's initializer failed: \(error.message)"
                inner.lastStartFailure = failure
            }
            return inner.machine.workerInitialized(worker, succeeded: succeeded, now: monotonicNanos())
        }
    }

    private func exited(_ worker: WorkerID, _ error: CrewError, served: Bool, progress: WorkerProgress?) {
        step((worker, error), flush: .always) { inner in
            inner.connections[worker] = nil
            // A worker whose initializer failed keeps that failure as the reason, rather than the kill that ended it.
            if !served && !inner.machine.initializerFailed(worker) { inner.lastStartFailure = error }
            return inner.machine.workerExited(worker, served: served, progress: progress, now: monotonicNanos())
        }
    }

    /// Answers from a worker, as many as one read brought (on the reactor thread, or on a thread that reads).
    private func answered(_ answers: [Answer], worker: WorkerID) {
        var completions: [TaskFinished] = []
        completions.reserveCapacity(answers.count)
        step(nil, flush: .always) { inner in
            var finished: [TaskID] = []
            finished.reserveCapacity(answers.count)
            for answer in answers {
                let id = answer.id
                guard let record = inner.records.removeValue(forKey: id) else { continue }
                var outcome = answer.result
                if case .failure(var error) = outcome {
                    error.function = record.function
                    outcome = .failure(error)
                }
                completions.append(TaskFinished(completion: record.complete, result: outcome))
                finished.append(id)
            }
            return finished.isEmpty ? [] : inner.machine.tasksFinished(finished, worker: worker, now: monotonicNanos())
        }
        // Frames that submitters queued behind this worker's calls go out now, with whatever this step queued.
        inner.withLock { $0.connections[worker] }?.flush()
        for done in completions { done.completion(done.result) }
    }

    // MARK: Performing actions

    /// Runs `event` on the machine under the lock, queues the frames of `.send` actions into the workers'
    /// connections there (keeping their order), then sends, fails tasks and performs the other actions outside.
    /// `death` is the error of a worker that has just died, for the tasks the event fails because of it.
    /// When the frames queued by a step are sent: at once, or (for submissions to a worker that is busy) with
    /// the next batch the reactor sends that worker after reading its answers — saving a system call and a
    /// wake-up of the worker per submission.
    enum FlushPolicy {
        case always
        case ifIdle
    }

    private func step(
        _ death: (worker: WorkerID, error: CrewError)?,
        flush policy: FlushPolicy = .always,
        _ event: (inout Inner) -> [PoolStateMachine.Action]
    ) {
        var flushes: [ChildConnection] = []
        var initializing: [(WorkerID, ChildConnection)] = []
        var failures: [TaskFinished] = []
        let actions: [PoolStateMachine.Action] = inner.withLock { inner in
            var rest: [PoolStateMachine.Action] = []
            for action in event(&inner) {
                switch action {
                case .initialize(let worker):
                    // Sent outside the lock; the machine sends the worker no task before its initializer answers.
                    if let connection = inner.connections[worker] { initializing.append((worker, connection)) }
                case .send(let worker, let tasks, let urgent):
                    guard let connection = inner.connections[worker] else { continue }
                    var frames: [UInt8] = []
                    if tasks.count == 1, let record = inner.records[tasks[0]] {
                        frames = record.frame  // Shared, not copied.
                    } else {
                        for task in tasks {
                            guard let record = inner.records[task] else { continue }
                            frames.append(contentsOf: record.frame)
                        }
                    }
                    // If the worker has just died, its exit event (on its way) fails or requeues these tasks.
                    if connection.queue(frames) == nil && (policy == .always || urgent) {
                        flushes.append(connection)
                    }
                case .startTimer, .cancelTimer:
                    // Handed to the reactor under the lock, so that a timer's start and its cancel (decided on
                    // different threads) reach it in the order the machine decided them.
                    perform(action)
                case .fail(let task, let reason):
                    guard let record = inner.records.removeValue(forKey: task) else { continue }
                    failures.append(
                        TaskFinished(
                            completion: record.complete, result: .failure(error(for: reason, record, death, inner))))
                default:
                    rest.append(action)
                }
            }
            return rest
        }
        for (worker, connection) in initializing { initialize(worker, connection) }
        for connection in flushes { connection.flush() }
        for action in actions { perform(action) }
        for failure in failures { failure.completion(failure.result) }
    }

    private func error(
        for reason: PoolStateMachine.Failure,
        _ record: TaskRecord,
        _ death: (worker: WorkerID, error: CrewError)?,
        _ inner: Inner
    ) -> CrewError {
        switch reason {
        case .crashed(let worker):
            var error = death?.worker == worker ? death!.error : CrewError(.workerCrashed, "the worker died")
            error.function = record.function
            error.message = "the worker running \"\(record.function)\" died: " + error.message
            error.callState = .running
            return error
        case .diedWithOthers(let worker):
            var error = death?.worker == worker ? death!.error : CrewError(.workerCrashed, "the worker died")
            error.function = record.function
            error.message =
                "\"\(record.function)\" was running when its worker died, beside other calls of that "
                + "worker: it may not be the call that caused it: " + error.message
            error.callState = .runningWithOthers
            return error
        case .timedOut(let worker):
            let died = death?.worker == worker ? death?.error : nil
            return CrewError(
                .timedOut,
                "\"\(record.function)\" ran longer than its timeout of \(record.timeout.map { "\($0)" } ?? "?"); "
                    + "its worker was stopped",
                pid: died?.pid,
                exitStatus: died?.exitStatus,
                lastStderr: died?.lastStderr,
                function: record.function
            )
        case .lost(let worker):
            var error = death?.worker == worker ? death!.error : CrewError(.workerCrashed, "the worker died")
            error.function = record.function
            error.message =
                "\"\(record.function)\" finished, but its worker died before sending the result: " + error.message
            error.callState = .finishedUnsent
            return error
        case .terminated:
            return CrewError(
                .terminated, "the pool was terminated before \"\(record.function)\" finished", function: record.function
            )
        case .broken:
            var error = inner.lastStartFailure ?? CrewError(.workerCrashed, "workers die before they serve")
            error.function = record.function
            error.message = "the pool cannot start workers, so \"\(record.function)\" cannot run: " + error.message
            return error
        }
    }

    private func perform(_ action: PoolStateMachine.Action) {
        switch action {
        case .spawn(let worker):
            ChildConnection.spawnAsync(
                crew: crew,
                mode: .worker,
                handed: initializer?.handed ?? [],
                handlers: ChildConnection.Handlers(
                    onExit: { [self] _, error, served, progress in
                        exited(worker, error, served: served, progress: progress)
                    },
                    onResults: { [self] answers in answered(answers, worker: worker) },
                    trackProgress: true,
                    // A blocking read wakes sooner than the reactor's epoll wait (see
                    // ChildConnection.readOnOwnThread), which matters for calls awaited one at a time.
                    answersOnOwnThread: true
                ),
                completion: { [self] result in spawned(worker, result) }
            )
        case .startTimer(let task, let nanoseconds):
            Reactor.shared.submit { [self] in
                timers[task] = Reactor.shared.schedule(afterNanoseconds: nanoseconds) { [self] in
                    timers[task] = nil
                    step(nil) { $0.machine.timeoutFired(task) }
                }
            }
        case .cancelTimer(let task):
            Reactor.shared.submit { [self] in
                if let timer = timers.removeValue(forKey: task) { Reactor.shared.cancelTimer(timer) }
            }
        case .signal(let worker, let signal):
            inner.withLock { $0.connections[worker] }?.stop(signal)
        case .startGraceTimer(let worker, let nanoseconds):
            Reactor.shared.submit { [self] in
                Reactor.shared.schedule(afterNanoseconds: nanoseconds) { [self] in
                    step(nil) { $0.machine.graceExpired(worker) }
                }
            }
        case .shutdown(let worker):
            inner.withLock { $0.connections[worker] }?.shutdown()
        case .finished:
            finished.complete(true)
        case .send, .fail, .initialize:
            break  // Done under the lock by `step`.
        }
    }

    /// The pids of the live workers (for tests and diagnostics).
    var workerPIDs: [Int32] {
        inner.withLock { inner in inner.connections.keys.sorted().compactMap { inner.connections[$0]?.pid } }
    }
}
