import Synchronization

/// A pool of worker processes that run registered functions: Python's `multiprocessing.Pool`, without its
/// hangs.
///
/// ```swift
/// let pool = try ProcessPool(processes: 4)
/// let squares = try await pool.map(Work.square, 0..<1000)   // chunked, in order
/// let r = try pool.applyAsync(Work.fetch, url)              // AsyncResult: value, get(timeout:), ready
/// for try await x in try pool.imapUnordered(Work.square, 0..<10) { print(x) }
/// pool.close()
/// try await pool.join()
/// ```
///
/// **Crash isolation.** A worker that traps, segfaults, is killed or exits fails the call it was running, with
/// ``CrewError/Code/workerCrashed`` (pid, exit status, last lines of standard error); the dead worker is replaced
/// and the pool goes on. Calls on other workers are untouched, and ``join()`` always returns. (Python's `Pool`
/// hangs in this case; `ProcessPoolExecutor` breaks the whole pool.) A worker holds several short calls at once
/// and notes each call it starts and finishes in memory it shares with the parent, with a copy of the answers it
/// has not sent yet: so calls it had finished are answered, and calls it had been sent but had not started go to
/// another worker. Calls with `async` bodies start as soon as a worker receives them, so a death fails every
/// such call the worker held: each with ``CrewError/Code/workerCrashed``, saying that it was running beside
/// others and may not be the cause. Crew does not run such a call again: it had started, and running it twice
/// could repeat its effects. (Should that memory be unreadable, a finished call whose answer was not sent fails
/// with ``CrewError/Code/workerCrashed`` too, saying so, rather than run twice.) Each such error's
/// ``CrewError/callState`` says which case it is: ``CrewError/CallState/running``,
/// ``CrewError/CallState/runningWithOthers`` or ``CrewError/CallState/finishedUnsent``.
///
/// **Timeouts.** A call given a `timeout:` that runs longer is stopped: its worker gets `SIGTERM`, then
/// `SIGKILL` after ``Options/timeoutGrace``, the call fails with ``CrewError/Code/timedOut``, and the worker is
/// replaced.
///
/// **Throughput.** A worker holds several calls at once when calls are short (they travel and are answered
/// in batches) and one at a time when they are long (so that no call waits behind a long one while another
/// worker is free). `map` sends its input in chunks, one frame each. For each worker the parent keeps a thread,
/// asleep in a read of that worker's socket, that hands out its answers.
///
/// A pool can be used from many tasks and threads at once. Dropping a running pool terminates it; dropping a
/// closed one lets its workers finish the queue.
public final class ProcessPool: Sendable {
    /// Tuning a pool rarely needs.
    public struct Options: Sendable {
        /// The most calls a worker holds at once when calls are short. Fewer when they are longer: a worker holds
        /// about 2 ms of expected work (by the pool's running average of call times), one call behind a call
        /// that runs 1 ms or more, and none behind a call that has run that long.
        public var maxInFlight: Int
        /// How long a timed-out call's worker has between `SIGTERM` and `SIGKILL`.
        public var timeoutGrace: Duration
        /// How many calls of `async` functions each worker runs at once, however long they take (the seed's
        /// "several processes, many coroutines each"; uWSGI's `--processes 4 --gevent 100`). Nil: as other
        /// calls, up to ``maxInFlight`` while calls are short, one behind a long one. The calls of a `map` chunk
        /// run together and count as that many calls; `map`'s automatic chunk size is then at most this.
        public var coroutinesEach: Int?
        /// Whether a worker that traps runs Swift's backtracer before it dies (for debugging a crash); the crew's
        /// ``Crew/Options/crashBacktraces`` (off by default) when nil.
        public var crashBacktraces: Bool?

        /// Options with defaults: up to 256 calls per worker, half a second of grace.
        public init(
            maxInFlight: Int = 256, timeoutGrace: Duration = .milliseconds(500), coroutinesEach: Int? = nil,
            crashBacktraces: Bool? = nil
        ) {
            self.maxInFlight = maxInFlight
            self.timeoutGrace = timeoutGrace
            self.coroutinesEach = coroutinesEach
            self.crashBacktraces = crashBacktraces
        }
    }

