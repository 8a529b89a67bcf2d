public import Crew
public import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

extension Crew.HTTPServer {
    /// The function a server's workers run: each builds its responder with `responder` (once, as it starts),
    /// accepts on the supervisor's socket and serves until it is told to stop or has served its request limit.
    ///
    /// Register it with `Crew.bootstrap` and hand it to ``init(worker:options:logger:)``.
    public static func worker<Responder: HTTPResponder>(
        _ name: String,
        responder makeResponder: @escaping @Sendable () async throws -> Responder
    ) -> WorkerFunction where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
        Crew.Function(name) { (start: Crew.Supervisor.Start<WorkerSettings>) async throws -> Crew.Empty in
            // A child runs its functions' tasks on its own loop thread; a server's belong on Swift's concurrency
            // pool, every core's thread, where the heartbeat runs too (a worker whose handlers hold every thread
            // stops beating, and is replaced).
            try await withTaskExecutorPreference(globalConcurrentExecutor) {
                try await serve(start, makeResponder)
            }
            return Crew.Empty()
        }
    }

    static func serve<Responder: HTTPResponder>(
        _ start: Crew.Supervisor.Start<WorkerSettings>,
        _ makeResponder: @Sendable () async throws -> Responder
    ) async throws where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
        let options = start.arguments.options
        var logger = Logger(label: "crew.http")
        logger.logLevel = start.arguments.logLevel
        logger[metadataKey: "crew.worker"] = "\(start.worker.id)"
        let responder = try await makeResponder()
        let socket =
            try start.arguments.socket
            ?? Crew.ListeningSocket(
                try Crew.ListeningSocket.Address.parse(options.bind), backlog: options.backlog, reusePort: true,
                unixMode: options.unixMode)
        let requests = Slots(options.concurrency)
        let connections = Slots(options.connections)
        let limit =
            options.maxRequests > 0 ? options.maxRequests + Int.random(in: 0...options.maxRequestsJitter) : Int.max
        let served = Atomic<Int>(0)
        let (limitReached, reachLimit) = AsyncStream.makeStream(of: Void.self)
        let workerLogger = logger

        // Set when the worker stops taking connections: every answer from then on closes its connection. An idle
        // kept-alive connection is not closed at once: its client may be sending a request already, which would
        // then fail (a client resends only on a connection that was idle long enough to expect a close); it closes
        // after its next answer, or when its keep-alive runs out.
        let closing = ClosingFlag()
        let dates = HTTPDate()
        let http1 = HTTP1Channel(
            responder: { request, responseWriter, channel in
                await requests.take()
                defer { requests.give() }
                // As Hummingbird's `Application` does: a logger with the request's id, and a `Date` header.
                var logger = workerLogger
                logger[metadataKey: "hb.request.id"] = .stringConvertible(RequestID())
                let context = Responder.Context(source: .init(channel: channel, logger: logger))
                var response: Response
                do {
                    response = try await responder.respond(to: request, context: context)
                } catch let error as HTTPParserError {
                    throw error
                } catch {
                    logger.debug("a handler failed: \(String(reflecting: error))")
                    response = Response(status: .internalServerError)
                }
                response.headers[.date] = dates.now
                if served.wrappingAdd(1, ordering: .relaxed).newValue == limit {
                    // The request limit: this worker stops taking connections, finishes, and is replaced.
                    closing.set()
                    reachLimit.yield()
                }
                let close = closing.isSet
                if close { response.headers[.connection] = "close" }
                try await responseWriter.write(response: response.head, body: response.body)
                if close {
                    // Closed once the answer is written, whatever the client does next.
                    channel.eventLoop.execute {
                        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                    }
                }
            },
            configuration: .init(
                additionalChannelHandlers: [
                    RequestLimits(requestLine: options.limitRequestLine, body: options.limitRequestBody)
                ],
                idleTimeout: .nanoseconds(options.keepAlive.clampedNanosecondsForNIO),
                httpDecoderConfiguration: .init(
                    maxHeaderFieldSize: options.limitRequestFieldSize,
                    maxHeaderListSize: options.limitRequestHead,
                    maxHeaderFieldCount: options.limitRequestFields
                )
            )
        )

        let group = MultiThreadedEventLoopGroup.singleton
        let acceptor = try Acceptor(listening: try socket.release())
        start.worker.ready()
        logger.debug("worker serving", metadata: ["crew.pid": "\(getpid())"])

        let failure: CrewError? = await withTaskGroup(of: Void.self) { outer in
            // Told to stop (SIGTERM) or at the request limit: stop accepting, and close every connection after its
            // next answer; the worker returns when the last one has closed.
            outer.addTask {
                await withTaskGroup(of: Void.self) { stop in
                    stop.addTask { await start.worker.stopRequested() }
                    stop.addTask { for await _ in limitReached { return } }
                    await stop.next()
                    stop.cancelAll()
                }
                guard !Task.isCancelled else { return }
                closing.set()
                acceptor.stop()
            }
            let failure: CrewError? = await withDiscardingTaskGroup { connectionsGroup in
                var failure: CrewError?
                // A connection is accepted only when this worker has a slot for it: the others wait in the
                // kernel's backlog, where another worker with room takes them. At most four at a wake-up: a worker
                // that took every waiting connection would leave the others idle while it works through them.
                accepting: while true {
                    await connections.take()
                    let extra = connections.takeAvailable(upTo: 3)
                    let outcome: Acceptor.Accepted
                    do {
                        outcome = try await Crew.blocking { acceptor.accept(upTo: 1 + extra) }
                    } catch {
                        outcome = .failed(error as? CrewError ?? CrewError(.systemCallFailed, "\(error)"))
                    }
                    let accepted: [Int32]
                    switch outcome {
                    case .connections(let fds):
                        accepted = fds
                    case .stopped, .failed:
                        if case .failed(let error) = outcome {
                            workerLogger.error("accepting connections failed: \(String(reflecting: error))")
                            failure = error
                            closing.set()
                        }
                        for _ in 0...extra { connections.give() }
                        break accepting
                    }
                    for _ in accepted.count..<(1 + extra) { connections.give() }
                    for fd in accepted {
                        connectionsGroup.addTask {
                            defer { connections.give() }
                            do {
                                let bootstrap = ClientBootstrap(group: group)
                                    .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                                let value = try await bootstrap.withConnectedSocket(NIOBSDSocket.Handle(fd)) {
                                    channel in http1.setup(channel: channel, logger: workerLogger)
                                }
                                await http1.handle(value: value, logger: workerLogger)
                            } catch {
                                workerLogger.debug("a connection failed to start: \(String(reflecting: error))")
                            }
                        }
                    }
                }
                acceptor.close()
                return failure
            }
            outer.cancelAll()
            return failure
        }
        // The listening socket failed: the worker ends with the error (once its connections have), and the
        // supervisor restarts it after its backoff.
        if let failure { throw failure }
    }
}

