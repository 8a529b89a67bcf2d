// Over 500 lines: the pool mirrors ProcessPool's API (map, imap, apply, their async forms, close, join, terminate),
// each method documented; the work behind each is a few lines on a shared job queue.

import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A pool of threads with the API of ``ProcessPool``: Python's `multiprocessing.dummy.Pool`.
///
/// ```swift
/// let pool = try ThreadPool(processes: 4)        // was: try ProcessPool(processes: 4)
/// let squares = try await pool.map(Work.square, 0..<100)
/// ```
///
/// It takes the same registered ``Crew/Function``s (called directly, with no encoding) and plain closures too.
/// Threads share the process: nothing is copied, and a trap in a call ends the process — use a ``ProcessPool``
/// to isolate crashes. A `timeout:` cannot stop a thread: the call's result fails with
/// ``CrewError/Code/timedOut`` when the time is up, and the call runs on with its result dropped.
/// A function that throws fails its call with ``CrewError/Code/remoteError`` (the error's type name and
/// description), as in a process pool, unless the function declares the error's type
/// (``Crew/Function/throwing(_:)``): then the call rethrows the error itself. A thrown ``CrewError`` passes as it is.
public final class ThreadPool: WorkerPool, Sendable {
    /// How many threads the pool runs.
    public let processes: Int
    @usableFromInline
    let jobs: JobQueue
    /// Completed when the pool is closed or terminated and every thread has ended.
    private let finished = Completion<Bool>()
    private let running: Locked<Int>

    /// Starts a pool of `processes` threads (one per CPU when nil). The label is Python's, so that switching
    /// from a ``ProcessPool`` is one word.
    ///
    /// - Parameters:
    ///   - processes: How many threads.
    ///   - initializer: Runs on each thread before it takes work (Python's `initializer`).
    /// - Throws: ``CrewError/Code/invalidArgument`` for fewer than one thread.
    public init(processes: Int? = nil, initializer: (@Sendable () throws -> Void)? = nil) throws {
        let count = processes ?? max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        guard count >= 1 else { throw CrewError(.invalidArgument, "a pool needs at least one thread, not \(count)") }
        self.processes = count
        self.jobs = JobQueue()
        self.running = Locked(count)
        for _ in 0..<count {
            let name = "Thread-\(threadCounter.wrappingAdd(1, ordering: .relaxed).newValue)"
            startThread(name: name) { [jobs, finished, running] in
                ThreadNames.set(name)
                do {
                    try initializer?()
                    jobs.serve()
                } catch {
                    // Python's threads would print it and go on without their initialization. Here the pool is
                    // broken: its calls fail with the initializer's error rather than run uninitialized.
                    let type = String(reflecting: Swift.type(of: error))
                    jobs.workerFailed(
                        CrewError(.remoteError, "the pool's initializer threw \(type): \(error)", remoteErrorType: type)
                    )
                }
                if running.withLock({
                    $0 -= 1
                    return $0
                }) == 0 {
                    finished.complete(true)
                }
            }
        }
    }

    /// Starts a pool of `threads` threads.
    public convenience init(threads: Int) throws {
        try self.init(processes: threads)
    }

    /// Starts a pool whose threads each run the registered `initializer` with `initArgs` first.
    public convenience init<A>(processes: Int? = nil, initializer: Crew.Function<A, Crew.Empty>, initArgs: A) throws {
        try self.init(processes: processes, initializer: { _ = try initializer.callHere(initArgs) })
    }

    deinit {
        jobs.close()
    }

    // MARK: One call

    /// Runs `body` on a pool thread and returns its value.
    public func apply<R: Sendable>(timeout: Duration? = nil, _ body: @escaping @Sendable () throws -> R) async throws
        -> R
    {
        try await applyAsync(timeout: timeout, body).value
    }