    @usableFromInline
    let core: PoolCore
    /// How many worker processes the pool keeps.
    public let processes: Int
    /// ``Options/coroutinesEach``, for `map`'s automatic chunk size.
    @usableFromInline
    let coroutinesEach: Int?

    /// Starts a pool of `processes` workers (one per CPU when nil).
    ///
    /// - Parameters:
    ///   - crew: Whose functions and options the workers use; ``Crew/current`` when nil.
    ///   - processes: How many workers; the number of online CPUs when nil.
    ///   - startMethod: How workers start; the crew's ``Crew/Options/startMethod`` when nil. With
    ///     ``Crew/StartMethod/forkserver`` a replacement worker skips the program's start.
    ///   - maxTasksPerChild: Replace each worker after this many tasks (a `map` chunk counts as one), as
    ///     Python's `maxtasksperchild`.
    ///   - options: Tuning.
    /// - Throws: ``CrewError/Code/notBootstrapped`` without a crew; ``CrewError/Code/invalidArgument`` for fewer
    ///   than one process or a `maxTasksPerChild` below one.
    public convenience init(
        _ crew: Crew? = nil,
        processes: Int? = nil,
        startMethod: Crew.StartMethod? = nil,
        maxTasksPerChild: Int? = nil,
        options: Options = Options()
    ) throws {
        try self.init(crew, processes, startMethod, maxTasksPerChild, options, initializer: nil)
    }

    /// Starts a pool whose workers each run `initializer(initArgs)` before any task, as Python's
    /// `initializer`/`initargs`.
    ///
    /// `initArgs` may hold queues, pipes, locks and shared values: every worker gets them, as Python's workers
    /// do (the only way to hand them to a pool's workers, there as here).
    ///
    /// A worker whose initializer throws or crashes is ended and replaced; if that happens to three workers in
    /// a row, the pool stops starting workers and fails its calls with the initializer's error (rather than
    /// restarting workers forever, as Python does).
    public convenience init<A>(
        _ crew: Crew? = nil,
        processes: Int? = nil,
        startMethod: Crew.StartMethod? = nil,
        maxTasksPerChild: Int? = nil,
        options: Options = Options(),
        initializer: Crew.Function<A, Crew.Empty>,
        initArgs: A
    ) throws {
        // Queues, pipes, locks and shared values in `initArgs` hand their descriptors to every worker as it
        // starts, replacements included; the pool keeps them open as long as it lives.
        let arguments: [UInt8]
        let handed: HandedDescriptors.Collector
        do {
            (arguments, handed) = try HandedDescriptors.collecting { try BinaryEncoder().encode(initArgs) }
        } catch {
            throw CrewError(
                .encodingFailed, "the initializer's arguments did not encode: \(error)", function: initializer.name)
        }
        try self.init(
            crew,
            processes,
            startMethod,
            maxTasksPerChild,
            options,
            initializer: PoolCore.Initializer(
                function: initializer.name,
                arguments: arguments,
                handed: handed.descriptors,
                owners: HandedOwners(handed.owners)
            )
        )
        guard core.crew.contains(initializer.name) else {
            terminate()
            throw CrewError(
                .unknownFunction, "the initializer \"\(initializer.name)\" is not registered",
                function: initializer.name)
        }
    }

