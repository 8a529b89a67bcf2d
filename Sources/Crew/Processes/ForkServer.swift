import CCrewShims
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// The forkserver start method. A zygote — this program started once more, with `posix_spawn`, and stopped in
// its `Crew.bootstrap` before it has started any thread — forks workers on request. A fork of a small
// single-threaded process costs much less than starting a program (crew-bench's process-start rows); and
// since the zygote never runs anything but this loop, no worker is ever forked from a process with threads (a
// fork after threads can leave the child's thread pools dead). The parent may have started any threads at all.
//
// The parent sends the zygote one message per worker, with the worker's socket and standard error pipe
// attached (SCM_RIGHTS) over a SOCK_SEQPACKET pair; the zygote answers with the pid and, later, reports how the
// worker exited (the worker is the zygote's child: only the zygote can wait for it). The zygote dies with the
// parent and its workers die with the zygote (parent-death signals and end of stream on every socket).
//
//   parent → zygote   fork     u8 1, u64 request, u8 mode, u64 max frame size, u64 spin ns, u8 progress (0/1),
//                              u8 n + descriptors: socket, standard error, the progress page if any, then n
//                              descriptors handed to the child (see `HandedDescriptors`)
//   zygote → parent   forked   u8 2, u64 request, i32 pid (0 if none), i32 errno
//                     exited   u8 3, i32 pid, i32 code, i32 status

enum ZygoteMessage {
    static let fork: UInt8 = 1
    static let forked: UInt8 = 2
    static let exited: UInt8 = 3
    static let forkLength = 28

