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
            try await serve(start, makeResponder)
            return Crew.Empty()
        }
    }

    static func serve<Responder: HTTPResponder>(
        _ start: Crew.Supervisor.Start<WorkerSettings>,
        _ makeResponder: @Sendable () async throws -> Responder
    ) async throws where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
        let options = start.arguments.options
        var logger = Logger(label: "crew.http")
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

        let live = LiveChannels()
        let http1 = HTTP1Channel(
            responder: { request, responseWriter, channel in
                await requests.take()
                defer { requests.give() }
                let context = Responder.Context(source: .init(channel: channel, logger: workerLogger))
                var response: Response
                do {
                    response = try await responder.respond(to: request, context: context)
                } catch let error as HTTPParserError {
                    throw error
                } catch {
                    workerLogger.debug("a handler failed: \(String(reflecting: error))")
                    response = Response(status: .internalServerError)
                }
                if served.wrappingAdd(1, ordering: .relaxed).newValue == limit {
                    // The request limit: this worker stops taking connections, finishes, and is replaced.
                    response.headers[.connection] = "close"
                    reachLimit.yield()
                }
                try await responseWriter.write(response: response.head, body: response.body)
                live.served(channel)
            },
            configuration: .init(
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

        await withTaskGroup(of: Void.self) { outer in
            // Told to stop (SIGTERM) or at the request limit: stop accepting, and tell every connection to close
            // once its request is answered; the worker returns when the last one has.
            outer.addTask {
                await withTaskGroup(of: Void.self) { stop in
                    stop.addTask { await start.worker.stopRequested() }
                    stop.addTask { for await _ in limitReached { return } }
                    await stop.next()
                    stop.cancelAll()
                }
                guard !Task.isCancelled else { return }
                acceptor.stop()
                live.quiesce()
            }
            await withDiscardingTaskGroup { connectionsGroup in
                // A connection is accepted only when this worker has a slot for it: the others wait in the
                // kernel's backlog, where another worker with room takes them.
                while true {
                    await connections.take()
                    let extra = connections.takeAvailable(upTo: 15)
                    let accepted: [Int32]?
                    do {
                        accepted = try await Crew.blocking { acceptor.accept(upTo: 1 + extra) }
                    } catch {
                        workerLogger.error("accepting connections failed: \(String(reflecting: error))")
                        accepted = nil
                    }
                    guard let accepted else {
                        for _ in 0...extra { connections.give() }
                        break
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
                                live.add(value.channel)
                                await http1.handle(value: value, logger: workerLogger)
                                live.remove(value.channel)
                            } catch {
                                workerLogger.debug("a connection failed to start: \(String(reflecting: error))")
                            }
                        }
                    }
                }
                acceptor.close()
            }
            outer.cancelAll()
        }
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

    /// Waits for connections and accepts up to `limit` of them; nil once stopped (blocking; a thread of the
    /// blocking pool).
    func accept(upTo limit: Int) -> [Int32]? {
        var polled = [
            pollfd(fd: listening, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            let rc = poll(&polled, 2, -1)
            if rc < 0 && errno == EINTR { continue }
            if polled[1].revents != 0 || rc < 0 { return nil }
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
                if errno == EINTR || errno == ECONNABORTED { continue }
                break  // EAGAIN: another worker took it, or none is left. (EMFILE: the next poll tries again.)
            }
            if !accepted.isEmpty { return accepted }
        }
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

/// The connections a worker serves now, to tell each to close after its request when the worker stops.
///
/// A connection that has not yet answered a request is told only once it has answered its first: its client
/// sent (or is sending) a request on a fresh connection, which it would not send again if the connection closed
/// unanswered. A kept-alive connection is told at once (an idle one closes; a client resends on a new one).
final class LiveChannels: Sendable {
    private struct State {
        var open: [ObjectIdentifier: (channel: any Channel, served: Bool)] = [:]
        var quiescing = false
    }

    private let state = Mutex(State())

    func add(_ channel: any Channel) {
        state.withLock { $0.open[ObjectIdentifier(channel)] = (channel, false) }
    }

    func remove(_ channel: any Channel) {
        _ = state.withLock { $0.open.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// A request on `channel` was answered.
    func served(_ channel: any Channel) {
        let quiesceNow = state.withLock { state -> Bool in
            let key = ObjectIdentifier(channel)
            guard let entry = state.open[key] else { return state.quiescing }
            state.open[key] = (entry.channel, true)
            return state.quiescing && !entry.served
        }
        if quiesceNow { Self.quiesce(channel) }
    }

    func quiesce() {
        let now = state.withLock { state -> [any Channel] in
            state.quiescing = true
            return state.open.values.filter(\.served).map(\.channel)
        }
        for channel in now { Self.quiesce(channel) }
    }

    private static func quiesce(_ channel: any Channel) {
        channel.eventLoop.execute {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
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
