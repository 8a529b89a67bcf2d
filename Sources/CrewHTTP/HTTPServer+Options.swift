public import Crew

extension Crew.HTTPServer {
    /// How a server runs: gunicorn's settings, by their names where it has them.
    public struct Options: Codable, Sendable {
        /// Where to listen: `HOST:PORT`, `[IPV6]:PORT` or `unix:PATH` (gunicorn's `--bind`).
        public var bind: String
        /// How many worker processes (`--workers`, uWSGI's `--processes`).
        public var processes: Int
        /// How many requests each worker serves at once (uWSGI's `--gevent 100`); more wait for a slot.
        public var concurrency: Int
        /// How many connections each worker holds open at once (gunicorn's `--worker-connections`); more wait in
        /// the listening socket's backlog. The same as ``concurrency`` unless given: a request then never waits
        /// inside a worker for a slot, where the worker's death would take it too, but in the backlog, where any
        /// worker with room takes it.
        public var connections: Int
        /// A worker silent this long is ended and replaced (`--timeout`); nil: never.
        public var timeout: Duration?
        /// How long workers get to finish their requests when the server stops or reloads (`--graceful-timeout`).
        public var gracefulTimeout: Duration
        /// A worker exits (and is replaced) after serving this many requests, plus a random number up to
        /// ``maxRequestsJitter`` (`--max-requests`, `--max-requests-jitter`); 0: never.
        public var maxRequests: Int
        /// The most requests added at random to ``maxRequests`` for each worker, so that workers are not all
        /// replaced at once.
        public var maxRequestsJitter: Int
        /// How long a kept-alive connection may stay idle (`--keep-alive`), and how long a request's head may take
        /// to arrive: a client that trickles its headers is cut off then, and holds no slot longer.
        public var keepAlive: Duration
        /// The listening socket's backlog (`--backlog`).
        public var backlog: Int
        /// Each worker binds its own socket with `SO_REUSEPORT` instead of inheriting the supervisor's
        /// (`--reuse-port`).
        public var reusePort: Bool
        /// The permissions of a `unix:` socket's file: owner-only unless given.
        public var unixMode: UInt32
        /// The most header fields a request may have (`--limit-request-fields`); more: 400.
        public var limitRequestFields: Int
        /// The longest header field, name and value (`--limit-request-field-size`); longer: 400.
        public var limitRequestFieldSize: Int
        /// The longest request line (method, target and version) in bytes (`--limit-request-line`); longer: 414;
        /// 0: only the head's limit.
        public var limitRequestLine: Int
        /// The longest request line and headers together, in bytes; longer: 400.
        public var limitRequestHead: Int
        /// The largest request body in bytes (uWSGI's `--limit-post`): a larger declared `Content-Length` is
        /// answered 413, and a body sent in chunks that grows past it is cut off with its connection; 0: no limit
        /// (as gunicorn), bodies then being bounded where a handler collects them.
        public var limitRequestBody: Int
        /// A file the supervisor writes its pid to (`--pid`).
        public var pidFile: String?
        /// Whether the supervisor handles its process's signals.
        public var handlesSignals: Bool
        /// Listening beyond loopback is refused unless this is set: Crew's server has no authentication of its
        /// own, so put it behind yours.
        public var allowRemote: Bool

        /// Options with gunicorn's defaults where it has them (a 30 s timeout, a 2 s keep-alive, a backlog of
        /// 2048, a request line of 4094 bytes) and uWSGI's `--gevent 100` for the concurrency.
        public init(
            bind: String = "127.0.0.1:8000",
            processes: Int = 1,
            concurrency: Int = 100,
            connections: Int? = nil,
            timeout: Duration? = .seconds(30),
            gracefulTimeout: Duration = .seconds(30),
            maxRequests: Int = 0,
            maxRequestsJitter: Int = 0,
            keepAlive: Duration = .seconds(2),
            backlog: Int = 2048,
            reusePort: Bool = false,
            unixMode: UInt32 = 0o600,
            limitRequestFields: Int = 100,
            limitRequestFieldSize: Int = 8190,
            limitRequestLine: Int = 4094,
            limitRequestHead: Int = 64 << 10,
            limitRequestBody: Int = 0,
            pidFile: String? = nil,
            handlesSignals: Bool = true,
            allowRemote: Bool = false
        ) {
            self.bind = bind
            self.processes = processes
            self.concurrency = concurrency
            self.connections = connections ?? concurrency
            self.timeout = timeout
            self.gracefulTimeout = gracefulTimeout
            self.maxRequests = maxRequests
            self.maxRequestsJitter = maxRequestsJitter
            self.keepAlive = keepAlive
            self.backlog = backlog
            self.reusePort = reusePort
            self.unixMode = unixMode
            self.limitRequestFields = limitRequestFields
            self.limitRequestFieldSize = limitRequestFieldSize
            self.limitRequestLine = limitRequestLine
            self.limitRequestHead = limitRequestHead
            self.limitRequestBody = limitRequestBody
            self.pidFile = pidFile
            self.handlesSignals = handlesSignals
            self.allowRemote = allowRemote
        }

        func check(_ address: Crew.ListeningSocket.Address) throws {
            if reusePort && address.description.hasPrefix("unix:") {
                throw CrewError(
                    .invalidArgument,
                    "reuse-port binds a socket per worker, and a unix: socket's file can be bound by one only")
            }
            func atLeast(_ value: Int, _ minimum: Int, _ name: String) throws {
                guard value >= minimum else {
                    throw CrewError(.invalidArgument, "\(name) must be at least \(minimum), not \(value)")
                }
            }
            try atLeast(processes, 1, "processes")
            try atLeast(concurrency, 1, "concurrency")
            try atLeast(connections, 1, "connections")
            try atLeast(maxRequests, 0, "max-requests")
            try atLeast(maxRequestsJitter, 0, "max-requests-jitter")
            try atLeast(backlog, 1, "backlog")
            try atLeast(limitRequestFields, 1, "limit-request-fields")
            try atLeast(limitRequestFieldSize, 1, "limit-request-field-size")
            try atLeast(limitRequestLine, 0, "limit-request-line")
            try atLeast(limitRequestHead, 1, "limit-request-head")
            try atLeast(limitRequestBody, 0, "limit-request-body")
            if let timeout, timeout <= .zero {
                throw CrewError(.invalidArgument, "timeout must be positive, not \(timeout)")
            }
            // Keep-alive is also how long a request's head may take: 0 would close every connection at once.
            guard keepAlive > .zero else {
                throw CrewError(.invalidArgument, "keep-alive must be positive, not \(keepAlive)")
            }
            guard gracefulTimeout >= .zero else {
                throw CrewError(.invalidArgument, "graceful-timeout must not be negative, not \(gracefulTimeout)")
            }
            guard unixMode <= 0o777 else {
                throw CrewError(
                    .invalidArgument, "a unix socket's mode is 0 to 0777, not 0\(String(unixMode, radix: 8))")
            }
        }
    }
}
