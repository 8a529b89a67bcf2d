extension Crew {
    /// One API over every backend, as Python's `concurrent.futures`: submit calls, map over items, shut down.
    ///
    /// ```swift
    /// let executor = try Crew.Executor.processes(4, coroutinesEach: 100)   // or .processes(4), .threads(8),
    /// let pages = try await executor.map(Work.fetch, urls)                 //    .coroutines(1000)
    /// try await executor.shutdown()
    /// ```
    ///
    /// - ``processes(_:crew:)``: a ``ProcessPool`` — CPU-bound work on every core, crashes isolated.
    /// - ``threads(_:)``: a ``ThreadPool`` — work that blocks (C libraries, files) or shares memory.
    /// - ``coroutines(_:)``: a ``CoroutinePool`` in this process — I/O-bound `async` work, thousands at once.
    /// - ``processes(_:coroutinesEach:crew:)``: processes, each running many `async` calls at once — the tutorial's
    ///   best practice, and uWSGI's `--processes 4 --gevent 100`.
    ///
    /// (Nested in `Crew` because Swift's concurrency library has an `Executor` protocol of its own.)
    public final class Executor: Sendable, CustomStringConvertible {
        /// The pool behind this executor.
        public let pool: any WorkerPool
        /// What the pool is, as a log line states it: `processes=4`, `processes=4 coroutinesEach=100`,
        /// `threads=8`, `coroutines=1000`.
        public let description: String
        /// How many calls it runs at once: its processes (times their coroutines), threads or coroutines.
        package let capacity: Int

        private init(pool: any WorkerPool, description: String, capacity: Int? = nil) {
            self.pool = pool
            self.description = description
            self.capacity = capacity ?? pool.processes
        }

        /// An executor on `n` worker processes (one per CPU when nil).
        public static func processes(_ n: Int? = nil, crew: Crew? = nil) throws -> Executor {
            let pool = try ProcessPool(crew, processes: n)
            return Executor(pool: pool, description: "processes=\(pool.processes)")
        }

        /// An executor on `n` worker processes, each running up to `m` calls of `async` functions at once.
        public static func processes(_ n: Int? = nil, coroutinesEach m: Int, crew: Crew? = nil) throws -> Executor {
            let pool = try ProcessPool(crew, processes: n, options: ProcessPool.Options(coroutinesEach: m))
            return Executor(
                pool: pool, description: "processes=\(pool.processes) coroutinesEach=\(m)", capacity: pool.processes * m
            )
        }

        /// An executor on `n` threads of this process (one per CPU when nil).
        public static func threads(_ n: Int? = nil) throws -> Executor {
            let pool = try ThreadPool(processes: n)
            return Executor(pool: pool, description: "threads=\(pool.processes)")
        }

        /// An executor running up to `n` calls at once as coroutines (tasks) of this process.
        public static func coroutines(_ n: Int) throws -> Executor {
            let pool = try CoroutinePool(size: n)
            return Executor(pool: pool, description: "coroutines=\(pool.processes)")
        }

        /// Submits `function(args)`: Python's `Executor.submit`, whose future is an ``AsyncResult``.
        ///
        /// - Throws: ``CrewError/Code/poolClosed`` after ``shutdown(wait:cancelFutures:)``.
        @discardableResult
        public func submit<A, R>(_ function: Crew.Function<A, R>, _ args: A, timeout: Duration? = nil) throws
            -> AsyncResult<R>
        {
            try pool.applyAsync(function, args, timeout: timeout, callback: nil, errorCallback: nil)
        }

        /// Runs `function` on every item and returns the results in order: Python's `Executor.map`.
        public func map<A, R, S: Sequence<A>>(
            _ function: Crew.Function<A, R>,
            _ items: S,
            chunkSize: Int? = nil,
            timeout: Duration? = nil
        ) async throws -> [R] {
            try await pool.map(function, items, chunkSize: chunkSize, timeout: timeout)
        }

        /// Takes no more work: Python's `shutdown`. With `cancelFutures`, calls not yet started fail with
        /// ``CrewError/Code/terminated`` (a process backend also stops the running ones; a thread's run on);
        /// with `wait`, returns once the workers have ended.
        public func shutdown(wait: Bool = true, cancelFutures: Bool = false) async throws {
            if cancelFutures { pool.terminate() } else { pool.close() }
            if wait { try await pool.join() }
        }
    }
}
