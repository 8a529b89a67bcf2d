import AsyncAlgorithms
import CCrewShims
public import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// gevent's toolkit on Swift concurrency: coroutines are tasks, and no new scheduler is needed. What gevent's
// `monkey.patch_all()` does for blocking calls — keep one from stalling every other coroutine — `blocking { }`
// does explicitly, by moving the call to a bounded pool of threads.

/// A coroutine started by ``spawn(priority:_:)``: gevent's `Greenlet`, a Swift task underneath.
public struct Coroutine<Success: Sendable>: Sendable {
    @usableFromInline let task: Task<Success, any Error>
    @usableFromInline let state: CoroutineState

    @inlinable
    init(task: Task<Success, any Error>, state: CoroutineState) {
        self.task = task
        self.state = state
    }

    /// The coroutine's value, once it has finished (as a `Task`'s: a cancelled waiter goes on waiting).
    ///
    /// - Throws: what the coroutine threw.
    public var value: Success {
        get async throws { try await task.value }
    }

    /// Cancels the coroutine (gevent's `kill()`): Swift's cooperative cancellation, so it ends at its next
    /// cancellation point (a `sleep`, a `Task.checkCancellation()`, ...).
    public func cancel() {
        task.cancel()
    }

    /// True once the coroutine has returned or thrown (gevent's `ready()`).
    public var isDone: Bool { state.outcome != 0 }

    /// True if it returned a value (gevent's `successful()`); false while running or if it threw.
    public var succeeded: Bool { state.outcome == 1 }
}

/// How a coroutine ended: 0 running, 1 returned, 2 threw.
@usableFromInline
final class CoroutineState: Sendable {
    @usableFromInline let word = Atomic<UInt8>(0)

    @inlinable
    init() {}

    var outcome: UInt8 { word.load(ordering: .acquiring) }

    @inlinable
    func finish(succeeded: Bool) {
        word.store(succeeded ? 1 : 2, ordering: .releasing)
    }
}

// Inlinable, so that a coroutine's task is made where its type is known (a generic one costs runtime type
// lookups on every spawn: measured 0.5 against 1.3 M spawns/s for a plain `Task`).

/// Starts `body` as a coroutine: gevent's `spawn`. It runs concurrently with the caller on Swift's cooperative
/// thread pool; any number can be parked waiting (a sleep, an event, I/O) at little cost each.
@inlinable
@discardableResult
public func spawn<T: Sendable>(
    priority: TaskPriority? = nil,
    _ body: @escaping @Sendable () async throws -> T
) -> Coroutine<T> {
    spawnCoroutine(priority: priority, body)
}

@inlinable
func spawnCoroutine<T: Sendable>(
    priority: TaskPriority? = nil,
    _ body: @escaping @Sendable () async throws -> T
) -> Coroutine<T> {
    let state = CoroutineState()
    let task = Task(priority: priority) {
        do {
            let value = try await body()
            state.finish(succeeded: true)
            return value
        } catch {
            state.finish(succeeded: false)
            throw error
        }
    }
    return Coroutine(task: task, state: state)
}