    private init(
        _ crew: Crew?,
        _ processes: Int?,
        _ startMethod: Crew.StartMethod?,
        _ maxTasksPerChild: Int?,
        _ options: Options,
        initializer: PoolCore.Initializer?
    ) throws {
        guard let crew = crew ?? Crew.current else {
            throw CrewError(.notBootstrapped, "call Crew.bootstrap(...) at the top of main before making a pool")
        }
        let count = processes ?? max(1, Crew.onlineProcessorCount)
        guard count >= 1 else { throw CrewError(.invalidArgument, "a pool needs at least one process, not \(count)") }
        if let maxTasksPerChild, maxTasksPerChild < 1 {
            throw CrewError(.invalidArgument, "maxTasksPerChild must be at least 1, not \(maxTasksPerChild)")
        }
        guard options.maxInFlight >= 1 else {
            throw CrewError(.invalidArgument, "maxInFlight must be at least 1, not \(options.maxInFlight)")
        }
        if let each = options.coroutinesEach, each < 1 {
            throw CrewError(.invalidArgument, "coroutinesEach must be at least 1, not \(each)")
        }
        var configuration = PoolStateMachine.Configuration(processes: count)
        configuration.maxInFlight = options.maxInFlight
        configuration.asyncInFlight = options.coroutinesEach
        configuration.maxTasksPerChild = maxTasksPerChild
        configuration.graceNanoseconds = options.timeoutGrace.clampedNanoseconds
        self.processes = count
        self.coroutinesEach = options.coroutinesEach
        // Pool workers are fed in batches and keep every CPU busy; a worker that spins waiting for its next batch
        // only takes CPU from the parent that prepares it.
        let backtraces = options.crashBacktraces
        let workerCrew = crew.withOptions { options in
            options.spinMicroseconds = 0
            if let startMethod { options.startMethod = startMethod }
            if let backtraces { options.crashBacktraces = backtraces }
        }
        self.core = PoolCore(crew: workerCrew, configuration: configuration, initializer: initializer)
        core.start()
    }

    deinit {
        if core.lifecycle == .running { core.terminate() }
    }

    @usableFromInline
    func check(_ name: String) throws {
        guard core.crew.contains(name) else {
            throw CrewError(
                .unknownFunction, "\"\(name)\" is not registered: pass it to Crew.bootstrap", function: name)
        }
    }

    @inlinable
    static func decode<R: Decodable>(_ type: R.Type, _ payload: Payload, function: String) -> Result<R, CrewError> {
        do {
            return .success(try BinaryDecoder().decode(R.self, from: payload.bytes, range: payload.range))
        } catch {
            return .failure(
                CrewError(.decodingFailed, "the result did not decode as \(R.self): \(error)", function: function))
        }
    }

    // MARK: One call

    /// Runs `function(args)` in a worker and returns its value: Python's `apply`, awaited.
    ///
    /// - Parameters:
    ///   - function: A registered function.
    ///   - args: Its arguments.
    ///   - timeout: The longest the call may run once started; its worker is stopped after that.
    /// - Throws: the call's failure as a ``CrewError`` (see ``AsyncResult``); ``CrewError/Code/poolClosed``
    ///   after ``close()``; ``CrewError/Code/unknownFunction`` for an unregistered function.
    @inlinable
    public func apply<A, R>(_ function: Crew.Function<A, R>, _ args: A, timeout: Duration? = nil) async throws -> R {
        try await applyAsync(function, args, timeout: timeout).value
    }

    // Inlinable (as `apply`), so that the per-call code — the typed result and its decoding — is specialized in
    // the caller's module instead of running as generic code that looks up type metadata on every call.

    /// Runs `function(args)` in a worker: Python's `apply_async`. The result arrives later; `callback` or
    /// `errorCallback` runs then, on one of Crew's threads (keep them short and never block in them).
    ///
    /// - Throws: ``CrewError/Code/poolClosed`` after ``close()``; ``CrewError/Code/unknownFunction``;
    ///   ``CrewError/Code/frameTooLarge`` or ``CrewError/Code/encodingFailed`` for arguments that cannot be sent.
    @inlinable
    @discardableResult
    public func applyAsync<A, R>(
        _ function: Crew.Function<A, R>,
        _ args: A,
        timeout: Duration? = nil,
        callback: (@Sendable (R) -> Void)? = nil,
        errorCallback: (@Sendable (CrewError) -> Void)? = nil
    ) throws -> AsyncResult<R> {
        try check(function.name)
        let result = AsyncResult<R>(callback: callback, errorCallback: errorCallback)
        let name = function.name
        try core.submit(
            function: name,
            synchronous: function.registration.isSynchronous,
            chunk: false,
            timeout: timeout,
            encode: { try BinaryEncoder.encode(args, appendingTo: &$0) },
            complete: { outcome in result.complete(outcome.flatMap { Self.decode(R.self, $0, function: name) }) }
        )
        return result
    }

    // MARK: Many calls

