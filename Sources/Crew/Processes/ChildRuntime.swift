// Over 500 lines: what a child runs after `Crew.bootstrap` — the serving loop with its calls, its batching of
// answers and its progress page, and the signal handlers that report a crash or flush on SIGTERM — shares the
// loop's buffers and its one thread, so it stays in one file.

import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// The child side: what `Crew.bootstrap` does when this process was started by a Crew parent.
//
// The thread that called `bootstrap` becomes the child's only serving thread. It reads calls from the socket,
// runs synchronous bodies inline, and is also a `TaskExecutor` on which `async` bodies run as tasks, so that
// calls that suspend overlap on one thread like coroutines, and no call pays for a thread hop. Results are
// written in batches: one `send` carries every result produced since the last one.

/// What the parent put in the environment of a child it started.
struct ChildMarker: Equatable {
    enum Mode: String {
        /// Run one call, then exit (0 if it succeeded, 1 if not): `Crew.Process`.
        case process = "p"
        /// Serve calls until told to shut down or until the parent goes away: pool workers.
        case worker = "w"
        /// Fork workers on request: the forkserver start method's zygote.
        case zygote = "z"
    }

    static let variable = "CREW_CHILD"

    var version: UInt64 = wireProtocolVersion
    var fd: Int32
    var parentPID: Int32
    var mode: Mode
    var maxFrameSize: Int
    /// How long the child polls for the next call before it sleeps, in nanoseconds.
    var spinNanoseconds: UInt64
    /// The parent passed a ``ProgressPage`` as descriptor 4.
    var progress: Bool
    /// How many descriptors the parent handed over with the child's arguments (5, 6, ...).
    var handed = 0

    var encoded: String {
        "\(version):\(fd):\(parentPID):\(mode.rawValue):\(maxFrameSize):\(spinNanoseconds):\(progress ? 1 : 0):\(handed)"
    }

    init(
        fd: Int32, parentPID: Int32, mode: Mode, maxFrameSize: Int, spinNanoseconds: UInt64 = 0, progress: Bool = false
    ) {
        self.fd = fd
        self.parentPID = parentPID
        self.mode = mode
        self.maxFrameSize = maxFrameSize
        self.spinNanoseconds = spinNanoseconds
        self.progress = progress
    }

    init?(_ text: String) {
        let parts = text.split(separator: ":")
        guard parts.count == 8, let handed = Int(parts[7]), (0...HandedDescriptors.limit).contains(handed),
            let version = UInt64(parts[0]), let fd = Int32(parts[1]),
            let parent = Int32(parts[2]), let mode = Mode(rawValue: String(parts[3])),
            let max = Int(parts[4]), let spin = UInt64(parts[5]), fd >= 0, max > 0, spin <= 1_000_000_000,
            parts[6] == "0" || parts[6] == "1"
        else { return nil }
        self.version = version
        self.fd = fd
        self.parentPID = parent
        self.mode = mode
        self.maxFrameSize = max
        self.spinNanoseconds = spin
        self.progress = parts[6] == "1"
        self.handed = handed
    }
}

enum ChildRuntime {
    /// True when this process was started as a Crew child (read once, before the marker is removed).
    static let isChild: Bool = getenv(ChildMarker.variable) != nil

    /// Exit codes a child uses for its own failures (the function's outcome uses 0 and 1, as Python does).
    static let exitBadMarker: Int32 = 70
    static let exitProtocolError: Int32 = 71

    /// Reads and removes the marker, so that programs this child starts are not mistaken for Crew children.
    static func takeMarker() -> ChildMarker? {
        guard isChild, let raw = getenv(ChildMarker.variable) else { return nil }
        let text = String(cString: raw)
        unsetenv(ChildMarker.variable)
        guard let marker = ChildMarker(text), marker.version == wireProtocolVersion else {
            fail(
                "this program was started as a Crew child with an unusable marker \"\(text)\"; was it started by a "
                    + "different build of the program?")
        }
        return marker
    }