    static func put<T: FixedWidthInteger>(_ value: T, _ bytes: inout [UInt8]) {
        Swift.withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    static func get<T: FixedWidthInteger>(_: T.Type, _ bytes: [UInt8], _ at: inout Int) -> T {
        var value = T.zero
        withUnsafeMutableBytes(of: &value) { raw in
            for i in 0..<MemoryLayout<T>.size { raw[i] = bytes[at + i] }
        }
        at += MemoryLayout<T>.size
        return T(littleEndian: value)
    }
}

/// The zygote's loop (in the zygote process). Single-threaded by construction: plain system calls only.
enum Zygote {
    static func run(crew: Crew, marker: ChildMarker) -> Never {
        let control = marker.fd
        let sigchld = crew_sigchld_fd()
        if sigchld < 0 { ChildRuntime.fail("the fork server could not watch its children (errno \(errno))") }
        let me = getpid()
        var buffer = [UInt8](repeating: 0, count: 64)
        var fds = [Int32](repeating: -1, count: 3 + HandedDescriptors.limit)
        while true {
            var polls = [
                pollfd(fd: control, events: Int16(POLLIN), revents: 0),
                pollfd(fd: sigchld, events: Int16(POLLIN), revents: 0),
            ]
            if poll(&polls, 2, -1) < 0 {
                if errno == EINTR { continue }
                ChildRuntime.exitChild(0)
            }
            if polls[1].revents != 0 {
                crew_drain_signalfd(sigchld)
                var status: Int32 = 0
                while true {
                    let pid = waitpid(-1, &status, WNOHANG)
                    if pid <= 0 { break }
                    // WIFEXITED: the low 7 bits are 0; the code is bits 8-15. Otherwise the low 7 bits are the signal.
                    let signal = status & 0x7F
                    var reply: [UInt8] = [ZygoteMessage.exited]
                    ZygoteMessage.put(pid, &reply)
                    ZygoteMessage.put(Int32(signal == 0 ? CLD_EXITED : CLD_KILLED), &reply)
                    ZygoteMessage.put(Int32(signal == 0 ? (status >> 8) & 0xFF : signal), &reply)
                    send(reply, control)
                }
            }
            guard polls[0].revents != 0 else { continue }
            var count: Int32 = 0
            let n = buffer.withUnsafeMutableBytes { raw in
                fds.withUnsafeMutableBufferPointer { fdBuffer in
                    crew_receive_with_fds(
                        control,
                        raw.baseAddress,
                        UInt(raw.count),
                        fdBuffer.baseAddress,
                        Int32(fdBuffer.count),
                        &count
                    )
                }
            }
            if n == 0 { ChildRuntime.exitChild(0) }  // The parent is gone.
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                ChildRuntime.exitChild(0)
            }
            let received = Array(fds[0..<Int(count)])
            defer { for fd in received { close(fd) } }
            guard n == ZygoteMessage.forkLength, buffer[0] == ZygoteMessage.fork else { continue }
            var at = 1
            let request = ZygoteMessage.get(UInt64.self, buffer, &at)
            let mode = ChildMarker.Mode(rawValue: String(UnicodeScalar(buffer[at]))) ?? .worker
            at += 1
            let maxFrameSize = Int(ZygoteMessage.get(UInt64.self, buffer, &at))
            let spin = ZygoteMessage.get(UInt64.self, buffer, &at)
            let progress = buffer[at] == 1
            let handed = Int(buffer[at + 1])
            guard received.count == 2 + (progress ? 1 : 0) + handed else { continue }
            let handedFDs = Array(received[(progress ? 3 : 2)...])
            var pid: Int32 = 0
            var failure: Int32 = 0
            if crew_thread_count() != 1 {
                // Something before Crew.bootstrap started a thread: forking now could hand the worker dead locks.
                failure = EDEADLK
            } else {
                pid = crew_fork()
                if pid == 0 {
                    close(sigchld)
                    let setup = handedFDs.withUnsafeBufferPointer {
                        crew_forked_child_setup(
                            received[0], received[1], progress ? received[2] : -1, $0.baseAddress, Int32(handed))
                    }
                    if setup != 0 { _exit(ChildRuntime.exitBadMarker) }
                    var worker = ChildMarker(
                        fd: 3,
                        parentPID: me,
                        mode: mode,
                        maxFrameSize: maxFrameSize,
                        spinNanoseconds: spin,
                        progress: progress
                    )
                    worker.handed = handed
                    ChildRuntime.serve(crew: crew, marker: worker)
                }
                if pid < 0 {
                    failure = errno
                    pid = 0
                }
            }
            var reply: [UInt8] = [ZygoteMessage.forked]
            ZygoteMessage.put(request, &reply)
            ZygoteMessage.put(pid, &reply)
            ZygoteMessage.put(failure, &reply)
            send(reply, control)
        }
    }

    /// Sends one message, waiting for room if the socket is full; exits if the parent is gone.
    private static func send(_ message: [UInt8], _ control: Int32) {
        while true {
            let n = message.withUnsafeBytes { crew_send_with_fds(control, $0.baseAddress, UInt($0.count), nil, 0) }
            if n >= 0 { return }
            if errno == EAGAIN {
                var p = pollfd(fd: control, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, -1)
                continue
            }
            ChildRuntime.exitChild(0)
        }
    }
}

/// The parent's side of a zygote (reactor thread only).
final class ForkServer: ReactorSource, @unchecked Sendable {
    // @unchecked Sendable: used only on the reactor thread.

    private struct Key: Hashable {
        var executable: String
        var arguments: [String]?
        var environment: [String: String]
    }

    private struct Request {
        var socket: Int32
        var stderr: Int32
        var progress: ProgressPage?
        var mode: ChildMarker.Mode
        var options: Crew.Options
        var handlers: ChildConnection.Handlers
        var completion: @Sendable (Result<ChildConnection, CrewError>) -> Void
    }

    nonisolated(unsafe) private static var servers: [Key: ForkServer] = [:]

    private let key: Key
    private let zygote: LaunchedChild
    private var controlCookie: UInt64 = 0
    private var pidfdCookie: UInt64 = 0
    private var requests: [UInt64: Request] = [:]
    private var nextRequest: UInt64 = 1
    private var workers: [Int32: ChildConnection] = [:]
    private var dead = false