/// Waits for every coroutine to finish, or for `timeout`: gevent's `joinall`.
///
/// - Parameters:
///   - coroutines: The coroutines to wait for.
///   - timeout: The longest to wait (no limit when nil).
///   - raiseError: If true, the first coroutine that throws ends the wait with its error, and the coroutines
///     still running are cancelled. If false (gevent's default), failures are left in the coroutines.
/// - Returns: the coroutines that finished, in the order given.
/// - Throws: with `raiseError`, the first error; `CancellationError` if the waiting task is cancelled while it
///   waits with a timeout or `raiseError`.
@discardableResult
public func joinAll<T: Sendable>(
    _ coroutines: [Coroutine<T>],
    timeout: Duration? = nil,
    raiseError: Bool = false
) async throws -> [Coroutine<T>] {
    if timeout == nil && !raiseError {
        // Nothing to race: wait for each in turn, as its own task's result.
        for coroutine in coroutines { _ = await coroutine.task.result }
        return coroutines
    }
    // A waiter per coroutine reports its end on a stream; the stream can be abandoned at a time-out or at the
    // first error, where waiting on the tasks themselves could not.
    let (events, sink) = AsyncStream<JoinEvent>.makeStream()
    for (index, coroutine) in coroutines.enumerated() {
        Task {
            _ = await coroutine.task.result
            sink.yield(.finished(index))
        }
    }
    if let timeout, !coroutines.isEmpty {
        let nanoseconds = timeout.clampedNanoseconds
        Reactor.shared.submit {
            Reactor.shared.schedule(afterNanoseconds: nanoseconds) { sink.yield(.timedOut) }
        }
    }
    var finished = Set<Int>()
    try await withTaskCancellationHandler {
        for await event in events {
            guard case .finished(let index) = event else { break }
            finished.insert(index)
            if raiseError, case .failure(let error) = await coroutines[index].task.result {
                for (other, coroutine) in coroutines.enumerated() where !finished.contains(other) { coroutine.cancel() }
                sink.finish()
                throw error
            }
            if finished.count == coroutines.count { break }
        }
    } onCancel: {
        sink.finish()
    }
    sink.finish()
    try Task.checkCancellation()
    // Those that ended before their waiter could report it count too.
    return coroutines.indices.filter { finished.contains($0) || coroutines[$0].isDone }.map { coroutines[$0] }
}

/// What `joinAll` waits for.
enum JoinEvent: Sendable {
    case finished(Int)
    case timedOut
}

/// Suspends the running coroutine for `duration`, letting others run: gevent's `sleep`. A zero duration only
/// yields. (Glibc's blocking `sleep(_:)` would hold a cooperative thread: wrap such calls in ``blocking(_:)``.)
///
/// - Throws: `CancellationError` if the coroutine is cancelled while it sleeps.
public func sleep(for duration: Duration) async throws {
    if duration <= .zero {
        await Task.yield()
        try Task.checkCancellation()
    } else {
        try await Task.sleep(for: duration)
    }
}

/// Runs `body`, giving up after `timeout`: gevent's `Timeout`. On time-out `body` is cancelled and this throws
/// ``CrewError/Code/timedOut`` at once — also if `body` ignores cancellation (it then runs on, unawaited).
public func withTimeout<T: Sendable>(
    _ timeout: Duration,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let outcome = Completion<Result<T, ErrorBox>>()
    let task = Task {
        do {
            outcome.complete(.success(try await body()))
        } catch {
            outcome.complete(.failure(ErrorBox(error: error)))
        }
    }
    let nanoseconds = timeout.clampedNanoseconds
    Reactor.shared.submit {
        Reactor.shared.schedule(afterNanoseconds: nanoseconds) {
            outcome.complete(.failure(ErrorBox(error: CrewError(.timedOut, "the call did not finish within \(timeout)"))))
        }
    }
    let result = await withTaskCancellationHandler {
        await outcome.wait()
    } onCancel: {
        task.cancel()
    }
    guard let result else { throw CancellationError() }
    switch result {
    case .success(let value):
        return value
    case .failure(let box):
        if let error = box.error as? CrewError, error.code == .timedOut { task.cancel() }
        throw box.error
    }
}

/// Moves a blocking call — a C library, `sleep(2)` as in the tutorial, file I/O — off Swift's cooperative
/// threads onto a bounded pool of threads, so that it never stalls other coroutines: the job gevent's
/// `monkey.patch_all()` does.
///
/// The pool grows to ``BlockingPool/limit`` threads; beyond that, callers wait (suspended, holding no thread)
/// for one to free up — back-pressure rather than unbounded threads.
public func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await BlockingPool.shared.run(body)
}

