import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
    /// A thread of this process: Python's `threading.Thread`.
    ///
    /// ```swift
    /// let t = Crew.Thread(target: Work.doubler, args: 2)
    /// try t.start()
    /// try await t.join()
    /// ```
    ///
    /// Swift has no global interpreter lock: threads run on every core at once, so CPU-bound work scales with
    /// threads as Python's does only with processes. A thread shares this process's memory and its fate — a trap
    /// in any thread ends the process; use ``Crew/Process`` for isolation.
    ///
    /// Every thread is what Python calls a daemon: when `main` returns, the process ends, running threads or
    /// not. Join the threads whose work must finish.
    public final class Thread: Sendable {
        private enum Phase: Sendable {
            case idle, running, finished
        }

        /// The thread's name: `Thread-N` unless given, numbered in creation order as Python does.
        public let name: String
        private let body: @Sendable () throws -> Void
        private let phase = Mutex(Phase.idle)
        private let outcome = Completion<Result<Void, ErrorBox>>()
        private let threadID = Atomic<Int32>(0)

        /// A thread that will run `body`.
        public init(name: String? = nil, _ body: @escaping @Sendable () throws -> Void) {
            self.name = name ?? "Thread-\(threadCounter.wrappingAdd(1, ordering: .relaxed).newValue)"
            self.body = body
        }

        /// A thread that will run the registered `target` with `args` in this process (no encoding), as
        /// `threading.Thread(target=f, args=(x,))`. Its return value is dropped; use a ``ThreadPool`` for
        /// values.
        public convenience init<A, R>(target: Crew.Function<A, R>, args: A, name: String? = nil) {
            self.init(name: name) { _ = try target.callHere(args) }
        }

        /// A thread that will run `target`, which takes no arguments.
        public convenience init<R>(target: Crew.Function<Crew.Empty, R>, name: String? = nil) {
            self.init(target: target, args: Crew.Empty(), name: name)
        }

        /// Starts the thread.
        ///
        /// - Throws: ``CrewError/Code/alreadyStarted`` on a second call; ``CrewError/Code/systemCallFailed`` if
        ///   the system refuses another thread (a limit on threads or memory).
        public func start() throws {
            try phase.withLock { phase in
                guard case .idle = phase else {
                    throw CrewError(.alreadyStarted, "\(name) was already started; a thread can be started once")
                }
                phase = .running
            }
            let started = startThreadIfPossible(name: name) { [self] in
                threadID.store(crew_gettid(), ordering: .releasing)
                ThreadNames.set(name)
                let result: Result<Void, ErrorBox>
                do {
                    try body()
                    result = .success(())
                } catch {
                    result = .failure(ErrorBox(error: error))
                }
                phase.withLock { $0 = .finished }
                outcome.complete(result)
            }
            if case .failure(let error) = started {
                // Python's "can't start new thread": the thread may be started again once the system allows.
                phase.withLock { $0 = .idle }
                throw error
            }
        }

        /// Blocks until the thread ends or `timeout` passes (no limit when nil).
        ///
        /// - Returns: true if the thread has ended.
        /// - Throws: ``CrewError/Code/notStarted`` before ``start()``; what the thread's body threw, if it threw
        ///   (Python prints it and returns; here the joiner gets it).
        @discardableResult
        public func join(timeout: Duration? = nil) throws -> Bool {
            try checkStarted()
            // A short thread has often ended within microseconds: poll briefly before sleeping (a wake-up across
            // CPUs costs 20-25 µs on a small VM).
            let spin = Crew.current.map { Crew.effectiveSpinNanoseconds($0.options) } ?? 0
            guard let result = outcome.wait(timeout: timeout, spinNanoseconds: spin) else { return false }
            if case .failure(let box) = result { throw box.error }
            return true
        }

        /// Waits until the thread ends, suspending rather than blocking.
        ///
        /// - Throws: as ``join(timeout:)``; `CancellationError` if the waiting task is cancelled.
        public func join() async throws {
            try checkStarted()
            guard let result = await outcome.wait() else { throw CancellationError() }
            if case .failure(let box) = result { throw box.error }
        }

        private func checkStarted() throws {
            if phase.withLock({ if case .idle = $0 { return true } else { return false } }) {
                throw CrewError(.notStarted, "\(name) has not been started")
            }
        }

        /// True from ``start()`` until the body returns.
        public var isAlive: Bool {
            phase.withLock { if case .running = $0 { return true } else { return false } }
        }

        /// The kernel's id of the thread once started (Python's `native_id`; also its `ident` here).
        public var ident: Int32? {
            let id = threadID.load(ordering: .acquiring)
            return id == 0 ? nil : id
        }

        /// The thread that is running this code, as Python's `threading.current_thread()`: its ``name`` is the
        /// thread's name for Crew's threads and pools, `MainThread` on the main thread, `Dummy-N` elsewhere.
        public static var current: Current { Current(name: ThreadNames.current(), ident: crew_gettid()) }

        /// What ``current`` tells about the running thread.
        public struct Current: Sendable {
            /// The thread's name.
            public let name: String
            /// The kernel's id of the thread.
            public let ident: Int32
        }
    }
}

/// An error thrown by a thread's body, carried to its joiners.
@usableFromInline
struct ErrorBox: Error, @unchecked Sendable {
    // @unchecked Sendable: the error is only rethrown, never mutated.
    @usableFromInline let error: any Error

    @usableFromInline
    init(error: any Error) {
        self.error = error
    }
}

let threadCounter = Atomic<Int>(0)

/// The names of threads, for ``Crew/Thread/current``.
enum ThreadNames {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { raw in
            if let raw { Unmanaged<NameBox>.fromOpaque(raw).release() }
        }
        return key
    }()
    private static let mainThread = crew_gettid()
    private static let dummies = Atomic<Int>(0)

    final class NameBox {
        let name: String
        init(_ name: String) { self.name = name }
    }

    static func set(_ name: String) {
        if let old = pthread_getspecific(key) { Unmanaged<NameBox>.fromOpaque(old).release() }
        pthread_setspecific(key, Unmanaged.passRetained(NameBox(name)).toOpaque())
    }

    static func current() -> String {
        if let raw = pthread_getspecific(key) { return Unmanaged<NameBox>.fromOpaque(raw).takeUnretainedValue().name }
        if crew_gettid() == getpid() { return "MainThread" }
        let name = "Dummy-\(dummies.wrappingAdd(1, ordering: .relaxed).newValue)"
        set(name)
        return name
    }
}

extension Crew.Function {
    /// Runs the function's body in this process, in this task.
    func callAsync(_ arguments: Arguments) async throws -> Result {
        switch body {
        case .sync(let body): try body(arguments)
        case .async(let body): try await body(arguments)
        }
    }

    /// Runs the function's body in this process, on this thread (an `async` body is waited for). Inlinable, so
    /// that a thread pool's loop over a chunk calls a known body directly.
    @inlinable
    func callHere(_ arguments: Arguments) throws -> Result {
        switch body {
        case .sync(let body):
            return try body(arguments)
        case .async(let body):
            return try Self.waitFor(body, arguments)
        }
    }

    @usableFromInline
    static func waitFor(_ body: @escaping @Sendable (Arguments) async throws -> Result, _ arguments: Arguments) throws
        -> Result
    {
        let done = Completion<Swift.Result<Result, ErrorBox>>()
        Task {
            do {
                done.complete(.success(try await body(arguments)))
            } catch {
                done.complete(.failure(ErrorBox(error: error)))
            }
        }
        switch done.wait(timeout: nil)! {
        case .success(let value): return value
        case .failure(let box): throw box.error
        }
    }
}