    /// Python's automatic chunk size: the items spread over four chunks per worker.
    @usableFromInline
    static func automaticChunkSize(count: Int, processes: Int) -> Int {
        guard count > 0 else { return 1 }
        let (size, extra) = count.quotientAndRemainder(dividingBy: processes * 4)
        return size + (extra > 0 ? 1 : 0)
    }

    /// Submits `items` in chunks; `deliver(index, result)` gets each chunk's results.
    @inlinable
    func submitChunks<A, R>(
        _ function: Crew.Function<A, R>,
        _ items: [A],
        chunkSize: Int,
        timeout: Duration?,
        deliver: @escaping @Sendable (Int, Result<[R], CrewError>) -> Void
    ) throws -> Int {
        try check(function.name)
        guard chunkSize >= 1 else {
            throw CrewError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        let name = function.name
        let synchronous = function.registration.isSynchronous
        let count = (items.count + chunkSize - 1) / chunkSize
        // A chunk may run as long as its calls would one after the other.
        let limit = timeout.map { $0 * chunkSize }
        try core.submitMany(
            function: name,
            synchronous: synchronous,
            timeout: limit,
            count: count,
            callsEach: chunkSize,
            encode: { index, bytes in
                try Self.encodeChunk(items[index * chunkSize..<min((index + 1) * chunkSize, items.count)], into: &bytes)
            },
            complete: { position in
                { outcome in deliver(position, outcome.flatMap { Self.decode([R].self, $0, function: name) }) }
            }
        )
        return count
    }

    /// Writes a chunk of arguments: slices of numbers straight from the input, other chunks as arrays.
    @usableFromInline
    static func encodeChunk<A: Encodable>(_ chunk: ArraySlice<A>, into bytes: inout [UInt8]) throws {
        if let direct = chunk as? any BinaryDirectCodable {
            direct.encodeDirect(into: &bytes)
        } else {
            try BinaryEncoder.encode(Array(chunk), appendingTo: &bytes)
        }
    }

    /// Runs `function` on every item and returns the results in order: Python's `map`, awaited.
    ///
    /// The items travel in chunks of `chunkSize` (Python's automatic size when nil: four chunks per worker).
    /// The first call that fails fails the whole map, as in Python.
    ///
    /// - Parameters:
    ///   - function: A registered function.
    ///   - items: The arguments of the calls.
    ///   - chunkSize: How many calls travel together; Python's automatic size when nil.
    ///   - timeout: The longest each call may run; a chunk may run `timeout` × its size.
    @inlinable
    public func map<A, R, S: Sequence<A>>(
        _ function: Crew.Function<A, R>,
        _ items: S,
        chunkSize: Int? = nil,
        timeout: Duration? = nil
    ) async throws -> [R] {
        try await mapAsync(function, items, chunkSize: chunkSize, timeout: timeout).value
    }

    /// Starts a map whose results arrive later: Python's `map_async`.
    @inlinable
    public func mapAsync<A, R, S: Sequence<A>>(
        _ function: Crew.Function<A, R>,
        _ items: S,
        chunkSize: Int? = nil,
        timeout: Duration? = nil,
        callback: (@Sendable ([R]) -> Void)? = nil,
        errorCallback: (@Sendable (CrewError) -> Void)? = nil
    ) throws -> AsyncResult<[R]> {
        let items = Array(items)
        let result = AsyncResult<[R]>(callback: callback, errorCallback: errorCallback)
        guard !items.isEmpty else {
            try check(function.name)
            result.complete(.success([]))
            return result
        }
        var size = chunkSize ?? Self.automaticChunkSize(count: items.count, processes: processes)
        // A chunk of `async` calls runs its calls together: by default no more than a worker runs at once.
        if chunkSize == nil, let each = coroutinesEach, case .async = function.body { size = min(size, each) }
        let collector = ChunkCollector<R>(chunks: (items.count + size - 1) / max(1, size), result: result)
        _ = try submitChunks(function, items, chunkSize: size, timeout: timeout) { index, outcome in
            collector.deliver(index, outcome)
        }
        return result
    }

    /// Runs `function` on every item and yields the results in order as they become available: Python's
    /// `imap`. Iteration throws the first failure at its place.
    @inlinable
    public func imap<A, R, S: Sequence<A>>(
        _ function: Crew.Function<A, R>,
        _ items: S,
        chunkSize: Int = 1,
        timeout: Duration? = nil
    ) throws -> PoolResults<R> {
        try results(function, items, chunkSize: chunkSize, timeout: timeout, ordered: true)
    }

    /// Runs `function` on every item and yields the results as they finish, in any order: Python's
    /// `imap_unordered`.
    @inlinable
    public func imapUnordered<A, R, S: Sequence<A>>(
        _ function: Crew.Function<A, R>,
        _ items: S,
        chunkSize: Int = 1,
        timeout: Duration? = nil
    ) throws -> PoolResults<R> {
        try results(function, items, chunkSize: chunkSize, timeout: timeout, ordered: false)
    }

    @inlinable
    func results<A, R, S: Sequence<A>>(
        _ function: Crew.Function<A, R>,
        _ items: S,
        chunkSize: Int,
        timeout: Duration?,
        ordered: Bool
    ) throws -> PoolResults<R> {
        let items = Array(items)
        let buffer = ResultBuffer<R>(
            ordered: ordered, chunks: (items.count + max(1, chunkSize) - 1) / max(1, chunkSize))
        _ = try submitChunks(function, items, chunkSize: chunkSize, timeout: timeout) { index, outcome in
            buffer.deliver(index, outcome)
        }
        return PoolResults(buffer: buffer)
    }

    // MARK: Lifecycle

    /// Takes no more work; the workers finish what is queued, then exit. Python's `close`.
    public func close() {
        core.close()
    }

    /// Kills every worker now and fails every pending call with ``CrewError/Code/terminated``. Python's
    /// `terminate` (whose pending results never arrive).
    public func terminate() {
        core.terminate()
    }

    /// Waits until every worker has exited, after ``close()`` or ``terminate()``.
    ///
    /// - Throws: ``CrewError/Code/poolNotClosed`` if the pool is still running (Python's `ValueError`);
    ///   `CancellationError` if the waiting task is cancelled.
    public func join() async throws {
        guard core.lifecycle != .running else {
            throw CrewError(.poolNotClosed, "join() needs close() or terminate() first")
        }
        guard await core.finished.wait() != nil else { throw CancellationError() }
    }

    /// Blocks until every worker has exited or `timeout` passes, after ``close()`` or ``terminate()``.
    ///
    /// - Returns: true if every worker has exited.
    /// - Throws: ``CrewError/Code/poolNotClosed`` if the pool is still running.
    @discardableResult
    public func join(timeout: Duration? = nil) throws -> Bool {
        guard core.lifecycle != .running else {
            throw CrewError(.poolNotClosed, "join() needs close() or terminate() first")
        }
        return core.finished.wait(timeout: timeout) != nil
    }

    /// The process ids of the workers alive now.
    public var workerPIDs: [Int32] { core.workerPIDs }
}

/// Collects the chunks of a map and completes its result when all have arrived, or at the first failure.
@usableFromInline
final class ChunkCollector<R: Sendable>: Sendable {
    private struct State {
        var parts: [[R]?]
        var remaining: Int
    }

    private let state: Mutex<State>
    private let result: AsyncResult<[R]>

    @usableFromInline
    init(chunks: Int, result: AsyncResult<[R]>) {
        self.state = Mutex(State(parts: Array(repeating: nil, count: chunks), remaining: chunks))
        self.result = result
    }

    @usableFromInline
    func deliver(_ index: Int, _ outcome: Result<[R], CrewError>) {
        switch outcome {
        case .failure(let error):
            result.complete(.failure(error))
        case .success(let values):
            let all: [R]? = state.withLock { state in
                guard state.parts[index] == nil else { return nil }
                state.parts[index] = values
                state.remaining -= 1
                guard state.remaining == 0 else { return nil }
                var all: [R] = []
                all.reserveCapacity(state.parts.reduce(0) { $0 + $1!.count })
                for part in state.parts { all.append(contentsOf: part!) }
                return all
            }
            if let all { result.complete(.success(all)) }
        }
    }
}
