import CCrewShims
public import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
    /// Keeps long-lived worker processes running: gunicorn's arbiter, uWSGI's master.
    ///
    /// A supervisor starts ``Options/workers`` processes, each running a registered function of
    /// ``Start``: the same program started again, as every Crew child. It restarts a worker that dies (at once if
    /// it had served for a while, after a growing backoff if it keeps dying early), stops with
    /// ``CrewError/Code/crashLoop`` when workers keep dying before they are ready, and ends a worker whose heartbeat
    /// stops (`SIGTERM`, then `SIGKILL` after ``Options/killGrace``) and replaces it. Its own signals, as
    /// gunicorn's: `SIGTERM` and `SIGINT` stop gracefully (every worker gets `SIGTERM` and
    /// ``Options/gracefulTimeout`` to finish, then `SIGKILL`; a second one hurries the stop), `SIGQUIT` stops at
    /// once, `SIGHUP` reloads (a new generation of workers starts, and the old one drains once it is ready),
    /// `SIGTTIN` and `SIGTTOU` add and remove a worker. Workers never outlive their supervisor.
    ///
    /// ```swift
    /// let supervisor = try Crew.Supervisor(worker: App.serve, arguments: settings, options: .init(workers: 4))
    /// try await supervisor.run()   // until SIGTERM
    /// ```
    ///
    /// The decisions are a state machine's, tested without processes; this class starts, watches and signals the
    /// processes it names.
    public final class Supervisor: Sendable {
        /// How a supervisor runs its workers. Defaults as gunicorn's where it has them.
        public struct Options: Sendable {
            /// How many workers to keep.
            public var workers: Int
            /// A worker whose heartbeat stops this long (or that is not ready this long after its start) is
            /// ended and replaced (gunicorn's `--timeout`); nil: never.
            public var timeout: Duration?
            /// How long a worker gets to finish its work after `SIGTERM`, when the supervisor stops or reloads or a
            /// worker is removed, before `SIGKILL` (gunicorn's `--graceful-timeout`).
            public var gracefulTimeout: Duration
            /// How long a worker ended for silence gets after `SIGTERM` before `SIGKILL`.
            public var killGrace: Duration
            /// The first restart's delay for a worker that died early; it doubles with each early death in a row,
            /// up to ``backoffMax``. A worker that had served for a second is restarted at once.
            public var backoff: Duration
            /// The longest restart delay the backoff grows to.
            public var backoffMax: Duration
            /// This many workers dying before they were ready within ``crashLoopWindow`` stop the supervisor with
            /// ``CrewError/Code/crashLoop``. Deaths of ready workers never stop it: a handler that traps is a
            /// request's fault, not the server's.
            public var crashLoopDeaths: Int
            /// The window ``crashLoopDeaths`` are counted in.
            public var crashLoopWindow: Duration
            /// A file the supervisor writes its process id to while it runs (gunicorn's `--pid`), removed at the end.
            public var pidFile: String?
            /// Whether ``run()`` handles this process's `SIGTERM`, `SIGINT`, `SIGQUIT`, `SIGHUP`, `SIGTTIN` and
            /// `SIGTTOU` (turn it off to drive the supervisor with ``send(_:)`` alone, as in tests).
            public var handlesSignals: Bool

            /// Options with gunicorn's defaults: a 30 s timeout and graceful timeout.
            public init(
                workers: Int,
                timeout: Duration? = .seconds(30),
                gracefulTimeout: Duration = .seconds(30),
                killGrace: Duration = .seconds(5),
                backoff: Duration = .milliseconds(100),
                backoffMax: Duration = .seconds(10),
                crashLoopDeaths: Int = 5,
                crashLoopWindow: Duration = .seconds(10),
                pidFile: String? = nil,
                handlesSignals: Bool = true
            ) {
                self.workers = workers
                self.timeout = timeout
                self.gracefulTimeout = gracefulTimeout
                self.killGrace = killGrace
                self.backoff = backoff
                self.backoffMax = backoffMax
                self.crashLoopDeaths = crashLoopDeaths
                self.crashLoopWindow = crashLoopWindow
                self.pidFile = pidFile
                self.handlesSignals = handlesSignals
            }
        }

        /// What a supervisor can be told, by a signal or by ``send(_:)``.
        public struct Command: Sendable, Hashable, CustomStringConvertible {
            let base: SupervisorStateMachine.Command
            /// Stop gracefully (`SIGTERM`, `SIGINT`).
            public static let stop = Command(base: .stop)
            /// Stop at once (`SIGQUIT`).
            public static let quickStop = Command(base: .quickStop)
            /// Start a new generation of workers and drain the old one once it is ready (`SIGHUP`).
            public static let reload = Command(base: .reload)
            /// One worker more (`SIGTTIN`).
            public static let addWorker = Command(base: .addWorker)
            /// One worker fewer, never below one (`SIGTTOU`).
            public static let removeWorker = Command(base: .removeWorker)

            /// The command's name, such as `reload`.
            public var description: String { "\(base)" }
        }

        typealias Machine = SupervisorStateMachine

        enum Event: Sendable {
            case spawned(Machine.WorkerID, Result<ChildConnection, CrewError>)
            case exited(Machine.WorkerID, Crew.ExitStatus, CrewError)
            case command(Command)
            case tick
        }

        /// A line a worker wrote to its standard error.
        struct WorkerLine: Sendable {
            var id: Machine.WorkerID
            var text: String
        }

        private struct Shell {
            var machine: Machine
            var connections: [Machine.WorkerID: ChildConnection] = [:]
            var pages: [Machine.WorkerID: SupervisorPage] = [:]
            /// What keeps the descriptors handed to a starting worker open until it has them.
            var handedOwners: [Machine.WorkerID: [AnyObject]] = [:]
            var beatsSeen: [Machine.WorkerID: UInt64] = [:]
            var exitStatus: Int32?
        }

        private let crew: Crew
        private let options: Options
        private let logger: Logger
        /// Encodes a worker's `Start` (its arguments) and collects the descriptors it hands.
        private let encodeStart: @Sendable (Worker) throws -> ([UInt8], HandedDescriptors.Collector)
        private let function: String
        private let shell: Mutex<ShellBox>
        private let events: AsyncStream<Event>
        private let input: AsyncStream<Event>.Continuation
        /// The workers' standard error, a line at a time, logged through ``logger`` by a task of its own (so that a
        /// slow log never holds up supervising); at most `workerLinesBuffered` wait, and the rest are counted.
        private let workerLines: AsyncStream<WorkerLine>
        private let workerLineInput: AsyncStream<WorkerLine>.Continuation
        private let droppedWorkerLines = Atomic(0)
        static let workerLinesBuffered = 10_000
        private let running = Atomic(false)

        /// `Mutex` needs a `~Copyable`-friendly value; the box keeps the shell's state, which holds class
        /// references that are not `Sendable` themselves (the handed objects).
        private final class ShellBox: @unchecked Sendable {
            // @unchecked Sendable: only touched under the supervisor's mutex.
            var state: Shell
            init(_ state: Shell) { self.state = state }
        }

        /// A supervisor of workers that run `worker` with `arguments`.
        ///
        /// - Parameters:
        ///   - crew: Whose functions and options the workers use; ``Crew/current`` when nil.
        ///   - worker: The registered function each worker runs.
        ///   - arguments: What every worker gets in its ``Start``: queues, pipes, locks, shared values and
        ///     listening sockets in it are handed to each worker as it starts.
        ///   - options: How the workers are run.
        ///   - logger: Where the supervisor says what it does, with each worker's id (`crew.worker`); what the
        ///     workers write to their standard error comes here too, a line at a time, with their ids.
        /// - Throws: ``CrewError/Code/notBootstrapped`` without a crew; ``CrewError/Code/unknownFunction`` if
        ///   `worker` is not registered; ``CrewError/Code/invalidArgument`` for fewer than one worker or a crash loop
        ///   of fewer than one death.
        public init<Arguments>(
            _ crew: Crew? = nil,
            worker: Crew.Function<Start<Arguments>, Crew.Empty>,
            arguments: Arguments,
            options: Options,
            logger: Logger = Logger(label: "crew.supervisor")
        ) throws {
            guard let crew = crew ?? Crew.current else {
                throw CrewError(.notBootstrapped, "call Crew.bootstrap(...) at the top of main before supervising")
            }
            guard crew.contains(worker.name) else {
                throw CrewError(
                    .unknownFunction, "\"\(worker.name)\" is not registered: pass it to Crew.bootstrap",
                    function: worker.name)
            }
            guard options.workers >= 1 else {
                throw CrewError(.invalidArgument, "a supervisor needs at least one worker, not \(options.workers)")
            }
            guard options.crashLoopDeaths >= 1 else {
                throw CrewError(.invalidArgument, "crashLoopDeaths must be at least 1, not \(options.crashLoopDeaths)")
            }
            self.crew = crew
            self.options = options
            self.logger = logger
            self.function = worker.name
            self.encodeStart = { worker in
                try HandedDescriptors.collecting {
                    do {
                        return try BinaryEncoder().encode(Start(worker: worker, arguments: arguments))
                    } catch let error as CrewError {
                        throw error
                    } catch {
                        throw CrewError(.encodingFailed, "a worker's arguments did not encode: \(error)")
                    }
                }
            }
            var configuration = Machine.Configuration(workers: options.workers)
            configuration.timeoutNanoseconds = options.timeout?.clampedNanoseconds
            configuration.gracefulTimeoutNanoseconds = options.gracefulTimeout.clampedNanoseconds
            configuration.killGraceNanoseconds = options.killGrace.clampedNanoseconds
            configuration.backoffNanoseconds = options.backoff.clampedNanoseconds
            configuration.backoffMaxNanoseconds = options.backoffMax.clampedNanoseconds
            configuration.crashLoopDeaths = options.crashLoopDeaths
            configuration.crashLoopWindowNanoseconds = options.crashLoopWindow.clampedNanoseconds
            shell = Mutex(ShellBox(Shell(machine: Machine(configuration: configuration))))
            (events, input) = AsyncStream.makeStream(of: Event.self)
            (workerLines, workerLineInput) = AsyncStream.makeStream(
                of: WorkerLine.self, bufferingPolicy: .bufferingOldest(Self.workerLinesBuffered))
        }

        /// Tells the supervisor `command`, as its signals do.
        public func send(_ command: Command) {
            input.yield(.command(command))
        }

        /// The process ids of the workers alive now.
        public var workerPIDs: [Int32] {
            shell.withLock { box in box.state.connections.values.map(\.pid).sorted() }
        }

        /// The process ids of the workers that are ready and not stopping.
        var readyWorkerPIDs: [Int32] {
            shell.withLock { box in
                box.state.machine.workers.values.filter { $0.state == .ready }.compactMap(\.pid).sorted()
            }
        }

        /// How many workers of the current generation the supervisor keeps now (``Options/workers``, changed by
        /// ``Command/addWorker`` and ``Command/removeWorker``).
        public var targetWorkers: Int { shell.withLock { $0.state.machine.target } }

        /// Runs the workers until the supervisor is stopped (by a signal or ``send(_:)``), and returns once every
        /// worker has exited. Cancelling the task stops the supervisor gracefully.
        ///
        /// - Throws: ``CrewError/Code/crashLoop`` if it stopped because workers kept dying before they were ready;
        ///   ``CrewError/Code/alreadyStarted`` on a second call.
        public func run() async throws {
            guard running.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
            else { throw CrewError(.alreadyStarted, "a supervisor runs once") }
            if options.handlesSignals {
                SupervisorSignals.install { [input] command in input.yield(.command(command)) }
            }
            if let pidFile = options.pidFile { try writePIDFile(pidFile) }
            defer { if let pidFile = options.pidFile { unlink(pidFile) } }
            logger.info(
                "supervisor starting \(options.workers) workers of \"\(function)\"",
                metadata: ["crew.pid": "\(getpid())"])
            perform(machineStep { $0.start(now: monotonicNanos()) })
            let status: Int32 = await withTaskGroup(of: Void.self) { outer in
                outer.addTask { await self.logWorkerLines() }
                let status = await withTaskGroup(of: Void.self) { group in
                    group.addTask { [input] in
                        // The ticks: readiness and heartbeats are read from the workers' pages, and deadlines
                        // checked.
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .milliseconds(50))
                            input.yield(.tick)
                        }
                    }
                    let status = await withTaskCancellationHandler {
                        await loop()
                    } onCancel: { [input] in
                        input.yield(.command(.stop))
                    }
                    group.cancelAll()
                    return status
                }
                // Every worker has exited and its standard error has ended: the last lines are logged, then done.
                workerLineInput.finish()
                await outer.waitForAll()
                return status
            }
            if status != 0 {
                throw CrewError(
                    .crashLoop,
                    "workers kept dying before they were ready (\(options.crashLoopDeaths) within "
                        + "\(options.crashLoopWindow)): the supervisor stopped", function: function)
            }
        }

        /// Handles events until the machine says every worker has exited; returns the exit status it gives.
        private func loop() async -> Int32 {
            for await event in events {
                let actions: [Machine.Action]
                switch event {
                case .spawned(let id, .success(let connection)):
                    actions = step { state, machine in
                        state.connections[id] = connection
                        state.handedOwners[id] = nil
                        return machine.spawned(id, pid: connection.pid, now: monotonicNanos())
                    }
                case .spawned(let id, .failure(let error)):
                    logger.error(
                        "worker \(id) did not start: \(String(reflecting: error))", metadata: ["crew.worker": "\(id)"])
                    actions = step { state, machine in
                        state.handedOwners[id] = nil
                        state.pages[id] = nil
                        return machine.spawnFailed(id, reason: error.message, now: monotonicNanos())
                    }
                case .exited(let id, let status, let error):
                    actions = step { state, machine in
                        // Readiness is read at each tick: a worker that got ready and finished between two ticks
                        // (one that served its request limit at once) was ready all the same, not a boot failure.
                        var actions: [Machine.Action] = []
                        if let page = state.pages[id], page.isReady, machine.workers[id]?.state == .booting {
                            actions = machine.ready(id, now: monotonicNanos())
                        }
                        state.connections[id] = nil
                        state.pages[id] = nil
                        state.beatsSeen[id] = nil
                        let exit: Machine.Exit = status.isSuccess ? .clean : .failed(Self.describe(error))
                        return actions + machine.exited(id, exit, now: monotonicNanos())
                    }
                case .command(let command):
                    logger.info("supervisor told to \(command)")
                    actions = machineStep { $0.command(command.base, now: monotonicNanos()) }
                case .tick:
                    actions = step { state, machine in
                        let now = monotonicNanos()
                        var actions: [Machine.Action] = []
                        for (id, page) in state.pages {
                            if page.isReady && machine.workers[id]?.state == .booting {
                                let pid = machine.workers[id]?.pid.map { "\($0)" } ?? "?"
                                logger.info(
                                    "worker \(id) (pid \(pid), generation \(machine.workers[id]?.generation ?? 0)) is ready",
                                    metadata: ["crew.worker": "\(id)"])
                                actions += machine.ready(id, now: now)
                            }
                            let beats = page.beats
                            if beats != state.beatsSeen[id] {
                                state.beatsSeen[id] = beats
                                machine.heartbeat(id, now: now)
                            }
                        }
                        return actions + machine.tick(now: now)
                    }
                }
                perform(actions)
                if let status = shell.withLock({ $0.state.exitStatus }) {
                    input.finish()
                    return status
                }
            }
            return 0
        }

        private func step(_ body: (inout Shell, inout Machine) -> [Machine.Action]) -> [Machine.Action] {
            shell.withLock { box in
                var machine = box.state.machine
                defer { box.state.machine = machine }
                return body(&box.state, &machine)
            }
        }

        private func machineStep(_ body: (inout Machine) -> [Machine.Action]) -> [Machine.Action] {
            step { _, machine in body(&machine) }
        }

        private func perform(_ actions: [Machine.Action]) {
            for action in actions {
                switch action {
                case .spawn(let id):
                    spawn(id)
                case .signal(let id, _, let signal):
                    guard let connection = shell.withLock({ $0.state.connections[id] }) else { continue }
                    switch signal {
                    case .terminate: connection.stop(.terminate)
                    case .kill: connection.stop(.kill)
                    case .quit: connection.signal(SIGQUIT)
                    }
                case .log(let event):
                    log(event)
                case .exit(let status):
                    logger.info("supervisor stopped", metadata: ["crew.status": "\(status)"])
                    shell.withLock { $0.state.exitStatus = status }
                }
            }
        }

        private func spawn(_ id: Machine.WorkerID) {
            let generation = shell.withLock { $0.state.machine.generation }
            let encoded: [UInt8]
            let handed: HandedDescriptors.Collector
            let page: SupervisorPage
            do {
                let beat = max((options.timeout?.clampedNanoseconds ?? 4_000_000_000) / 4, 10_000_000)
                page = try SupervisorPage.create(beatNanoseconds: min(beat, 1_000_000_000))
                (encoded, handed) = try encodeStart(Worker(id: id, generation: generation, page: page))
            } catch {
                let failure = (error as? CrewError) ?? CrewError(.spawnFailed, "\(error)")
                input.yield(.spawned(id, .failure(failure)))
                return
            }
            shell.withLock { box in
                box.state.pages[id] = page
                box.state.handedOwners[id] = handed.owners
            }
            let function = self.function
            let input = self.input
            let lines = workerLineInput
            var handlers = ChildConnection.Handlers(onExit: { status, error, _, _ in
                input.yield(.exited(id, status, error))
            })
            handlers.onStderrLine = { [weak self] text in
                if case .dropped = lines.yield(WorkerLine(id: id, text: text)) {
                    self?.droppedWorkerLines.add(1, ordering: .relaxed)
                }
            }
            ChildConnection.spawnAsync(crew: crew, mode: .process, handed: handed.descriptors, handlers: handlers) {
                result in
                if case .success(let connection) = result {
                    connection.call(function, encodeArguments: { $0.append(contentsOf: encoded) }) { _ in }
                }
                input.yield(.spawned(id, result))
            }
        }

        /// Logs the workers' lines with their worker's id (`crew.worker`), at the level the line names when it is
        /// a swift-log line (`... error label : message`), at error for a trap's message, and at info otherwise.
        private func logWorkerLines() async {
            for await line in workerLines {
                let (level, text) = Self.parse(line.text)
                logger.log(level: level, "\(text)", metadata: ["crew.worker": "\(line.id)"])
                let dropped = droppedWorkerLines.exchange(0, ordering: .relaxed)
                if dropped > 0 {
                    logger.warning(
                        "\(dropped) lines of the workers' standard error were dropped: the log was not keeping up")
                }
            }
        }

        /// A worker's line as the supervisor logs it: a swift-log line (`TIME LEVEL LABEL: MESSAGE`) at its level,
        /// without its time and level (the supervisor's logger adds its own); a trap's message at error; any other
        /// line at info, as it is.
        static func parse(_ line: String) -> (Logger.Level, String) {
            let words = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            if words.count == 3, let level = Logger.Level(rawValue: String(words[1])) {
                return (level, String(words[2]))
            }
            if line.contains("Fatal error") { return (.error, line) }
            return (.info, line)
        }

        private func log(_ event: Machine.Event) {
            switch event {
            case .died(let id, let exit, let delay):
                let next =
                    switch delay {
                    case nil: "not restarting it"
                    case 0?: "restarting it at once"
                    case let delay?: "restarting it in \(Duration.nanoseconds(Int64(delay)))"
                    }
                logger.error("worker \(id) died: \(exit.text); \(next)", metadata: ["crew.worker": "\(id)"])
            case .recycled(let id):
                logger.info("worker \(id) exited on its own; starting another", metadata: ["crew.worker": "\(id)"])
            case .timedOut(let id):
                let timeout = options.timeout.map { "\($0)" } ?? "none"
                logger.critical(
                    "worker \(id) stopped beating (timeout \(timeout)): SIGTERM, then SIGKILL",
                    metadata: ["crew.worker": "\(id)"])
            case .killedAfterGrace(let id):
                logger.error("worker \(id) did not exit in time: SIGKILL", metadata: ["crew.worker": "\(id)"])
            case .reloaded(let generation):
                logger.info("generation \(generation) is ready; the older workers drain")
            case .stopping(.asked):
                logger.info("supervisor stopping")
            case .stopping(.crashLoop(let deaths, let window)):
                let within = Duration.nanoseconds(Int64(window))
                logger.critical(
                    "\(deaths) workers died before they were ready within \(within): stopping the supervisor")
            }
        }

        /// The death's error in one line: how the worker ended, and its trap's message if it left one.
        private static func describe(_ error: CrewError) -> String {
            var text = error.exitStatus.map { "\($0)" } ?? error.message
            if let fatal = error.lastStderr?.split(separator: "\n").last(where: { $0.contains("Fatal error") }) {
                text += ": " + fatal
            } else if let last = error.lastStderr?.split(separator: "\n").last {
                text += ": " + last
            }
            return text
        }

        private func writePIDFile(_ path: String) throws {
            // Not through a symbolic link someone left at the path.
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
            guard fd >= 0 else { throw systemCallError("open \(path)") }
            defer { close(fd) }
            var text = "\(getpid())\n"
            let written = text.withUTF8 { write(fd, $0.baseAddress, $0.count) }
            guard written == text.utf8.count else { throw systemCallError("write \(path)") }
        }
    }
}