    /// Runs `function(args)` on a pool thread: Python's `apply_async`. `callback` or `errorCallback` runs on
    /// the pool thread when the call ends.
    ///
    /// - Throws: ``CrewError/Code/poolClosed`` after ``close()`` or ``terminate()``.
    @inlinable
    @discardableResult
    public func applyAsync<A, R>(
        _ function: Crew.Function<A, R>,
        _ args: A,
        timeout: Duration? = nil,
        callback: (@Sendable (R) -> Void)? = nil,
        errorCallback: (@Sendable (CrewError) -> Void)? = nil
    ) throws -> AsyncResult<R> {
        guard case .sync(let body) = function.body else {
            return try applyAsync(
                timeout: timeout, name: function.name, callback: callback, errorCallback: errorCallback
            ) {
                try function.callHere(args)
            }
        }
        // A synchronous body runs straight from the job: one closure holds the call, its result and its failure.
        let result = AsyncResult<R>(callback: callback, errorCallback: errorCallback)
        let name = function.name
        try jobs.submit(
            Job { failure in
                if let failure {
                    result.complete(.failure(failure))
                    return
                }
                if let timeout { Self.expire(result, after: timeout, name: name) }
                result.complete(CallOutcome.of(name: name) { try body(args) })
            }, name: name)
        return result
    }

    /// Runs `body` on a pool thread; its result arrives later.
    @discardableResult
    public func applyAsync<R: Sendable>(
        timeout: Duration? = nil,
        callback: (@Sendable (R) -> Void)? = nil,
        errorCallback: (@Sendable (CrewError) -> Void)? = nil,
        _ body: @escaping @Sendable () throws -> R
    ) throws -> AsyncResult<R> {
        try applyAsync(timeout: timeout, name: nil, callback: callback, errorCallback: errorCallback, body)
    }

    @inlinable
    func applyAsync<R: Sendable>(
        timeout: Duration?,
        name: String?,
        callback: (@Sendable (R) -> Void)?,
        errorCallback: (@Sendable (CrewError) -> Void)?,
        _ body: @escaping @Sendable () throws -> R
    ) throws -> AsyncResult<R> {
        let result = AsyncResult<R>(callback: callback, errorCallback: errorCallback)
        try jobs.submit(
            Job { failure in
                if let failure {
                    result.complete(.failure(failure))
                    return
                }
                if let timeout { Self.expire(result, after: timeout, name: name) }
                result.complete(CallOutcome.of(name: name, body))
            }, name: name)
        return result
    }

    /// Fails `result` with `timedOut` once `timeout` has passed, unless it has completed by then.
    @usableFromInline
    static func expire<R>(_ result: AsyncResult<R>, after timeout: Duration, name: String?) {
        let nanoseconds = timeout.clampedNanoseconds
        Reactor.shared.submit {
            Reactor.shared.schedule(afterNanoseconds: nanoseconds) {
                result.complete(
                    .failure(
                        CrewError(
                            .timedOut,
                            "the call ran longer than its timeout of \(timeout); a thread cannot be stopped, so it runs on "
                                + "and its result is dropped",
                            function: name
                        )))
            }
        }
    }

    // MARK: Many calls

    /// Runs `transform` on every item on the pool's threads; the results in order.
    public func map<A: Sendable, R: Sendable, S: Sequence<A>>(
        _ items: S,
        chunkSize: Int? = nil,
        _ transform: @escaping @Sendable (A) throws -> R
    ) async throws -> [R] {
        try await mapAsync(
            Array(items), chunkSize: chunkSize, timeout: nil, name: nil, callback: nil, errorCallback: nil, transform
        ).value
    }

    // Inlinable down to the loop over a chunk, so that it runs specialized for the function's types.