    private init(key: Key, zygote: LaunchedChild) {
        self.key = key
        self.zygote = zygote
    }

    /// Starts a worker through the zygote for `options` (starting the zygote first if needed). Reactor thread.
    static func fork(
        options: Crew.Options,
        mode: ChildMarker.Mode,
        handed: [Int32] = [],
        handlers: ChildConnection.Handlers,
        completion: @escaping @Sendable (Result<ChildConnection, CrewError>) -> Void
    ) {
        let key = Key(
            executable: options.executable, arguments: options.arguments, environment: options.childEnvironment)
        let server: ForkServer
        if let existing = servers[key] {
            server = existing
        } else {
            do {
                let zygote = try Launcher.spawn(
                    options: options,
                    mode: .zygote,
                    socketType: Int32(SOCK_SEQPACKET.rawValue),
                    captureStderr: false
                )
                server = ForkServer(key: key, zygote: zygote)
                setNonBlocking(zygote.socket)
                server.controlCookie = Reactor.shared.register(
                    fd: zygote.socket, events: CREW_EPOLLIN, source: server, tag: 0)
                server.pidfdCookie = Reactor.shared.register(
                    fd: zygote.pidfd, events: CREW_EPOLLIN, source: server, tag: 1)
                servers[key] = server
                options.logger.debug("started fork server", metadata: ["crew.pid": "\(zygote.pid)"])
            } catch let error as CrewError {
                completion(.failure(error))
                return
            } catch {
                completion(.failure(CrewError(.spawnFailed, "\(error)")))
                return
            }
        }
        server.request(mode: mode, options: options, handed: handed, handlers: handlers, completion: completion)
    }