/// The threads behind ``blocking(_:)``.
public final class BlockingPool: @unchecked Sendable {
    // @unchecked Sendable: `state` is behind its lock; `wakeups` is a semaphore, made for use across threads.
    /// The pool ``blocking(_:)`` uses.
    public static let shared = BlockingPool(limit: 64)

    /// The most threads the pool runs at once.
    public let limit: Int

    private struct State {
        var queue: [@Sendable () -> Void] = []
        var head = 0
        var idle = 0
        var threads = 0
    }

    private let state = Locked(State())
    private let wakeups: UnsafeMutablePointer<sem_t>

    /// A pool of at most `limit` threads, started as needed.
    public init(limit: Int) {
        self.limit = max(1, limit)
        wakeups = .allocate(capacity: 1)
        sem_init(wakeups, 0, 0)
    }

    deinit {
        sem_destroy(wakeups)
        wakeups.deallocate()
    }

    /// Threads running now (busy or idle).
    public var threads: Int { state.withLock { $0.threads } }

    /// Calls waiting for a thread now.
    public var waiting: Int { state.withLock { $0.queue.count - $0.head } }

    /// Runs `body` on one of the pool's threads and returns its value.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            submit {
                do {
                    continuation.resume(returning: try body())
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    private func submit(_ job: @escaping @Sendable () -> Void) {
        enum Action { case wake, start, none }
        let action: Action = state.withLock { state in
            state.queue.append(job)
            if state.idle > 0 {
                state.idle -= 1
                return .wake
            }
            if state.threads < limit {
                state.threads += 1
                return .start
            }
            return .none
        }
        switch action {
        case .wake: sem_post(wakeups)
        case .start: startThread(name: "crew-blocking") { [self] in serve() }
        case .none: break
        }
    }

    private func serve() {
        while true {
            let job: (@Sendable () -> Void)? = state.withLock { state in
                guard state.head < state.queue.count else {
                    state.idle += 1
                    return nil
                }
                let job = state.queue[state.head]
                state.head += 1
                if state.head == state.queue.count {
                    state.queue.removeAll(keepingCapacity: true)
                    state.head = 0
                }
                return job
            }
            if let job {
                job()
            } else {
                // Idle: wait for a wake-up (a submission that counted on this thread).
                while sem_wait(wakeups) != 0 && errno == EINTR {}
            }
        }
    }
}

/// A pool that runs at most `size` coroutines at once: gevent's `Pool(size)`.
///
/// ```swift
/// let pool = CoroutinePool(size: 100)
/// let pages = try await pool.map(urls) { url in try await fetch(url) }
/// ```
public final class CoroutinePool: WorkerPool, Sendable {
    /// How many coroutines may run at once.
    public let size: Int
    private let slots: AsyncSlots
    private let closed = Atomic<Bool>(false)
    /// The coroutines running now, for ``cancelAll()``.
    private let spawned = Locked<[UInt64: @Sendable () -> Void]>([:])
    private let nextID = Atomic<UInt64>(0)

    /// A pool of `size` concurrent coroutines.
    ///
    /// - Throws: ``CrewError/Code/invalidArgument`` if `size` is below 1.
    public init(size: Int) throws {
        guard size >= 1 else { throw CrewError(.invalidArgument, "a coroutine pool needs a size of at least 1, not \(size)") }
        self.size = size
        self.slots = AsyncSlots(size)
    }

    /// Coroutines running now.
    public var running: Int { size - slots.free }

    /// Starts `body` once a slot is free — suspending the caller until then (back-pressure, as gevent's
    /// `Pool.spawn` blocks when the pool is full).
    @discardableResult
    public func spawn<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> Coroutine<T> {
        try checkOpen(nil)
        try await slots.acquire()
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        let coroutine = spawnCoroutine { [slots, spawned] in
            defer {
                spawned.withLock { _ = $0.removeValue(forKey: id) }
                slots.release()
            }
            return try await body()
        }
        spawned.withLock { $0[id] = { coroutine.cancel() } }
        if coroutine.isDone { spawned.withLock { _ = $0.removeValue(forKey: id) } }
        return coroutine
    }