    /// Starts a map whose results arrive later: Python's `map_async`. (`apply`, `map` and `starmap` come from
    /// ``WorkerPool``.)
    ///
    /// The items are run in chunks of `chunkSize` (Python's automatic size when nil: four chunks per thread);
    /// the first call that fails fails the map.
    @inlinable
    public func mapAsync<A, R, S: Sequence<A>>(
        _ function: Crew.Function<A, R>,
        _ items: S,
        chunkSize: Int? = nil,
        timeout: Duration? = nil,
        callback: (@Sendable ([R]) -> Void)? = nil,
        errorCallback: (@Sendable (CrewError) -> Void)? = nil
    ) throws -> AsyncResult<[R]> {
        // A synchronous body is the chunk's transform itself: no switch and no closure around it per item.
        let transform: @Sendable (A) throws -> R
        switch function.body {
        case .sync(let body): transform = body
        case .async: transform = { try function.callHere($0) }
        }
        return try mapAsync(
            Array(items), chunkSize: chunkSize, timeout: timeout, name: function.name, callback: callback,
            errorCallback: errorCallback, transform
        )
    }

    @inlinable
    func mapAsync<A: Sendable, R: Sendable>(
        _ items: [A],
        chunkSize: Int?,
        timeout: Duration?,
        name: String?,
        callback: (@Sendable ([R]) -> Void)?,
        errorCallback: (@Sendable (CrewError) -> Void)?,
        _ transform: @escaping @Sendable (A) throws -> R
    ) throws -> AsyncResult<[R]> {
        let result = AsyncResult<[R]>(callback: callback, errorCallback: errorCallback)
        if let chunkSize, chunkSize < 1 {
            throw CrewError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        guard !items.isEmpty else {
            try jobs.checkOpen(name: name)
            result.complete(.success([]))
            return result
        }
        let size = chunkSize ?? ProcessPool.automaticChunkSize(count: items.count, processes: processes)
        let chunks = (items.count + size - 1) / size
        // Each chunk writes its results in place; the last to end moves them all into the array (no array per chunk,
        // no concatenation).
        let results = MapResults<R>(count: items.count, chunks: chunks, result: result)
        var batch: [Job] = []
        batch.reserveCapacity(chunks)
        for index in 0..<chunks {
            let range = (index * size)..<min(items.count, (index + 1) * size)
            batch.append(
                Job { failure in
                    if let failure {
                        results.finish(range, failure: failure)
                        return
                    }
                    if let timeout { Self.expire(result, after: timeout * range.count, name: name) }
                    var i = range.lowerBound
                    do {
                        while i < range.upperBound {
                            (results.base + i).initialize(to: try transform(items[i]))
                            i += 1
                        }
                        results.finish(range, failure: nil)
                    } catch {
                        (results.base + range.lowerBound).deinitialize(count: i - range.lowerBound)
                        results.finish(range, failure: CallOutcome.failure(error, name: name))
                    }
                })
        }
        do {
            try jobs.submit(batch, name: name)
        } catch {
            results.abandon()
            throw error
        }
        return result
    }

    /// Runs `function` on every item; the results in order as they become available: Python's `imap`.
    public func imap<A, R, S: Sequence<A>>(
        _ function: Crew.Function<A, R>,
        _ items: S,
        chunkSize: Int = 1,
        timeout: Duration? = nil
    ) throws -> PoolResults<R> {
        try results(function, Array(items), chunkSize: chunkSize, timeout: timeout, ordered: true)
    }

    /// Runs `function` on every item; the results as they finish, in any order: Python's `imap_unordered`.
    public func imapUnordered<A, R, S: Sequence<A>>(
        _ function: Crew.Function<A, R>,
        _ items: S,
        chunkSize: Int = 1,
        timeout: Duration? = nil
    ) throws -> PoolResults<R> {
        try results(function, Array(items), chunkSize: chunkSize, timeout: timeout, ordered: false)
    }

    private func results<A, R>(
        _ function: Crew.Function<A, R>,
        _ items: [A],
        chunkSize: Int,
        timeout: Duration?,
        ordered: Bool
    ) throws -> PoolResults<R> {
        guard chunkSize >= 1 else {
            throw CrewError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        let chunks = (items.count + chunkSize - 1) / chunkSize
        let buffer = ResultBuffer<R>(ordered: ordered, chunks: chunks)
        var batch: [Job] = []
        batch.reserveCapacity(chunks)
        let name = function.name
        for index in 0..<chunks {
            let range = (index * chunkSize)..<min(items.count, (index + 1) * chunkSize)
            batch.append(
                Job(
                    run: {
                        buffer.deliver(
                            index,
                            CallOutcome.of(name: name) {
                                var values: [R] = []
                                values.reserveCapacity(range.count)
                                for i in range { values.append(try function.callHere(items[i])) }
                                return values
                            })
                    },
                    fail: { buffer.deliver(index, .failure($0)) }
                ))
        }
        if batch.isEmpty { try jobs.checkOpen(name: name) } else { try jobs.submit(batch, name: name) }
        return PoolResults(buffer: buffer)
    }

    // MARK: Lifecycle

    /// Takes no more work; the threads finish what is queued, then end. Python's `close`.
    public func close() {
        jobs.close()
    }

    /// Takes no more work and fails every call not yet started with ``CrewError/Code/terminated``. Calls
    /// already running finish (threads cannot be killed); their results still arrive.
    public func terminate() {
        jobs.terminate()
    }

    /// Waits until every thread has ended, after ``close()`` or ``terminate()``.
    ///
    /// - Throws: ``CrewError/Code/poolNotClosed`` if the pool is still running.
    public func join() async throws {
        try jobs.checkClosedForJoin()
        guard await finished.wait() != nil else { throw CancellationError() }
    }

    /// Blocks until every thread has ended or `timeout` passes, after ``close()`` or ``terminate()``.
    ///
    /// - Returns: true if every thread has ended.
    @discardableResult
    public func join(timeout: Duration? = nil) throws -> Bool {
        try jobs.checkClosedForJoin()
        return finished.wait(timeout: timeout) != nil
    }
}

/// A unit of a thread pool's work, and how to fail it if it never runs.
@usableFromInline
struct Job: Sendable {
    /// Runs the job when given nil, fails it with the error otherwise: one closure, so one allocation per job.
    @usableFromInline var body: @Sendable (CrewError?) -> Void

    @inlinable
    init(_ body: @escaping @Sendable (CrewError?) -> Void) {
        self.body = body
    }

    @inlinable
    init(run: @escaping @Sendable () -> Void, fail: @escaping @Sendable (CrewError) -> Void) {
        self.body = { error in
            if let error { fail(error) } else { run() }
        }
    }

    func run() { body(nil) }
    func fail(_ error: CrewError) { body(error) }
}

/// The jobs waiting for a thread pool's threads: a FIFO under a mutex, with a condition for idle threads.
@usableFromInline
final class JobQueue: @unchecked Sendable {
    // @unchecked Sendable: every field is touched only with `mutex` held.
    private enum State {
        case open, closed, terminated
    }

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [Job] = []
    private var head = 0
    private var idle = 0
    private var state = State.open
    /// Set when every thread's initializer failed: work is failed with it instead of waiting forever.
    private var broken: CrewError?
    private var threads = 0

    init() {
        _ = crew_mutex_init_adaptive(mutex)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    private func locked<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    @usableFromInline
    func checkOpen(name: String?) throws {
        try locked {
            guard state == .open else {
                throw CrewError(.poolClosed, "the pool is closed: it takes no new work", function: name)
            }
            if let broken { throw broken }
        }
    }

    func checkClosedForJoin() throws {
        try locked {
            if state == .open { throw CrewError(.poolNotClosed, "join() needs close() or terminate() first") }
        }
    }

    @usableFromInline
    func submit(_ job: Job, name: String?) throws {
        // Not through the batch path: a one-element array would be an allocation per call.
        let wake: Bool = try locked {
            guard state == .open else {
                throw CrewError(.poolClosed, "the pool is closed: it takes no new work", function: name)
            }
            if let broken { throw broken }
            let wasEmpty = head == jobs.count
            jobs.append(job)
            return wasEmpty && idle > 0
        }
        if wake { pthread_cond_signal(condition) }
    }

    @usableFromInline
    func submit(_ batch: [Job], name: String?) throws {
        let wake: Int = try locked {
            guard state == .open else {
                throw CrewError(.poolClosed, "the pool is closed: it takes no new work", function: name)
            }
            if let broken { throw broken }
            // Wake sleepers only when the queue was empty: otherwise a woken thread is already on its way, and
            // each thread that takes a job wakes the next if more wait (no wake-up per submission).
            let wasEmpty = head == jobs.count
            jobs.append(contentsOf: batch)
            return wasEmpty ? min(idle, batch.count) : 0
        }
        if wake == 1 {
            pthread_cond_signal(condition)
        } else if wake > 1 {
            pthread_cond_broadcast(condition)
        }
    }

    /// A thread's loop: runs jobs until the queue is closed and empty, or terminated.
    func serve() {
        locked { threads += 1 }
        while true {
            pthread_mutex_lock(mutex)
            while head == jobs.count && state == .open {
                idle += 1
                pthread_cond_wait(condition, mutex)
                idle -= 1
            }
            if head == jobs.count || state == .terminated {
                threads -= 1
                pthread_mutex_unlock(mutex)
                return
            }
            let job = jobs[head]
            head += 1
            let wakeNext = head < jobs.count && idle > 0
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 1024 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            pthread_mutex_unlock(mutex)
            if wakeNext { pthread_cond_signal(condition) }
            job.run()
        }
    }

    /// A thread's initializer failed: it takes no work. If none is left, queued and future work fails.
    func workerFailed(_ error: CrewError) {
        let failed: [Job] = locked {
            broken = error
            let failed = Array(jobs[head...])
            jobs.removeAll()
            head = 0
            return failed
        }
        for job in failed { job.fail(error) }
    }

    func close() {
        locked { if state == .open { state = .closed } }
        pthread_cond_broadcast(condition)
    }

    func terminate() {
        let dropped: [Job] = locked {
            state = .terminated
            let dropped = Array(jobs[head...])
            jobs.removeAll()
            head = 0
            return dropped
        }
        pthread_cond_broadcast(condition)
        for job in dropped { job.fail(CrewError(.terminated, "the pool was terminated before this call started")) }
    }
}

/// A thread pool map's results, written in place by the chunks that compute them and moved into one array when the
/// last chunk ends.
@usableFromInline
final class MapResults<R: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: each chunk initializes only its own range of `base`, and reports its end under `state`'s
    // lock; the storage is read (moved into the array) or freed only after every chunk has reported.
    @usableFromInline let base: UnsafeMutablePointer<R>
    private let count: Int
    private let result: AsyncResult<[R]>
    private struct State {
        var remaining: Int
        /// The ranges that were initialized, to deinitialize if the map fails.
        var done: [Range<Int>] = []
        var failed = false
    }
    private let state: Mutex<State>

    @usableFromInline
    init(count: Int, chunks: Int, result: AsyncResult<[R]>) {
        self.base = .allocate(capacity: count)
        self.count = count
        self.result = result
        self.state = Mutex(State(remaining: chunks))
    }

    /// The chunk over `range` has ended: every result in it initialized (no failure), or none.
    @usableFromInline
    func finish(_ range: Range<Int>, failure: CrewError?) {
        let (last, failedFirst, failed, done): (Bool, Bool, Bool, [Range<Int>]) = state.withLock { state in
            var first = false
            if failure != nil {
                first = !state.failed
                state.failed = true
            } else {
                state.done.append(range)
            }
            state.remaining -= 1
            return (state.remaining == 0, first, state.failed, state.remaining == 0 ? state.done : [])
        }
        if failedFirst, let failure { result.complete(.failure(failure)) }
        guard last else { return }
        if failed {
            for range in done { (base + range.lowerBound).deinitialize(count: range.count) }
            base.deallocate()
            return
        }
        let values = [R](unsafeUninitializedCapacity: count) { buffer, initialized in
            buffer.baseAddress!.moveInitialize(from: base, count: count)
            initialized = count
        }
        base.deallocate()
        result.complete(.success(values))
    }

    /// No chunk will run (the pool refused the batch): frees the storage, which holds nothing yet.
    @usableFromInline
    func abandon() {
        base.deallocate()
    }
}
