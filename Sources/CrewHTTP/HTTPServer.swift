public import Crew
import Hummingbird
public import Logging

extension Crew {
    /// Serves a Hummingbird responder (a `Router`'s) from supervised worker processes, each with up to
    /// ``Options/concurrency`` requests at once: gunicorn's `--worker-class=gevent`, uWSGI's
    /// `--processes 4 --gevent 100`.
    ///
    /// The supervisor binds the listening socket once and every worker inherits it, so restarts and reloads never
    /// close the port; a worker that traps ends only the requests it was serving, and another takes its place.
    ///
    /// ```swift
    /// enum App {
    ///     static let serve = Crew.HTTPServer.worker("serve") {
    ///         let router = Router()
    ///         router.get("/") { _, _ in "Hello" }
    ///         return router.buildResponder()
    ///     }
    /// }
    ///
    /// try Crew.bootstrap(App.serve)   // first in main: a worker is this program started again
    /// try await Crew.HTTPServer(worker: App.serve, options: .init(bind: "127.0.0.1:8000", processes: 4)).run()
    /// ```
    public struct HTTPServer: Sendable {
        /// The function every worker runs: made by ``worker(_:responder:)``, registered with `Crew.bootstrap`.
        public typealias WorkerFunction = Crew.Function<Crew.Supervisor.Start<WorkerSettings>, Crew.Empty>

        /// What each worker is handed: the socket to accept on, and how to serve.
        public struct WorkerSettings: Codable, Sendable {
            /// The supervisor's listening socket; nil with ``Options/reusePort``, where each worker binds its own.
            let socket: Crew.ListeningSocket?
            let options: Options
            /// The supervisor's logger's level, which the workers' loggers take.
            let logLevel: Logger.Level
        }

        let worker: WorkerFunction
        let options: Options
        let logger: Logger
        let address: Crew.ListeningSocket.Address

        /// A server whose workers run `worker`.
        ///
        /// - Throws: `CrewError.Code.invalidArgument` for an address that does not parse, fewer than one process,
        ///   a concurrency or connection limit below one, a negative request limit, a keep-alive of zero, reuse-port
        ///   with a `unix:` address; or an address beyond this
        ///   machine without ``Options/allowRemote``.
        public init(worker: WorkerFunction, options: Options, logger: Logger = Logger(label: "crew.http")) throws {
            address = try Crew.ListeningSocket.Address.parse(options.bind)
            try options.check(address)
            if !address.isLocal && !options.allowRemote {
                throw CrewError(
                    .invalidArgument,
                    "\(options.bind) is reachable from other machines: Crew serves beyond loopback only with "
                        + "allowRemote (--allow-remote), behind your own authentication")
            }
            self.worker = worker
            self.options = options
            self.logger = logger
        }

        /// Binds the address, starts the workers and supervises them until the supervisor is stopped (`SIGTERM`,
        /// `SIGINT`, `SIGQUIT`; `SIGHUP` reloads, `SIGTTIN` and `SIGTTOU` add and remove a worker).
        ///
        /// - Throws: `CrewError.Code.systemCallFailed` if the address cannot be bound;
        ///   `CrewError.Code.crashLoop` if workers keep dying before they serve.
        public func run() async throws {
            try await run(onBound: { _ in }, supervisor: { _ in })
        }

        /// ``run()``, telling `onBound` where it listens once bound (the port the system chose for port 0), and
        /// `supervisor` the supervisor, to send it commands.
        public func run(
            onBound: @Sendable (Crew.ListeningSocket.Address) -> Void,
            supervisor: @Sendable (Crew.Supervisor) -> Void
        ) async throws {
            var socket: Crew.ListeningSocket?
            var settingsOptions = options
            if options.reusePort {
                // Bound here too, to check the address and learn the port; each worker binds its own beside it.
                let probe = try Crew.ListeningSocket(
                    address, backlog: options.backlog, reusePort: true, unixMode: options.unixMode)
                // Closed at once: a listening socket nobody accepts on would get its share of the connections.
                probe.close()
                settingsOptions.bind = probe.address.description
                logger.info(
                    "listening on \(probe.address) (a socket per worker, SO_REUSEPORT)",
                    metadata: ["crew.pid": "\(getpid())"])
                onBound(probe.address)
                socket = nil
                try await supervise(
                    WorkerSettings(socket: socket, options: settingsOptions, logLevel: logger.logLevel), supervisor)
                return
            }
            let bound = try Crew.ListeningSocket(address, backlog: options.backlog, unixMode: options.unixMode)
            socket = bound
            settingsOptions.bind = bound.address.description
            logger.info("listening on \(bound.address)", metadata: ["crew.pid": "\(getpid())"])
            onBound(bound.address)
            defer {
                bound.close()
                // A unix: socket's file goes with the server.
                let name = bound.address.description
                if name.hasPrefix("unix:") { unlink(String(name.dropFirst(5))) }
            }
            try await supervise(
                WorkerSettings(socket: socket, options: settingsOptions, logLevel: logger.logLevel), supervisor)
        }

        private func supervise(_ settings: WorkerSettings, _ handOut: @Sendable (Crew.Supervisor) -> Void) async throws
        {
            let supervisor = try Crew.Supervisor(
                worker: worker,
                arguments: settings,
                options: Crew.Supervisor.Options(
                    workers: options.processes,
                    timeout: options.timeout,
                    gracefulTimeout: options.gracefulTimeout,
                    pidFile: options.pidFile,
                    handlesSignals: options.handlesSignals
                ),
                logger: logger
            )
            handOut(supervisor)
            try await supervisor.run()
        }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
