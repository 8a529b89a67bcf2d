import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
    /// A registered function running in a child process: Python's `multiprocessing.Process`.
    ///
    /// ```swift
    /// let p = Crew.Process(target: Work.runProc, args: "test")
    /// try p.start()                   // in async code: try await p.start()
    /// try p.join()                    // or: try await p.join()
    /// print(p.exitCode ?? -1)         // 0
    /// ```
    ///
    /// Beyond Python, the function's return value comes back: `try await p.value`. If the child traps
    /// (`fatalError`, an index out of range, a force-unwrapped nil), is killed or exits early, `value` throws a
    /// ``CrewError`` with code ``CrewError/Code/workerCrashed`` that carries the pid, the ``Crew/ExitStatus`` and the
    /// last lines of the child's standard error; if the function throws, `value` throws
    /// ``CrewError/Code/remoteError`` with the error's type name and description. The parent never traps and
    /// never hangs because of a child.
    ///
    /// The child runs this same program (see ``Crew/bootstrap(_:options:)-(Crew.AnyFunction...,_)``), with its
    /// standard output and standard error passed through to the parent's and standard input at `/dev/null`.
    /// A child never outlives its parent: it is killed if the parent dies.
    public final class Process<Arguments: Codable & Sendable, Result: Codable & Sendable>: Sendable {
        private enum Phase: Sendable {
            case idle
            case starting
            case started(ChildConnection)
        }

        /// The process's name: `Process-N` unless given, numbered in creation order as Python does.
        public let name: String
        /// The function the child runs.
        public let target: Crew.Function<Arguments, Result>
        /// The arguments the function gets.
        public let args: Arguments
        private let crew: Crew?
        private let phase = Mutex(Phase.idle)
        private let outcome = Completion<Swift.Result<Result, CrewError>>()

        /// A process that will run `target` with `args` once started.
        ///
        /// - Parameters:
        ///   - target: The registered function the child runs.
        ///   - args: Its arguments.
        ///   - name: The process's name; `Process-N` when nil.
        ///   - crew: Whose options start the child; ``Crew/current`` (made by `bootstrap`) when nil.
        public init(target: Crew.Function<Arguments, Result>, args: Arguments, name: String? = nil, crew: Crew? = nil) {
            self.target = target
            self.args = args
            self.crew = crew
            self.name = name ?? "Process-\(processCounter.wrappingAdd(1, ordering: .relaxed).newValue)"
        }

        private var connection: ChildConnection? {
            phase.withLock { phase in
                if case .started(let connection) = phase { return connection }
                return nil
            }
        }

        /// Starts the child process and sends it the call. Returns once the child is running (its pid known).
        ///
        /// Queues, pipes, locks and shared values in the arguments travel with the child's start: it gets their
        /// descriptors, as Python's spawned children do.
        ///
        /// This blocks the calling thread while the child is started (about a millisecond); in async code,
        /// `try await p.start()` suspends instead.
        ///
        /// - Throws: ``CrewError/Code/alreadyStarted`` on a second call; ``CrewError/Code/notBootstrapped`` if
        ///   no crew was given and `bootstrap` has not run; ``CrewError/Code/unknownFunction`` if `target` is
        ///   not registered; ``CrewError/Code/encodingFailed`` if the arguments do not encode;
        ///   ``CrewError/Code/spawnFailed`` if the child cannot be started.
        public func start() throws {
            let launch = try prepare()
            let connection: ChildConnection
            do {
                connection = try withExtendedLifetime(launch.handed.owners) {
                    try ChildConnection.spawn(crew: launch.crew, mode: .process, handed: launch.handed.descriptors)
                }
            } catch {
                phase.withLock { $0 = .idle }
                throw error
            }
            begin(connection, arguments: launch.encoded)
        }

        /// Starts the child process and sends it the call, suspending (not blocking a thread of the cooperative
        /// pool) while the child is started. Returns once the child is running (its pid known).
        ///
        /// The start goes on if the task is cancelled meanwhile: a child that was started is never left unowned.
        ///
        /// - Throws: as `start()`.
        public func start() async throws {
            let launch = try prepare()
            let owners = launch.handed.owners
            let started = await withCheckedContinuation { continuation in
                ChildConnection.spawnAsync(
                    crew: launch.crew, mode: .process, handed: launch.handed.descriptors, handlers: .init()
                ) { continuation.resume(returning: $0) }
            }
            // The queues, pipes and locks whose descriptors the child gets stay open until it has them.
            withExtendedLifetime(owners) {}
            switch started {
            case .success(let connection):
                begin(connection, arguments: launch.encoded)
            case .failure(let error):
                phase.withLock { $0 = .idle }
                throw error
            }
        }

        /// What a start needs, checked and encoded; the process is then `starting`.
        private func prepare() throws -> (crew: Crew, encoded: [UInt8], handed: HandedDescriptors.Collector) {
            guard let crew = self.crew ?? Crew.current else {
                throw CrewError(
                    .notBootstrapped, "call Crew.bootstrap(...) at the top of main before starting processes")
            }
            guard crew.contains(target.name) else {
                throw CrewError(
                    .unknownFunction,
                    "\"\(target.name)\" is not registered: pass it to Crew.bootstrap",
                    function: target.name
                )
            }
            try phase.withLock { phase in
                guard case .idle = phase else {
                    throw CrewError(.alreadyStarted, "\(name) was already started; a process can be started once")
                }
                phase = .starting
            }
            // The arguments are encoded first: queues, pipes, locks and shared values in them hand their
            // descriptors to the child as it starts (see `HandedDescriptors`).
            do {
                let (encoded, handed) = try HandedDescriptors.collecting {
                    do {
                        return try BinaryEncoder().encode(args)
                    } catch let error as CrewError {
                        throw error
                    } catch {
                        throw CrewError(
                            .encodingFailed, "the arguments did not encode: \(error)", function: target.name)
                    }
                }
                return (crew, encoded, handed)
            } catch {
                phase.withLock { $0 = .idle }
                throw error
            }
        }

        /// The child is running: send it the call, whose outcome becomes ``value``.
        private func begin(_ connection: ChildConnection, arguments encoded: [UInt8]) {
            phase.withLock { $0 = .started(connection) }
            let outcome = self.outcome
            let function = target.name
            connection.call(
                function, encodeArguments: { $0.append(contentsOf: encoded) },
                completion: { result in
                    switch result {
                    case .success(let bytes):
                        do {
                            outcome.complete(.success(try BinaryDecoder().decode(Result.self, from: bytes)))
                        } catch {
                            outcome.complete(
                                .failure(
                                    CrewError(
                                        .decodingFailed,
                                        "the result did not decode as \(Result.self): \(error)",
                                        pid: connection.pid,
                                        function: function
                                    )))
                        }
                    case .failure(let error):
                        outcome.complete(.failure(error))
                    }
                })
        }

        private func started() throws -> ChildConnection {
            guard let connection else {
                throw CrewError(.notStarted, "\(name) has not been started", function: target.name)
            }
            return connection
        }

        /// Blocks until the child exits or `timeout` passes (no limit when nil), as Python's `join(timeout)`.
        ///
        /// - Returns: true if the child has exited.
        /// - Throws: ``CrewError/Code/notStarted`` before `start()`.
        @discardableResult
        public func join(timeout: Duration? = nil) throws -> Bool {
            try started().exited.wait(timeout: timeout) != nil
        }

        /// Waits until the child exits.
        ///
        /// - Throws: ``CrewError/Code/notStarted`` before `start()`; `CancellationError` if the waiting task
        ///   is cancelled (the child goes on).
        public func join() async throws {
            let connection = try started()
            guard await connection.exited.wait() != nil else { throw CancellationError() }
        }

        /// The function's return value, once the child has sent it.
        ///
        /// - Throws: the function's failure as a ``CrewError``: ``CrewError/Code/remoteError`` if it threw,
        ///   ``CrewError/Code/workerCrashed`` if the child died first; ``CrewError/Code/notStarted`` before
        ///   `start()`; `CancellationError` if the waiting task is cancelled.
        public var value: Result {
            get async throws {
                _ = try started()
                guard let result = await outcome.wait() else { throw CancellationError() }
                return try result.getRethrowing()
            }
        }

        /// Blocks until the function's return value arrives or `timeout` passes.
        ///
        /// - Throws: as ``value``, and ``CrewError/Code/timedOut`` when the time runs out (the child goes on).
        public func get(timeout: Duration? = nil) throws -> Result {
            _ = try started()
            guard let result = outcome.wait(timeout: timeout) else {
                throw CrewError(.timedOut, "\(name) did not return within \(timeout!)", function: target.name)
            }
            return try result.getRethrowing()
        }

        /// The child's process id, once started.
        public var pid: Int32? { connection?.pid }

        /// True from `start()` until the child exits.
        public var isAlive: Bool { connection?.isAlive ?? false }

        /// How the child ended, once it has.
        public var exitStatus: Crew.ExitStatus? { connection?.exited.current }

        /// Python's `exitcode`: nil while running (or before start), the exit code once exited, minus the
        /// signal number if a signal ended it. A function that threw makes it 1.
        public var exitCode: Int32? { exitStatus?.code }

        /// Sends `SIGTERM`, as Python's `terminate()`. Does nothing before start or after exit.
        public func terminate() {
            connection?.stop(.terminate)
        }

        /// Sends `SIGKILL`, as Python's `kill()`. Does nothing before start or after exit.
        public func kill() {
            connection?.stop(.kill)
        }
    }
}

extension Crew.Process where Arguments == Crew.Empty {
    /// A process that will run `target`, which takes no arguments.
    public convenience init(target: Crew.Function<Crew.Empty, Result>, name: String? = nil, crew: Crew? = nil) {
        self.init(target: target, args: Crew.Empty(), name: name, crew: crew)
    }
}

/// Numbers processes as Python does (`Process-1`, `Process-2`, ...).
let processCounter = Atomic<Int>(0)