/// Accepts connections on a listening socket that other processes accept on too: it waits in `poll` (with a
/// pipe that wakes it to stop) and accepts without blocking, so that a connection another worker took first is
/// no error. (SwiftNIO's server channel takes a readable socket to mean a connection for it, which a shared socket
/// does not promise.)
final class Acceptor: Sendable {
    let listening: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32

    init(listening: Int32) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw CrewError(.systemCallFailed, "pipe: \(String(cString: strerror(errno)))") }
        self.listening = listening
        wakeRead = fds[0]
        wakeWrite = fds[1]
        for fd in [listening, wakeRead, wakeWrite] {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        _ = fcntl(listening, F_SETFL, fcntl(listening, F_GETFL) | O_NONBLOCK)
    }

    /// What ``accept(upTo:)`` found.
    enum Accepted {
        case connections([Int32])
        case stopped
        /// The listening socket failed (not a connection's failure): the worker ends, and the supervisor restarts
        /// it after its backoff.
        case failed(CrewError)
    }

    /// Waits for connections and accepts up to `limit` of them (blocking: a thread of the blocking pool).
    func accept(upTo limit: Int) -> Accepted {
        var polled = [
            pollfd(fd: listening, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            let rc = poll(&polled, 2, -1)
            if rc < 0 && errno == EINTR { continue }
            if polled[1].revents != 0 { return .stopped }
            if rc < 0 || polled[0].revents & Int16(POLLERR | POLLNVAL) != 0 {
                return .failed(CrewError(.systemCallFailed, "poll on the listening socket: \(Self.lastError(rc))"))
            }
            var accepted: [Int32] = []
            while accepted.count < limit {
                let fd = Glibc.accept(listening, nil, nil)
                if fd >= 0 {
                    // A worker starts no programs, so the moment before close-on-exec is set does no harm.
                    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                    accepted.append(fd)
                    continue
                }
                let error = errno
                if error == EINTR || error == ECONNABORTED { continue }
                if error == EAGAIN || error == EWOULDBLOCK { break }  // Another worker took it, or none is left.
                if error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM {
                    // Out of descriptors or memory for now: the connection waits in the backlog; look again in
                    // 100 ms (or at a stop) rather than spin on a socket that stays readable.
                    if accepted.isEmpty {
                        var wake = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
                        _ = poll(&wake, 1, 100)
                        if wake[0].revents != 0 { return .stopped }
                    }
                    break
                }
                return .failed(CrewError(.systemCallFailed, "accept: \(String(cString: strerror(error)))"))
            }
            if !accepted.isEmpty { return .connections(accepted) }
        }
    }

    private static func lastError(_ rc: Int32) -> String {
        rc < 0 ? String(cString: strerror(errno)) : "the socket reports an error"
    }

    /// Wakes `accept` for good.
    func stop() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    func close() {
        _ = Glibc.close(listening)
        _ = Glibc.close(wakeRead)
        _ = Glibc.close(wakeWrite)
    }
}

/// A flag that is set once, read from any thread.
final class ClosingFlag: Sendable {
    private let value = Atomic<Bool>(false)

    var isSet: Bool { value.load(ordering: .relaxed) }

    func set() { value.store(true, ordering: .relaxed) }
}

/// The `Date` header's value (RFC 9110's IMF-fixdate), made once a second.
final class HTTPDate: Sendable {
    private let cache = Mutex<(second: time_t, text: String)>((0, ""))

    var now: String {
        let second = time(nil)
        return cache.withLock { cache in
            if cache.second != second {
                var parts = tm()
                var t = second
                gmtime_r(&t, &parts)
                var buffer = [CChar](repeating: 0, count: 64)
                let n = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
                cache = (second, String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            return cache.text
        }
    }
}

extension Duration {
    /// The duration in nanoseconds for NIO's `TimeAmount`, at most `Int64.max`.
    var clampedNanosecondsForNIO: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return seconds < 0 ? 0 : .max }
        return max(0, scaled &+ attoseconds / 1_000_000_000)
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
