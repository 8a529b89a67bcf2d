import AsyncAlgorithms
import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

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
        guard size >= 1 else {
            throw CrewError(.invalidArgument, "a coroutine pool needs a size of at least 1, not \(size)")
        }
        self.size = size
        self.slots = AsyncSlots(size)
    }

    /// Coroutines running now.
    public var running: Int { size - slots.free }

    /// Starts `body` once a slot is free — suspending the caller until then (back-pressure, as gevent's
    /// `Pool.spawn` blocks when the pool is full).
    @discardableResult
    public func spawn<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> Crew.Coroutine<T> {
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
        _ function: Crew.Function<A, R>,
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
    private static func call<A, R>(_ function: Crew.Function<A, R>, _ args: A, timeout: Duration?) async throws -> R {
        guard let timeout else { return try await function.callAsync(args) }
        return try await Crew.withTimeout(timeout) { try await function.callAsync(args) }
    }

    /// Runs `function` on every item as coroutines of the pool; the results in order, later.
    public func mapAsync<A, R, S: Sequence<A>>(
        _ function: Crew.Function<A, R>,
        _ items: S,
        chunkSize: Int? = nil,
        timeout: Duration? = nil,
        callback: (@Sendable ([R]) -> Void)? = nil,
        errorCallback: (@Sendable (CrewError) -> Void)? = nil
    ) throws -> AsyncResult<[R]> {
        try checkOpen(function.name)
        if let chunkSize, chunkSize < 1 {
            throw CrewError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
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
        _ function: Crew.Function<A, R>,
        _ items: S,
        chunkSize: Int = 1,
        timeout: Duration? = nil
    ) throws -> PoolResults<R> {
        try results(function, Array(items), ordered: true)
    }

    /// The results of `function` on every item, as they finish.
    public func imapUnordered<A, R, S: Sequence<A>>(
        _ function: Crew.Function<A, R>,
        _ items: S,
        chunkSize: Int = 1,
        timeout: Duration? = nil
    ) throws -> PoolResults<R> {
        try results(function, Array(items), ordered: false)
    }

    private func results<A, R>(_ function: Crew.Function<A, R>, _ items: [A], ordered: Bool) throws -> PoolResults<R> {
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
