/// What ``ProcessPool`` and ``ThreadPool`` share: Python's `Pool` API, so that code written against it runs on
/// processes or threads alike.
public protocol WorkerPool: AnyObject, Sendable {
    /// How many workers (processes or threads) the pool runs.
    var processes: Int { get }

    /// Runs `function(args)` on a worker; the result arrives later (Python's `apply_async`).
    func applyAsync<A, R>(
        _ function: Function<A, R>,
        _ args: A,
        timeout: Duration?,
        callback: (@Sendable (R) -> Void)?,
        errorCallback: (@Sendable (CrewError) -> Void)?
    ) throws -> AsyncResult<R>

    /// Runs `function` on every item; the results in order, later (Python's `map_async`).
    func mapAsync<A, R, S: Sequence<A>>(
        _ function: Function<A, R>,
        _ items: S,
        chunkSize: Int?,
        timeout: Duration?,
        callback: (@Sendable ([R]) -> Void)?,
        errorCallback: (@Sendable (CrewError) -> Void)?
    ) throws -> AsyncResult<[R]>

    /// The results of `function` on every item, in order, as they become available (Python's `imap`).
    func imap<A, R, S: Sequence<A>>(
        _ function: Function<A, R>,
        _ items: S,
        chunkSize: Int,
        timeout: Duration?
    ) throws -> PoolResults<R>

    /// The results of `function` on every item, as they finish (Python's `imap_unordered`).
    func imapUnordered<A, R, S: Sequence<A>>(
        _ function: Function<A, R>,
        _ items: S,
        chunkSize: Int,
        timeout: Duration?
    ) throws -> PoolResults<R>

    /// Takes no more work; the workers finish what is queued.
    func close()
    /// Takes no more work and fails what has not started.
    func terminate()
    /// Waits until every worker has ended, after ``close()`` or ``terminate()``.
    func join() async throws
    /// Blocks until every worker has ended or `timeout` passes, after ``close()`` or ``terminate()``.
    @discardableResult
    func join(timeout: Duration?) throws -> Bool
}

extension WorkerPool {
    /// Runs `function(args)` on a worker and returns its value (Python's `apply`).
    public func apply<A, R>(_ function: Function<A, R>, _ args: A, timeout: Duration? = nil) async throws -> R {
        try await applyAsync(function, args, timeout: timeout, callback: nil, errorCallback: nil).value
    }

    /// Runs `function` on every item and returns the results in order (Python's `map`).
    public func map<A, R, S: Sequence<A>>(
        _ function: Function<A, R>,
        _ items: S,
        chunkSize: Int? = nil,
        timeout: Duration? = nil
    ) async throws -> [R] {
        try await mapAsync(function, items, chunkSize: chunkSize, timeout: timeout, callback: nil, errorCallback: nil).value
    }
}

extension ProcessPool: WorkerPool {}