    /// Writes `message` to standard error and exits: a child cannot serve.
    static func fail(_ message: String, code: Int32 = exitBadMarker) -> Never {
        let line = "crew child \(getpid()): \(message)\n"
        var copy = line
        copy.withUTF8 { _ = writeAll(2, UnsafeRawBufferPointer($0)) }
        exitChild(code)
    }

    static func exitChild(_ code: Int32) -> Never {
        fflush(nil)
        _exit(code)
    }

    static func serve(crew: Crew, marker: ChildMarker) -> Never {
        // Die with the parent. The parent starts children from a thread that lives as long as it does, so the
        // "parent thread" the kernel watches is the parent process's lifetime. If the parent is already gone
        // (it died before this line), exit now.
        _ = crew_set_parent_death_signal(SIGKILL)
        if getppid() != marker.parentPID { exitChild(0) }
        // A dead parent must show up as EPIPE, not kill the child before it can exit cleanly.
        signal(SIGPIPE, SIG_IGN)
        setCloseOnExec(marker.fd)
        setNonBlocking(marker.fd)
        if !marker.progress { close(4) }  // /dev/null, holding the place of a progress page.
        HandedDescriptors.adopt(count: marker.handed)
        if marker.mode == .zygote { Zygote.run(crew: crew, marker: marker) }
        // A serving child waits for its next call in a blocking read (see `ChildLoop.run`); its other socket
        // calls pass MSG_DONTWAIT.
        setBlocking(marker.fd)
        // Without Swift's backtracer (the default), a trap would end the child without a word in an optimized
        // build: a line on standard error names the signal and the call it was running.
        if let setting = getenv("SWIFT_BACKTRACE"), String(cString: setting).contains("enable=no") {
            crew_crash_note_install()
        }
        // SIGTERM (a `terminate()`) ends the child as it would a program that exits: what its standard output and
        // error buffered is written first (a pipe or a file buffers it).
        if crew_term_flush_install() != 0 {
            let message = "crew child: SIGTERM will not flush standard output (\(String(cString: strerror(errno))))\n"
            var copy = message
            copy.withUTF8 { _ = writeAll(2, UnsafeRawBufferPointer($0)) }
        }
        let loop = ChildLoop(crew: crew, marker: marker)
        loop.run()
    }
}

final class ChildLoop: TaskExecutor, @unchecked Sendable {
    // @unchecked Sendable: everything but `scheduled` and `asyncResults` is touched only by the serving thread
    // (`run` and the jobs it runs); those two are behind mutexes.

    private let fd: Int32
    private let wakeFD: Int32
    private let crew: Crew
    private let marker: ChildMarker
    private var reader: FrameReader
    private var out: [UInt8] = []
    /// How much of `out` has been sent (the rest waits for room in the socket).
    private var outSent = 0
    private var inFlight = 0
    private var shuttingDown = false
    private var finishedCalls = 0
    private var failedCalls = 0
    /// Until when the loop keeps polling for input instead of sleeping (set after each call served).
    private var spinUntil: UInt64 = 0
    /// Where a pool worker notes the synchronous call it runs, for its parent to read if it dies.
    private let progress: ProgressPage?
    /// How many bytes of `out` the progress page holds a copy of.
    private var mirrored = 0
    /// The last read was short: the socket had nothing more then.
    private var drained = false
    /// When output was last handed to the socket.
    private var lastFlush: UInt64 = 0

    private struct Scheduled {
        var jobs: [UnownedJob] = []
        var sleeping = false
    }

    private let scheduled = Mutex(Scheduled())
    /// Results of async calls, encoded as frames, and how many of them failed.
    private let asyncResults = Mutex<(frames: [UInt8], done: Int, failed: Int)>(([], 0, 0))

    init(crew: Crew, marker: ChildMarker) {
        self.fd = marker.fd
        self.crew = crew
        self.marker = marker
        self.reader = FrameReader(maxFrameSize: marker.maxFrameSize)
        self.progress = marker.progress ? ProgressPage.map(4) : nil
        self.wakeFD = crew_eventfd()
        if wakeFD < 0 { ChildRuntime.fail("eventfd failed (errno \(errno))") }
    }

