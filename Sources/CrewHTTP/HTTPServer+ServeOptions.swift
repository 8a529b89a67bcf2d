public import ArgumentParser
public import Crew
public import Logging

extension Crew.HTTPServer {
    /// The command-line options of a `serve` command, by gunicorn's names: put them in your app's command with
    /// `@OptionGroup var serve: Crew.HTTPServer.ServeOptions`, then run `Crew.HTTPServer(worker:options:)` with
    /// its ``options``.
    ///
    /// ```
    /// app serve --bind 127.0.0.1:8000 --processes 4 --concurrency 100 --timeout 30 --graceful-timeout 30 \
    ///     --max-requests 10000 --max-requests-jitter 500 --log-level info [--reuse-port] [--pid FILE]
    /// ```
    public struct ServeOptions: ParsableArguments, Sendable {
        /// Where to listen: HOST:PORT, [IPV6]:PORT or unix:PATH.
        @Option(name: [.customShort("b"), .long], help: "Where to listen: HOST:PORT, [IPV6]:PORT or unix:PATH.")
        public var bind = "127.0.0.1:8000"
        /// Worker processes.
        @Option(name: [.customShort("w"), .long, .customLong("workers")], help: "Worker processes.")
        public var processes = 1
        /// Requests each worker serves at once.
        @Option(name: .long, help: "Requests each worker serves at once.")
        public var concurrency = 100
        /// Connections each worker holds open at once (default: --concurrency).
        @Option(name: .long, help: "Connections each worker holds open at once (default: --concurrency).")
        public var workerConnections: Int?
        /// Seconds a silent worker lives before it is replaced (0: never).
        @Option(name: [.customShort("t"), .long], help: "Seconds a silent worker lives (0: no limit).")
        public var timeout = 30.0
        /// Seconds workers get to finish their requests at a stop or a reload.
        @Option(name: .long, help: "Seconds workers get to finish their requests at a stop or a reload.")
        public var gracefulTimeout = 30.0
        /// Requests a worker serves before it is replaced (0: no limit).
        @Option(name: .long, help: "Requests a worker serves before it is replaced (0: no limit).")
        public var maxRequests = 0
        /// A random number of requests, up to this, added to --max-requests per worker.
        @Option(name: .long, help: "A random number of requests, up to this, added to --max-requests per worker.")
        public var maxRequestsJitter = 0
        /// Seconds a kept-alive connection may stay idle.
        @Option(name: .long, help: "Seconds a kept-alive connection may stay idle.")
        public var keepAlive = 2.0
        /// The listening socket's backlog.
        @Option(name: .long, help: "The listening socket's backlog.")
        public var backlog = 2048
        /// The longest request line, in bytes (0: only the head's limit of 64 KiB).
        @Option(name: .long, help: "The longest request line, in bytes (0: only the head's limit of 64 KiB).")
        public var limitRequestLine = 4094
        /// The largest request body, in bytes (0: no limit).
        @Option(name: .long, help: "The largest request body, in bytes (0: no limit).")
        public var limitRequestBody = 0
        /// The most header fields in a request.
        @Option(name: .long, help: "The most header fields in a request.")
        public var limitRequestFields = 100
        /// The longest header field, in bytes.
        @Option(name: .long, help: "The longest header field, in bytes.")
        public var limitRequestFieldSize = 8190
        /// critical, error, warning, notice, info, debug or trace.
        @Option(name: .long, help: "critical, error, warning, notice, info, debug or trace.")
        public var logLevel = "info"
        /// The permissions of a unix: socket's file, in octal.
        @Option(name: .long, help: "The permissions of a unix: socket's file, in octal.")
        public var unixMode = "600"
        /// Each worker binds its own socket with SO_REUSEPORT.
        @Flag(name: .long, help: "Each worker binds its own socket with SO_REUSEPORT.")
        public var reusePort = false
        /// A file to write the supervisor's pid to.
        @Option(name: [.customShort("p"), .customLong("pid")], help: "A file to write the supervisor's pid to.")
        public var pidFile: String?
        /// Allow listening beyond loopback (put your own authentication in front).
        @Flag(name: .long, help: "Allow listening beyond loopback (put your own authentication in front).")
        public var allowRemote = false

        /// The defaults, as gunicorn's.
        public init() {}

        /// Refuses an address that does not parse, counts below one, an unknown log level or a negative time.
        public mutating func validate() throws {
            // Times first: `options` turns them into durations.
            for (name, value) in [
                ("--timeout", timeout), ("--graceful-timeout", gracefulTimeout), ("--keep-alive", keepAlive),
            ] {
                guard value.isFinite, value >= 0, value <= 1_000_000 else {
                    throw ValidationError("\(name) must be a number of seconds from 0 to 1000000, not \(value)")
                }
            }
            guard keepAlive > 0 else { throw ValidationError("--keep-alive must be more than 0 seconds") }
            guard let mode = UInt32(unixMode, radix: 8), mode <= 0o777 else {
                throw ValidationError("--unix-mode must be an octal mode from 0 to 777, not \(unixMode)")
            }
            do {
                let address = try Crew.ListeningSocket.Address.parse(bind)
                try options.check(address)
                if !address.isLocal && !allowRemote {
                    throw CrewError(
                        .invalidArgument,
                        "\(bind) is reachable from other machines: --allow-remote serves there, behind your own "
                            + "authentication")
                }
            } catch let error as CrewError {
                throw ValidationError(error.message)
            }
            guard Logger.Level(rawValue: logLevel) != nil else {
                throw ValidationError("--log-level must be one of critical, error, warning, notice, info, debug, trace")
            }
        }

        /// The server's options these stand for.
        public var options: Options {
            Options(
                bind: bind,
                processes: processes,
                concurrency: concurrency,
                connections: workerConnections,
                timeout: timeout > 0 ? .milliseconds(Int64(timeout * 1000)) : nil,
                gracefulTimeout: .milliseconds(Int64(gracefulTimeout * 1000)),
                maxRequests: maxRequests,
                maxRequestsJitter: maxRequestsJitter,
                keepAlive: .milliseconds(Int64(keepAlive * 1000)),
                backlog: backlog,
                reusePort: reusePort,
                unixMode: UInt32(unixMode, radix: 8) ?? 0o600,
                limitRequestFields: limitRequestFields,
                limitRequestFieldSize: limitRequestFieldSize,
                limitRequestLine: limitRequestLine,
                limitRequestBody: limitRequestBody,
                pidFile: pidFile,
                allowRemote: allowRemote
            )
        }

        /// The log level asked for.
        public var level: Logger.Level { Logger.Level(rawValue: logLevel) ?? .info }
    }
}