extension SupervisorStateMachine.Exit {
    var text: String {
        switch self {
        case .clean: "exited with status 0"
        case .failed(let text): text
        }
    }
}

/// The supervisor process's own signals, turned into commands: a handler writes each signal's number to a pipe
/// (all it may do), and a thread reads the pipe.
enum SupervisorSignals {
    private static let installed = Mutex<(@Sendable (Crew.Supervisor.Command) -> Void)?>(nil)

    static func install(_ handler: @escaping @Sendable (Crew.Supervisor.Command) -> Void) {
        let first = installed.withLock { current -> Bool in
            defer { current = handler }
            return current == nil
        }
        guard first else { return }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return }
        let (reader, writer) = (fds[0], fds[1])
        _ = fcntl(reader, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writer, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writer, F_SETFL, O_NONBLOCK)
        let started = startThreadIfPossible(name: "crew-supervisor-signals") {
            var byte: UInt8 = 0
            while true {
                let n = read(reader, &byte, 1)
                if n < 0 && errno == EINTR { continue }
                guard n == 1 else { return }
                let command: Crew.Supervisor.Command? =
                    switch Int32(byte) {
                    case SIGTERM, SIGINT: .stop
                    case SIGQUIT: .quickStop
                    case SIGHUP: .reload
                    case SIGTTIN: .addWorker
                    case SIGTTOU: .removeWorker
                    default: nil
                    }
                if let command, let handler = installed.withLock({ $0 }) { handler(command) }
            }
        }
        guard case .success = started else { return }
        let signals: [Int32] = [SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU]
        _ = signals.withUnsafeBufferPointer { crew_signal_pipe_install(writer, $0.baseAddress, Int32($0.count)) }
    }
}
