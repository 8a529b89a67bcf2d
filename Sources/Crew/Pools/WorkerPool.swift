/// What ``ProcessPool`` and ``ThreadPool`` share: Python's `Pool` API, so that code written against it runs on
/// processes or threads alike.
public protocol WorkerPool: AnyObject, Sendable {
    /// How many workers (processes or threads) the pool runs.
    var processes: Int { get }

    /// Runs `function(args)` on a worker; the result arrives later (Python's `apply_async`).
    func applyAsync<A, R>(
        _ function: Crew.Function<A, R>,
        _ args: A,
        timeout: Duration?,
        callback: (@Sendable (R) -> Void)?,
        errorCallback: (@Sendable (CrewError) -> Void)?
    ) throws -> AsyncResult<R>

    /// Runs `function` on every item; the results in order, later (Python's `map_async`).
    func mapAsync<A, R, S: Sequence<A>>(
        _ function: Crew.Function<A, R>,
        _ items: S,
        chunkSize: Int?,
        timeout: Duration?,
        callback: (@Sendable ([R]) -> Void)?,
        errorCallback: (@Sendable (CrewError) -> Void)?
    ) throws -> AsyncResult<[R]>

    /// The results of `function` on every item, in order, as they become available (Python's `imap`).
    func imap<A, R, S: Sequence<A>>(
        _ function: Crew.Function<A, R>,
        _ items: S,
        chunkSize: Int,
        timeout: Duration?
    ) throws -> PoolResults<R>

    /// The results of `function` on every item, as they finish (Python's `imap_unordered`).
    func imapUnordered<A, R, S: Sequence<A>>(
        _ function: Crew.Function<A, R>,
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
    // Inlinable, so that a concrete pool's call goes straight to its own (specialized) `applyAsync` and `mapAsync`.

    /// Runs `function(args)` on a worker and returns its value (Python's `apply`).
    @inlinable
    public func apply<A, R>(_ function: Crew.Function<A, R>, _ args: A, timeout: Duration? = nil) async throws -> R {
        try await applyAsync(function, args, timeout: timeout, callback: nil, errorCallback: nil).value
    }

    /// Runs `function` on every item and returns the results in order (Python's `map`).
    @inlinable
    public func map<A, R, S: Sequence<A>>(
        _ function: Crew.Function<A, R>,
        _ items: S,
        chunkSize: Int? = nil,
        timeout: Duration? = nil
    ) async throws -> [R] {
        try await mapAsync(function, items, chunkSize: chunkSize, timeout: timeout, callback: nil, errorCallback: nil)
            .value
    }

    /// Python's `starmap`: ``map(_:_:chunkSize:timeout:)`` under its other name (a function takes one
    /// argument, a struct for several).
    @inlinable
    public func starmap<A, R, S: Sequence<A>>(
        _ function: Crew.Function<A, R>,
        _ items: S,
        chunkSize: Int? = nil,
        timeout: Duration? = nil
    ) async throws -> [R] {
        try await map(function, items, chunkSize: chunkSize, timeout: timeout)
    }
}

/// A call's outcome as the in-process pools (threads, coroutines) report it: a thrown ``CrewError`` as it is,
/// anything else as ``CrewError/Code/remoteError`` with its type, as a process pool reports a child's error.
@usableFromInline
enum CallOutcome {
    @inlinable
    static func of<R>(name: String?, _ body: () throws -> R) -> Result<R, CrewError> {
        do {
            return .success(try body())
        } catch {
            return .failure(failure(error, name: name))
        }
    }

    static func of<R>(name: String?, _ body: () async throws -> R) async -> Result<R, CrewError> {
        do {
            return .success(try await body())
        } catch {
            return .failure(failure(error, name: name))
        }
    }

    @usableFromInline
    static func failure(_ error: any Error, name: String?) -> CrewError {
        if var error = error as? CrewError {
            if error.function == nil { error.function = name }
            return error
        }
        let type = String(reflecting: Swift.type(of: error))
        var failure = CrewError(.remoteError, "\(type): \(error)", remoteErrorType: type, function: name)
        // In this process, a declared error needs no encoding: the caller gets the very value.
        failure.thrown = DeclaredErrors.codec(for: error)?.cast(error)
        return failure
    }
}

extension ProcessPool: WorkerPool {}