    // Inlinable, so that the workers' loop runs specialized for the item and result types.

    /// Runs `transform` on every item, at most ``size`` at once; the results in order. The first error cancels
    /// the rest and is thrown.
    @inlinable
    public func map<A: Sendable, R: Sendable, S: Sequence<A>>(
        _ items: S,
        _ transform: @escaping @Sendable (A) async throws -> R
    ) async throws -> [R] {
        let items = Array(items)
        guard !items.isEmpty else { return [] }
        // `size` workers take the next index until none is left (asyncio's worker-queue pattern): one task per
        // worker, not one per item. Each index is written by the one worker that took it.
        let next = SharedCounter()
        let results = ResultSlots<R>(count: items.count)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<min(size, items.count) {
                group.addTask {
                    while true {
                        let index = next.take()
                        guard index < items.count else { return }
                        try Task.checkCancellation()
                        results.set(index, try await transform(items[index]))
                    }
                }
            }
            try await group.waitForAll()
        }
        return results.values()
    }

    /// Runs `transform` on every item, at most ``size`` at once; the results as they finish.
    public func imapUnordered<A: Sendable, R: Sendable, S: Sequence<A>>(
        _ items: S,
        _ transform: @escaping @Sendable (A) async throws -> R
    ) -> AsyncThrowingStream<R, any Error> {
        let items = Array(items)
        let size = self.size
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await withThrowingTaskGroup(of: R.self) { group in
                        var next = 0
                        while next < min(size, items.count) {
                            let item = items[next]
                            group.addTask { try await transform(item) }
                            next += 1
                        }
                        while let value = try await group.next() {
                            continuation.yield(value)
                            if next < items.count {
                                let item = items[next]
                                group.addTask { try await transform(item) }
                                next += 1
                            }
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Waits until every coroutine the pool is running has finished (gevent's `Pool.join`).
    public func join() async throws {
        try await slots.waitUntilAllFree()
    }

    // MARK: The pool API (WorkerPool), for registered functions

    /// The pool's size, under the name every ``WorkerPool`` has.
    public var processes: Int { size }

    private func checkOpen(_ name: String?) throws {
        if closed.load(ordering: .acquiring) {
            throw CrewError(.poolClosed, "the pool is closed: it takes no new work", function: name)
        }
    }

    /// Runs `function(args)` as a coroutine of the pool (in this process, no encoding) once a slot is free.
    @discardableResult
    public func applyAsync<A, R>(
        _ function: Function<A, R>,
        _ args: A,
        timeout: Duration? = nil,
        callback: (@Sendable (R) -> Void)? = nil,
        errorCallback: (@Sendable (CrewError) -> Void)? = nil
    ) throws -> AsyncResult<R> {
        try checkOpen(function.name)
        let result = AsyncResult<R>(callback: callback, errorCallback: errorCallback)
        let name = function.name
        Task { [slots] in
            do {
                try await slots.acquire()
            } catch {
                result.complete(.failure(CrewError(.cancelled, "cancelled before it started", function: name)))
                return
            }
            defer { slots.release() }
            result.complete(await CallOutcome.of(name: name) { try await Self.call(function, args, timeout: timeout) })
        }
        return result
    }

    /// One call of `function` in this task, given up after `timeout` if there is one.
    private static func call<A, R>(_ function: Function<A, R>, _ args: A, timeout: Duration?) async throws -> R {
        guard let timeout else { return try await function.callAsync(args) }
        return try await withTimeout(timeout) { try await function.callAsync(args) }
    }

    /// Runs `function` on every item as coroutines of the pool; the results in order, later.
    public func mapAsync<A, R, S: Sequence<A>>(
        _ function: Function<A, R>,
        _ items: S,
        chunkSize: Int? = nil,
        timeout: Duration? = nil,
        callback: (@Sendable ([R]) -> Void)? = nil,
        errorCallback: (@Sendable (CrewError) -> Void)? = nil
    ) throws -> AsyncResult<[R]> {
        try checkOpen(function.name)
        if let chunkSize, chunkSize < 1 { throw CrewError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)") }
        let items = Array(items)
        let result = AsyncResult<[R]>(callback: callback, errorCallback: errorCallback)
        let name = function.name
        Task {
            do {
                let values = try await map(items) { try await Self.call(function, $0, timeout: timeout) }
                result.complete(.success(values))
            } catch {
                result.complete(.failure(CallOutcome.failure(error, name: name)))
            }
        }
        return result
    }

    /// The results of `function` on every item, in order, as they become available.
    public func imap<A, R, S: Sequence<A>>(
        _ function: Function<A, R>,
        _ items: S,
        chunkSize: Int = 1,
        timeout: Duration? = nil
    ) throws -> PoolResults<R> {
        try results(function, Array(items), ordered: true)
    }

    /// The results of `function` on every item, as they finish.
    public func imapUnordered<A, R, S: Sequence<A>>(
        _ function: Function<A, R>,
        _ items: S,
        chunkSize: Int = 1,
        timeout: Duration? = nil
    ) throws -> PoolResults<R> {
        try results(function, Array(items), ordered: false)
    }

    private func results<A, R>(_ function: Function<A, R>, _ items: [A], ordered: Bool) throws -> PoolResults<R> {
        try checkOpen(function.name)
        let buffer = ResultBuffer<R>(ordered: ordered, chunks: items.count)
        let name = function.name
        Task { [slots] in
            await withTaskGroup(of: Void.self) { group in
                for (index, item) in items.enumerated() {
                    do {
                        try await slots.acquire()
                    } catch {
                        buffer.deliver(index, .failure(CrewError(.cancelled, "cancelled", function: name)))
                        continue
                    }
                    group.addTask {
                        defer { slots.release() }
                        do {
                            buffer.deliver(index, .success([try await function.callAsync(item)]))
                        } catch {
                            buffer.deliver(index, .failure(CallOutcome.failure(error, name: name)))
                        }
                    }
                }
            }
        }
        return PoolResults(buffer: buffer)
    }

    /// Takes no more work; running coroutines finish.
    public func close() {
        closed.store(true, ordering: .releasing)
    }

    /// Takes no more work and cancels the running coroutines.
    public func terminate() {
        close()
        cancelAll()
    }

    /// Blocks until no coroutine of the pool runs, or `timeout` passes.
    @discardableResult
    public func join(timeout: Duration? = nil) throws -> Bool {
        let limit = timeout.map { ContinuousClock.now + $0 }
        while running > 0 {
            if let limit, ContinuousClock.now >= limit { return false }
            usleep(1000)
        }
        return true
    }

    /// Cancels every coroutine the pool is running (gevent's `Pool.kill`).
    public func cancelAll() {
        for cancel in spawned.withLock({ Array($0.values) }) { cancel() }
    }
}

/// A counter several tasks take numbers from.
@usableFromInline
final class SharedCounter: Sendable {
    @usableFromInline let value = Atomic<Int>(0)

    @inlinable
    init() {}

    /// The next number (0, 1, 2, ...).
    @inlinable
    func take() -> Int {
        value.wrappingAdd(1, ordering: .relaxed).oldValue
    }
}

/// Results written by index from several tasks, each index once; read after they have all finished.
@usableFromInline
final class ResultSlots<R>: @unchecked Sendable {
    // @unchecked Sendable: each slot is written by one task, and read only after every writer has finished
    // (the task group's completion orders the writes before the read).
    @usableFromInline let slots: UnsafeMutableBufferPointer<R?>

    @inlinable
    init(count: Int) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil)
    }

    deinit {
        _ = slots.deinitialize()
        slots.deallocate()
    }

    @inlinable
    func set(_ index: Int, _ value: R) {
        slots[index] = value
    }

    @inlinable
    func values() -> [R] {
        slots.map { $0! }
    }
}

/// A counting gate for tasks: `acquire` suspends while no slot is free.
final class AsyncSlots: Sendable {
    private struct State {
        var free: Int
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var drained: [CheckedContinuation<Void, any Error>] = []
        var nextID: UInt64 = 0
    }

    private let total: Int
    private let state: Mutex<State>

    init(_ count: Int) {
        total = count
        state = Mutex(State(free: count))
    }

    var free: Int { state.withLock { $0.free } }

    func acquire() async throws {
        let id: UInt64 = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let granted = state.withLock { state -> Bool in
                    if Task.isCancelled { return false }
                    if state.free > 0 {
                        state.free -= 1
                        return true
                    }
                    state.waiters.append((id, continuation))
                    return false
                }
                if granted {
                    continuation.resume()
                } else if Task.isCancelled && !state.withLock({ $0.waiters.contains { $0.id == id } }) {
                    continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    func release() {
        let (next, drained): (CheckedContinuation<Void, any Error>?, [CheckedContinuation<Void, any Error>]) = state.withLock { state in
            if !state.waiters.isEmpty { return (state.waiters.removeFirst().continuation, []) }
            state.free += 1
            if state.free == total {
                defer { state.drained.removeAll() }
                return (nil, state.drained)
            }
            return (nil, [])
        }
        next?.resume()
        for waiter in drained { waiter.resume() }
    }

    func waitUntilAllFree() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let now = state.withLock { state -> Bool in
                if state.free == total { return true }
                state.drained.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}

/// A flag coroutines can wait for: gevent's `Event`, for tasks (``Crew/Event`` is the one between processes).
public final class AsyncEvent: Sendable {
    private struct State {
        var isSet = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    /// A new event, not set.
    public init() {}

    /// True once ``set()`` was called (and ``clear()`` not since).
    public var isSet: Bool { state.withLock { $0.isSet } }

    /// Sets the flag and wakes every waiter.
    public func set() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.isSet = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Clears the flag.
    public func clear() {
        state.withLock { $0.isSet = false }
    }

    /// Waits until the flag is set, or `timeout` passes.
    ///
    /// - Returns: whether the flag is set (false after a time-out or cancellation).
    @discardableResult
    public func wait(timeout: Duration? = nil) async -> Bool {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        if let timeout {
            let nanoseconds = timeout.clampedNanoseconds
            Reactor.shared.submit { [self] in
                Reactor.shared.schedule(afterNanoseconds: nanoseconds) { [self] in resume(id) }
            }
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.isSet || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            resume(id)
        }
        return isSet
    }

    private func resume(_ id: UInt64) {
        state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
    }
}

/// A channel between coroutines with back-pressure — a send waits until a receiver takes the element —
/// built on swift-async-algorithms' `AsyncChannel`: gevent's `Channel`.
///
/// ```swift
/// let channel = Channel<Int>()
/// spawn { for i in 0..<3 { await channel.send(i) }; channel.finish() }
/// for await i in channel { print(i) }
/// ```
public final class Channel<Element: Sendable>: AsyncSequence, Sendable {
    private let channel = AsyncChannel<Element>()

    /// A new, open channel.
    public init() {}

    /// Sends `element`, suspending until a receiver takes it (or the channel is finished).
    public func send(_ element: Element) async {
        await channel.send(element)
    }

    /// Ends the channel: receivers' iterations end once they have taken what was sent.
    public func finish() {
        channel.finish()
    }

    /// Receives the elements until the channel is finished.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: channel.makeAsyncIterator())
    }

    /// Receives the elements of a ``Channel``.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncChannel<Element>.Iterator

        /// The next element, or nil once the channel is finished.
        public mutating func next() async -> Element? {
            await base.next()
        }
    }
}