    // MARK: TaskExecutor

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let wake = scheduled.withLock { state in
            state.jobs.append(unowned)
            defer { state.sleeping = false }
            return state.sleeping
        }
        if wake { crew_eventfd_signal(wakeFD) }
    }

    private func runJobs() {
        while true {
            let batch = scheduled.withLock { state in
                let jobs = state.jobs
                state.jobs.removeAll(keepingCapacity: true)
                return jobs
            }
            if batch.isEmpty { return }
            let executor = asUnownedTaskExecutor()
            for job in batch { job.runSynchronously(on: executor) }
        }
    }

    // MARK: The loop

    func run() -> Never {
        Message.appendHello(pid: getpid(), to: &out)
        while true {
            runJobs()
            collectAsyncResults()
            if outSent < out.count {
                // What the functions printed goes out with their results, not when the worker exits.
                fflush(nil)
                flush(blocking: false)
            }
            if marker.mode == .process && finishedCalls > 0 {
                flush(blocking: true)
                ChildRuntime.exitChild(failedCalls > 0 ? 1 : 0)
            }
            if shuttingDown && inFlight == 0 {
                flush(blocking: true)
                ChildRuntime.exitChild(0)
            }
            if shuttingDown {
                waitForEvents(readable: false)
                continue
            }
            // After a short read the socket was empty: asking again at once would only say so.
            var n = -1
            var error = EAGAIN
            if !drained {
                n = reader.read(from: fd)
                error = errno
            }
            drained = false
            if n > 0 {
                handleFrames()
                drained = !reader.lastReadFilled
                if marker.spinNanoseconds > 0 { spinUntil = monotonicNanos() &+ marker.spinNanoseconds }
                continue
            }
            if n == 0 {
                // The parent closed its end: nobody can receive results any more.
                ChildRuntime.exitChild(0)
            }
            switch error {
            case EAGAIN:
                // Calls often follow each other closely: poll a little before paying for a wake-up.
                if spinUntil != 0 && monotonicNanos() < spinUntil { continue }
                spinUntil = 0
                if inFlight == 0 && outSent == out.count && scheduled.withLock({ $0.jobs.isEmpty }) {
                    // Nothing runs and nothing waits to be sent: only a call (or the parent's end) can come
                    // next, so sleep in the read itself, one system call where `poll` and a read are two; on a
                    // virtual machine that wakes faster too. (Jobs come only from calls in flight.)
                    waitForCall()
                } else {
                    waitForEvents(readable: true)
                }
            case EINTR: continue
            default: ChildRuntime.exitChild(0)  // ECONNRESET and the like: the parent is gone.
            }
        }
    }

    /// Sleeps in a read of the socket until a call comes, and handles it.
    private func waitForCall() {
        while true {
            let n = reader.read(from: fd, wait: true)
            if n > 0 {
                handleFrames()
                drained = !reader.lastReadFilled
                return
            }
            if n == 0 { ChildRuntime.exitChild(0) }  // The parent closed its end.
            switch errno {
            case EINTR: continue
            case EAGAIN: return
            default: ChildRuntime.exitChild(0)  // ECONNRESET and the like: the parent is gone.
            }
        }
    }

    /// Sleeps until the socket is readable (if asked), writable (if output is pending) or a job is scheduled.
    private func waitForEvents(readable: Bool) {
        let idle = scheduled.withLock { state -> Bool in
            guard state.jobs.isEmpty else { return false }
            state.sleeping = true
            return true
        }
        guard idle else { return }
        var fds = [
            pollfd(fd: fd, events: Int16((readable ? POLLIN : 0) | (outSent < out.count ? POLLOUT : 0)), revents: 0),
            pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0),
        ]
        _ = poll(&fds, 2, -1)
        if fds[1].revents != 0 {
            crew_eventfd_drain(wakeFD)
        }
        scheduled.withLock { $0.sleeping = false }
    }

    private func collectAsyncResults() {
        let (frames, done, failed) = asyncResults.withLock { state in
            defer { state = ([], 0, 0) }
            return state
        }
        guard done > 0 else { return }
        out.append(contentsOf: frames)
        inFlight -= done
        finishedCalls += done
        failedCalls += failed
    }

    /// Writes pending output. Non-blocking: keeps what the socket does not take; blocking: waits until all is
    /// written or the parent is gone.
    private func flush(blocking: Bool) {
        while outSent < out.count {
            let from = outSent
            let n = out.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + from, raw.count - from, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if n > 0 {
                outSent += n
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN {
                if !blocking { return }
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, -1)
                continue
            }
            // The parent is gone.
            ChildRuntime.exitChild(0)
        }
        // Everything is in the socket now: the page's copy is not needed any more.
        progress?.answersLength = 0
        mirrored = 0
        out.removeAll(keepingCapacity: out.capacity <= 1 << 20)
        outSent = 0
        lastFlush = monotonicNanos()
    }

    private func handleFrames() {
        do {
            while let payload = try reader.next() {
                let message = try Message.parseChildBound(reader.buffer, payload)
                switch message {
                case .call(let id, let name, let arguments, let chunk):
                    dispatch(id: id, name: name, arguments: arguments, chunk: chunk)
                case .shutdown:
                    shuttingDown = true
                }
            }
        } catch {
            let message = error.message
            Message.appendProtocolError(message, to: &out)
            flush(blocking: true)
            ChildRuntime.fail("stopping after a protocol error: \(message)", code: ChildRuntime.exitProtocolError)
        }
    }

    private func dispatch(id: UInt64, name: String, arguments: Range<Int>, chunk: Bool) {
        guard let function = crew.functions[name] else {
            let failure = RemoteFailure(
                kind: .unknownFunction,
                type: "CrewError",
                message: "no function named \"\(name)\" is registered in the child (pid \(getpid()))"
            )
            finishFailed(id: id, failure, function: name)
            return
        }
        switch chunk ? function.invokeChunk : function.invoke {
        case .sync(let body):
            // Results of earlier calls go out before a call starts if they have waited a while (so that a long call
            // does not hold back the answers before it). A pool worker notes the call in its progress page, with a
            // copy of the answers it has not sent yet: if the call kills the process, the parent knows it was the
            // one running and which never started, and still gets every answer of a call that finished. A child
            // without a page sends each result before it starts the next call, for the same.
            if outSent < out.count && (progress == nil || monotonicNanos() &- lastFlush >= 50_000) {
                flush(blocking: progress == nil)
            }
            mirrorUnsent()
            progress?.started = id
            var named = name
            named.withUTF8 { crew_crash_note_function($0.baseAddress, $0.count) }
            defer {
                crew_crash_note_function(nil, 0)
                // The answer is in the page before the call counts as finished there.
                mirrorUnsent()
                progress?.finished = id
            }
            let mark = out.count
            let at = Message.beginResult(id: id, to: &out)
            do {
                try body(reader.buffer, arguments, &out)
                try Frame.end(&out, at: at, maxFrameSize: marker.maxFrameSize)
                finishedCalls += 1
            } catch let failure as FunctionRegistration.Failure {
                out.removeSubrange(mark...)
                finishFailed(id: id, Self.describe(failure), function: name)
            } catch {
                out.removeSubrange(mark...)
                finishFailed(id: id, Self.tooLarge(error), function: name)
            }
        case .async(let body):
            let bytes = reader.copy(arguments)
            let maxFrameSize = marker.maxFrameSize
            inFlight += 1
            Task(executorPreference: self) {
                var frame: [UInt8] = []
                var failed = false
                do {
                    let result = try await body(bytes)
                    let at = Message.beginResult(id: id, to: &frame)
                    frame.append(contentsOf: result)
                    do {
                        try Frame.end(&frame, at: at, maxFrameSize: maxFrameSize)
                    } catch {
                        Message.appendFailure(id: id, Self.tooLarge(error), to: &frame)
                        failed = true
                    }
                } catch {
                    let failure = Self.describe(error)
                    Message.appendFailure(id: id, failure, to: &frame)
                    if self.marker.mode == .process { Self.report(failure, function: name) }
                    failed = true
                }
                self.asyncResults.withLock { state in
                    state.frames.append(contentsOf: frame)
                    state.done += 1
                    state.failed += failed ? 1 : 0
                }
                // The task may have finished on another executor: make sure the loop wakes to send the result.
                self.scheduled.withLock { state in
                    if state.sleeping {
                        state.sleeping = false
                        crew_eventfd_signal(self.wakeFD)
                    }
                }
            }
        }
    }

    /// Copies the output not yet sent to the progress page (sending it first if it would not fit).
    private func mirrorUnsent() {
        guard let progress, mirrored < out.count else { return }
        if out.count > ProgressPage.answersCapacity { flush(blocking: true) }
        progress.mirror(out, from: mirrored)
        mirrored = out.count
    }

    private func finishFailed(id: UInt64, _ failure: RemoteFailure, function: String) {
        Message.appendFailure(id: id, failure, to: &out)
        finishedCalls += 1
        failedCalls += 1
        if marker.mode == .process { Self.report(failure, function: function) }
    }

    /// In a `Crew.Process` child, says on standard error why the target failed, as Python prints a traceback.
    private static func report(_ failure: RemoteFailure, function: String) {
        let line = "Crew child process \(getpid()), function \"\(function)\": \(failure.type): \(failure.message)\n"
        var copy = line
        copy.withUTF8 { _ = writeAll(2, UnsafeRawBufferPointer($0)) }
    }

    private static func describe(_ failure: FunctionRegistration.Failure) -> RemoteFailure {
        switch failure {
        case .decoding(let error):
            RemoteFailure(
                kind: .decodingFailed, type: typeName(error), message: "the arguments did not decode: \(error)")
        case .encoding(let error):
            RemoteFailure(kind: .encodingFailed, type: typeName(error), message: "the result did not encode: \(error)")
        case .threw(let error):
            threw(error)
        }
    }

    private static func describe(_ error: any Error) -> RemoteFailure {
        if let failure = error as? FunctionRegistration.Failure { return describe(failure) }
        return threw(error)
    }

    /// What the function threw: encoded, if its type is declared (`Crew.Function.throwing`); as text otherwise, and
    /// also when its encoding fails (the text then says why).
    private static func threw(_ error: any Error) -> RemoteFailure {
        let description = String(describing: error)
        guard let codec = DeclaredErrors.codec(for: error) else {
            return RemoteFailure(kind: .threw, type: typeName(error), message: description)
        }
        do {
            if let value = try codec.encode(error) {
                // An error too big for a frame goes as text: a frame over the limit would end the connection.
                guard value.count <= maxDeclaredErrorBytes else {
                    return RemoteFailure(
                        kind: .threw, type: codec.name,
                        message: "\(description) (its encoding, \(value.count) bytes, is over \(maxDeclaredErrorBytes))"
                    )
                }
                return RemoteFailure(kind: .threwDeclared, type: codec.name, message: description, value: value)
            }
        } catch let failure {
            return RemoteFailure(
                kind: .threw, type: codec.name, message: "\(description) (its encoding failed: \(failure))")
        }
        return RemoteFailure(kind: .threw, type: typeName(error), message: description)
    }

    private static func tooLarge(_ error: any Error) -> RemoteFailure {
        RemoteFailure(kind: .frameTooLarge, type: "CrewError", message: (error as? CrewError)?.message ?? "\(error)")
    }

    /// The largest declared error sent encoded (well inside the smallest frame limit a user may set).
    static let maxDeclaredErrorBytes = 1 << 20

    private static func typeName(_ error: any Error) -> String {
        String(reflecting: type(of: error))
    }
}