    private func request(
        mode: ChildMarker.Mode,
        options: Crew.Options,
        handed: [Int32],
        handlers: ChildConnection.Handlers,
        completion: @escaping @Sendable (Result<ChildConnection, CrewError>) -> Void
    ) {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            completion(.failure(systemCallError("socketpair")))
            return
        }
        var errPipe: [Int32] = [-1, -1]
        guard crew_pipe_cloexec(&errPipe) == 0 else {
            close(pair[0])
            close(pair[1])
            completion(.failure(systemCallError("pipe2")))
            return
        }
        let id = nextRequest
        nextRequest += 1
        var message: [UInt8] = [ZygoteMessage.fork]
        ZygoteMessage.put(id, &message)
        message.append(mode.rawValue.utf8.first!)
        ZygoteMessage.put(UInt64(options.maxFrameSize), &message)
        ZygoteMessage.put(Crew.effectiveSpinNanoseconds(options), &message)
        message.append(handlers.trackProgress ? 1 : 0)
        message.append(UInt8(handed.count))
        let progress = handlers.trackProgress ? ProgressPage.create() : nil
        let passed = [pair[1], errPipe[1]] + (progress.map { [$0.fd] } ?? []) + handed
        // Standard output of the parent is flushed before a child can write, as with spawned children.
        fflush(nil)
        let sent = message.withUnsafeBytes { raw in
            passed.withUnsafeBufferPointer {
                crew_send_with_fds(zygote.socket, raw.baseAddress, UInt(raw.count), $0.baseAddress, Int32(passed.count))
            }
        }
        close(pair[1])
        close(errPipe[1])
        if let progress { close(progress.fd) }
        guard sent == message.count else {
            close(pair[0])
            close(errPipe[0])
            completion(.failure(CrewError(.spawnFailed, "the fork server did not take the request (errno \(errno))")))
            return
        }
        requests[id] = Request(
            socket: pair[0],
            stderr: errPipe[0],
            progress: progress?.page,
            mode: mode,
            options: options,
            handlers: handlers,
            completion: completion
        )
    }

    func handle(events: UInt32, tag: UInt8) {
        if tag == 1 {
            // The zygote has exited: reaped at once (it is a zombie, so the wait does not block).
            if !dead { died(exited: true) } else { reapZygote() }
            return
        }
        guard !dead else { return }
        var buffer = [UInt8](repeating: 0, count: 64)
        var fds = [Int32](repeating: -1, count: 4)
        while true {
            var count: Int32 = 0
            let n = buffer.withUnsafeMutableBytes { raw in
                fds.withUnsafeMutableBufferPointer {
                    crew_receive_with_fds(zygote.socket, raw.baseAddress, UInt(raw.count), $0.baseAddress, 4, &count)
                }
            }
            for fd in fds[0..<Int(count)] { close(fd) }  // The zygote sends none; never keep strays.
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
            if n <= 0 {
                died(exited: false)
                return
            }
            var at = 1
            switch buffer[0] {
            case ZygoteMessage.forked where n == 17:
                let id = ZygoteMessage.get(UInt64.self, buffer, &at)
                let pid = ZygoteMessage.get(Int32.self, buffer, &at)
                let failure = ZygoteMessage.get(Int32.self, buffer, &at)
                guard let request = requests.removeValue(forKey: id) else { continue }
                guard pid > 0 else {
                    close(request.socket)
                    close(request.stderr)
                    let reason =
                        failure == EDEADLK
                        ? "the fork server has threads (did something run before Crew.bootstrap in main?)"
                        : (strerror(failure).map { String(cString: $0) } ?? "errno \(failure)")
                    request.completion(.failure(CrewError(.spawnFailed, "the fork server could not fork: \(reason)")))
                    continue
                }
                let child = LaunchedChild(
                    pid: pid, socket: request.socket, stderr: request.stderr, pidfd: crew_pidfd_open(pid))
                let connection = ChildConnection.make(
                    child,
                    mode: request.mode,
                    options: request.options,
                    handlers: request.handlers,
                    foreign: true,
                    progress: request.progress
                )
                workers[pid] = connection
                request.completion(.success(connection))
            case ZygoteMessage.exited where n == 13:
                let pid = ZygoteMessage.get(Int32.self, buffer, &at)
                let code = ZygoteMessage.get(Int32.self, buffer, &at)
                let status = ZygoteMessage.get(Int32.self, buffer, &at)
                workers.removeValue(forKey: pid)?.foreignExited(Crew.ExitStatus(code: code, status: status))
            default:
                continue
            }
        }
    }

    /// Collects the exited zygote's status and closes its pidfd (reactor thread).
    private func reapZygote() {
        Reactor.shared.unregister(fd: zygote.pidfd, cookie: pidfdCookie)
        var code: Int32 = 0
        var status: Int32 = 0
        _ = crew_waitid_pidfd(zygote.pidfd, 1, 0, &code, &status)
        close(zygote.pidfd)
    }

    /// The zygote is gone: its workers die with it (their parent-death signal is SIGKILL), requests fail, and the
    /// next worker starts a new zygote.
    ///
    /// If only its socket ended (`exited` false), it may still be running: it is killed, and reaped when its pidfd
    /// says it has exited, so that the I/O thread never waits for a process.
    private func died(exited: Bool) {
        dead = true
        Reactor.shared.unregister(fd: zygote.socket, cookie: controlCookie)
        close(zygote.socket)
        if exited {
            reapZygote()
        } else {
            _ = crew_pidfd_send_signal(zygote.pidfd, SIGKILL)
        }
        if ForkServer.servers[key] === self { ForkServer.servers[key] = nil }
        for (_, request) in requests {
            close(request.socket)
            close(request.stderr)
            request.completion(
                .failure(CrewError(.spawnFailed, "the fork server ended before it could start the worker")))
        }
        requests.removeAll()
        for (_, worker) in workers { worker.foreignExited(.signaled(SIGKILL)) }
        workers.removeAll()
    }
}
