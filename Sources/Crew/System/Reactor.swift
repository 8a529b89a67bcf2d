import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Something the reactor watches: it is told which of its descriptors became ready.
protocol ReactorSource: AnyObject {
    /// Called on the reactor thread. `tag` is the value given at registration.
    func handle(events: UInt32, tag: UInt8)
}

/// The parent's I/O thread: one `epoll` loop for every child's socket, standard error pipe and pidfd, plus
/// timers. It is also the thread that starts children, because the kernel's parent-death signal follows the
/// thread that forked a child, and this thread lives as long as the process.
final class Reactor: @unchecked Sendable {
    // @unchecked Sendable: `submitted` is behind a mutex; every other member is used only on the reactor
    // thread (`threadID`), which is where `submit`ted work and `ReactorSource.handle` run.

    static let shared = Reactor()

    private let epfd: Int32
    private let wakeFD: Int32
    private let submitted = Mutex<[@Sendable () -> Void]>([])
    private var sources: [UInt64: (source: any ReactorSource, tag: UInt8)] = [:]
    private var nextCookie: UInt64 = 1
    private var timers: [(deadline: UInt64, id: UInt64, action: () -> Void)] = []
    private var nextTimer: UInt64 = 1
    private(set) var threadID = pthread_t()

    private init() {
        epfd = crew_epoll_create()
        wakeFD = crew_eventfd()
        precondition(epfd >= 0 && wakeFD >= 0, "Crew could not create its epoll instance (errno \(errno))")
        _ = crew_epoll_ctl(epfd, CREW_EPOLL_CTL_ADD, wakeFD, CREW_EPOLLIN, 0)
        let ready = ConditionLock()
        var started = false
        startThread(name: "crew-reactor") { [self] in
            ready.withLock {
                threadID = pthread_self()
                started = true
                ready.broadcast()
            }
            run()
        }
        ready.withLock {
            while !started { ready.wait(until: nil) }
        }
    }

    var isOnReactorThread: Bool { pthread_equal(pthread_self(), threadID) != 0 }

    /// Runs `work` on the reactor thread, soon.
    func submit(_ work: @escaping @Sendable () -> Void) {
        let first = submitted.withLock { queue in
            queue.append(work)
            return queue.count == 1
        }
        if first { crew_eventfd_signal(wakeFD) }
    }

    // MARK: Registration (reactor thread only)

    /// Watches `fd` for `events`; returns the cookie that identifies the registration.
    func register(fd: Int32, events: UInt32, source: any ReactorSource, tag: UInt8) -> UInt64 {
        let cookie = nextCookie
        nextCookie += 1
        sources[cookie] = (source, tag)
        if crew_epoll_ctl(epfd, CREW_EPOLL_CTL_ADD, fd, events, cookie) != 0 {
            sources[cookie] = nil
            return 0
        }
        return cookie
    }

    func modify(fd: Int32, cookie: UInt64, events: UInt32) {
        _ = crew_epoll_ctl(epfd, CREW_EPOLL_CTL_MOD, fd, events, cookie)
    }

    func unregister(fd: Int32, cookie: UInt64) {
        guard sources.removeValue(forKey: cookie) != nil else { return }
        _ = crew_epoll_ctl(epfd, CREW_EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Runs `action` on the reactor thread after `nanoseconds`; returns an id for ``cancelTimer(_:)``.
    @discardableResult
    func schedule(afterNanoseconds nanoseconds: UInt64, _ action: @escaping () -> Void) -> UInt64 {
        let id = nextTimer
        nextTimer += 1
        timers.append((monotonicNanos() &+ nanoseconds, id, action))
        return id
    }

    func cancelTimer(_ id: UInt64) {
        timers.removeAll { $0.id == id }
    }

    // MARK: The loop

    private func run() -> Never {
        var cookies = [UInt64](repeating: 0, count: 64)
        var events = [UInt32](repeating: 0, count: 64)
        while true {
            let timeout = nextTimeout()
            let n = cookies.withUnsafeMutableBufferPointer { c in
                events.withUnsafeMutableBufferPointer { e in
                    crew_epoll_wait(epfd, c.baseAddress!, e.baseAddress!, 64, timeout)
                }
            }
            if n > 0 {
                // Sockets and pipes first, pidfds (tag 2) last, so that a child's final output is read before
                // its death is handled.
                for pass in 0..<2 {
                    for i in 0..<Int(n) where cookies[i] != 0 {
                        guard let entry = sources[cookies[i]] else { continue }
                        if (entry.tag == ChildConnection.pidfdTag) == (pass == 1) {
                            entry.source.handle(events: events[i], tag: entry.tag)
                        }
                    }
                }
                if cookies[0..<Int(n)].contains(0) {
                    crew_eventfd_drain(wakeFD)
                }
            }
            runSubmitted()
            runTimers()
        }
    }

    private func runSubmitted() {
        while true {
            let work = submitted.withLock { queue in
                defer { queue.removeAll() }
                return queue
            }
            if work.isEmpty { return }
            for item in work { item() }
        }
    }

    private func nextTimeout() -> Int32 {
        guard let soonest = timers.map(\.deadline).min() else { return -1 }
        let now = monotonicNanos()
        if soonest <= now { return 0 }
        return Int32(clamping: (soonest - now + 999_999) / 1_000_000)
    }

    private func runTimers() {
        guard !timers.isEmpty else { return }
        let now = monotonicNanos()
        let due = timers.filter { $0.deadline <= now }
        guard !due.isEmpty else { return }
        timers.removeAll { $0.deadline <= now }
        for timer in due { timer.action() }
    }
}

/// Starts a detached pthread running `body`, named `name` (at most 15 characters show). A thread Crew cannot do
/// without (the reactor's, the blocking pool's): its failure to start ends the program.
@discardableResult
func startThread(name: String, _ body: @escaping () -> Void) -> pthread_t {
    switch startThreadIfPossible(name: name, body) {
    case .success(let thread): return thread
    case .failure(let error): preconditionFailure("\(error)")
    }
}

/// Starts a detached pthread running `body`, named `name`; a typed error if the system refuses (`EAGAIN` when a
/// limit on threads or memory is reached), and `body` is then dropped without running.
func startThreadIfPossible(name: String, _ body: @escaping () -> Void) -> Result<pthread_t, CrewError> {
    final class Box {
        let name: String
        let body: () -> Void
        init(name: String, body: @escaping () -> Void) {
            self.name = name
            self.body = body
        }
    }
    let box = Unmanaged.passRetained(Box(name: name, body: body)).toOpaque()
    var thread = pthread_t()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    let rc = pthread_create(
        &thread, &attributes,
        { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            crew_set_thread_name(box.name)
            box.body()
            return nil
        }, box)
    pthread_attr_destroy(&attributes)
    guard rc == 0 else {
        Unmanaged<Box>.fromOpaque(box).release()
        return .failure(
            CrewError(
                .systemCallFailed,
                "cannot start thread \(name): pthread_create failed: \(String(cString: strerror(rc)))"))
    }
    return .success(thread)
}
