public import Synchronization

/// The result of work submitted to a pool, which arrives later: Python's `AsyncResult`.
///
/// Await it (`try await result.value`) or, from a thread that may block, `get(timeout:)` it. It fails with a
/// ``CrewError``: ``CrewError/Code/remoteError`` if the function threw, ``CrewError/Code/workerCrashed`` if
/// the worker running it died, ``CrewError/Code/timedOut`` if it ran longer than its timeout,
/// ``CrewError/Code/terminated`` if the pool was terminated first.
public final class AsyncResult<Value: Sendable>: Sendable {
    @usableFromInline
    let completion: Completion<Result<Value, CrewError>>
    @usableFromInline
    let callback: (@Sendable (Value) -> Void)?
    @usableFromInline
    let errorCallback: (@Sendable (CrewError) -> Void)?
    /// Taken by the first outcome, when there are callbacks: they run before the result is ready.
    @usableFromInline
    let claimed = Atomic<Bool>(false)

    // Inlinable, so that the generic types made per result are resolved where the value type is known.
    @inlinable
    init(callback: (@Sendable (Value) -> Void)?, errorCallback: (@Sendable (CrewError) -> Void)?) {
        self.completion = Completion()
        self.callback = callback
        self.errorCallback = errorCallback
    }

    /// Sets the outcome (once), running the matching callback first, as Python does (a `get` that returns finds
    /// the callback done).
    @inlinable
    func complete(_ result: Result<Value, CrewError>) {
        guard callback != nil || errorCallback != nil else {
            completion.complete(result)
            return
        }
        guard !claimed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        switch result {
        case .success(let value): callback?(value)
        case .failure(let error): errorCallback?(error)
        }
        completion.complete(result)
    }

    /// The value, once it has arrived.
    ///
    /// - Throws: the work's failure as a ``CrewError``; `CancellationError` if the waiting task is cancelled (the
    ///   work goes on).
    @inlinable
    public var value: Value {
        get async throws {
            guard let result = await completion.wait() else { throw CancellationError() }
            return try result.getRethrowing()
        }
    }

    /// Blocks until the value arrives or `timeout` passes: Python's `get(timeout)`.
    ///
    /// - Throws: the work's failure; ``CrewError/Code/timedOut`` if the time runs out first (the work goes on).
    @inlinable
    public func get(timeout: Duration? = nil) throws -> Value {
        // A result that is already there is taken by code specialized for its type (no waiting machinery).
        if let result = completion.current { return try result.getRethrowing() }
        return try wait(for: timeout)
    }

    @usableFromInline
    func wait(for timeout: Duration?) throws -> Value {
        guard let result = completion.wait(timeout: timeout) else {
            throw CrewError(.timedOut, "the result was not ready within \(timeout!)")
        }
        return try result.getRethrowing()
    }

    /// Blocks until the result is ready or `timeout` passes; returns whether it is ready.
    @discardableResult
    public func wait(timeout: Duration? = nil) -> Bool {
        completion.wait(timeout: timeout) != nil
    }

    /// Waits until the result is ready (successful or not).
    ///
    /// - Throws: `CancellationError` if the waiting task is cancelled.
    public func wait() async throws {
        guard await completion.wait() != nil else { throw CancellationError() }
    }

    /// True once the work has succeeded or failed.
    public var ready: Bool { completion.current != nil }

    /// True if the work succeeded, false if it failed.
    ///
    /// - Throws: ``CrewError/Code/notReady`` while it is not ready (Python raises `ValueError`).
    public var successful: Bool {
        get throws {
            guard let result = completion.current else {
                throw CrewError(.notReady, "the result is not ready yet")
            }
            if case .success = result { return true }
            return false
        }
    }
}

extension Result where Failure == CrewError {
    /// The value, or the failure as a caller is thrown it: the declared error the function threw, as itself, or
    /// the ``CrewError``.
    @usableFromInline
    func getRethrowing() throws -> Success {
        switch self {
        case .success(let value): return value
        case .failure(let error): throw error.rethrown
        }
    }
}
