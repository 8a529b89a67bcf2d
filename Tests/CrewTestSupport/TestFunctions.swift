public import Crew
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Arguments of a function that takes two numbers.
public struct Pair: Codable, Sendable, Hashable {
    public var a: Int
    public var b: Int
    public init(_ a: Int, _ b: Int) {
        self.a = a
        self.b = b
    }
}

/// What a supervised test worker does, and where it notes its graceful stop.
public struct SupervisedJob: Codable, Sendable {
    public var mode: String
    public var log: String
    public init(mode: String, log: String = "/dev/null") {
        self.mode = mode
        self.log = log
    }
}

/// An error a test function throws.
public struct TestFailure: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public var description: String { "TestFailure(\(reason))" }
}

/// An error a test function declares it throws: it crosses process boundaries as itself.
public struct Oops: Error, Codable, Sendable, Equatable {
    public var n: Int
    public var note: String
    public init(n: Int, note: String) {
        self.n = n
        self.note = note
    }
}

/// A queue and values to put on it.
public struct QueueJob: Codable, Sendable {
    public var queue: Crew.Queue<Int>
    public var values: [Int]
    public init(queue: Crew.Queue<Int>, values: [Int]) {
        self.queue = queue
        self.values = values
    }
}

/// A queue and how many values to get from it.
public struct QueueTake: Codable, Sendable {
    public var queue: Crew.Queue<Int>
    public var count: Int
    public var timeoutMilliseconds: Int
    public init(queue: Crew.Queue<Int>, count: Int, timeoutMilliseconds: Int = 10_000) {
        self.queue = queue
        self.count = count
        self.timeoutMilliseconds = timeoutMilliseconds
    }
}

/// A byte queue and the size of a message to put.
public struct BytesJob: Codable, Sendable {
    public var queue: Crew.Queue<[UInt8]>
    public var size: Int
    public init(queue: Crew.Queue<[UInt8]>, size: Int) {
        self.queue = queue
        self.size = size
    }
}

/// A byte queue and an event to set once the consumer holds it.
public struct ReadyConsumerJob: Codable, Sendable {
    public var queue: Crew.Queue<[UInt8]>
    public var ready: Crew.Event
    public init(queue: Crew.Queue<[UInt8]>, ready: Crew.Event) {
        self.queue = queue
        self.ready = ready
    }
}

/// A connection and strings to send.
public struct PipeJob: Codable, Sendable {
    public var connection: Crew.Connection
    public var texts: [String]
    public init(connection: Crew.Connection, texts: [String]) {
        self.connection = connection
        self.texts = texts
    }
}

/// A shared counter and how often to increment it.
public struct CounterJob: Codable, Sendable {
    public var counter: SharedValue<Int>
    public var times: Int
    public init(counter: SharedValue<Int>, times: Int) {
        self.counter = counter
        self.times = times
    }
}

/// An event to set after a delay.
public struct EventJob: Codable, Sendable {
    public var event: Crew.Event
    public var milliseconds: Int
    public init(event: Crew.Event, milliseconds: Int) {
        self.event = event
        self.milliseconds = milliseconds
    }
}

/// A semaphore to release some times.
public struct SemaphoreJob: Codable, Sendable {
    public var semaphore: Crew.Semaphore
    public var times: Int
    public init(semaphore: Crew.Semaphore, times: Int) {
        self.semaphore = semaphore
        self.times = times
    }
}

/// A condition and the shared flag it guards.
public struct ConditionJob: Codable, Sendable {
    public var condition: Crew.Condition
    public var flag: SharedValue<Int>
    public init(condition: Crew.Condition, flag: SharedValue<Int>) {
        self.condition = condition
        self.flag = flag
    }
}

/// The queue a pool initializer kept in a worker.
let keptQueue = Mutex<Crew.Queue<Int>?>(nil)

/// State a pool initializer sets in a worker process.
let workerState = Mutex<String?>(nil)

/// The functions Crew's test suite runs in child processes. `crew-test-worker` registers `all`.
public enum TestFunctions {
    public static let square = Crew.Function("square") { (n: Int) in n * n }
    public static let add = Crew.Function("add") { (pair: Pair) in pair.a + pair.b }
    public static let echo = Crew.Function("echo") { (text: String) in text }
    public static let echoBytes = Crew.Function("echoBytes") { (bytes: [UInt8]) in bytes }
    public static let pid = Crew.Function("pid") { () -> Int32 in getpid() }
    public static let parentPID = Crew.Function("parentPID") { () -> Int32 in getppid() }
    public static let greet = Crew.Function("greet") { (name: String) async throws -> String in
        try await Task.sleep(for: .milliseconds(20))
        return "hello, \(name)"
    }
    public static let sleepMilliseconds = Crew.Function("sleepMilliseconds") { (ms: Int) async throws -> Int in
        try await Task.sleep(for: .milliseconds(ms))
        return ms
    }
    /// Blocks its thread (not a task sleep), as a C library call would.
    public static let blockMilliseconds = Crew.Function("blockMilliseconds") { (ms: Int) -> Int in
        usleep(UInt32(ms) * 1000)
        return ms
    }
    public static let fail = Crew.Function("fail") { (reason: String) throws -> Int in
        throw TestFailure(reason: reason)
    }
    public static let failAsync = Crew.Function("failAsync") { (reason: String) async throws -> Int in
        try await Task.sleep(for: .milliseconds(1))
        throw TestFailure(reason: reason)
    }
    public static let trapFatalError = Crew.Function("trapFatalError") { (message: String) -> Int in
        fatalError(message)
    }
    public static let trapIndex = Crew.Function("trapIndex") { (index: Int) -> Int in
        let values = [1, 2, 3]
        return values[index]
    }
    public static let trapUnwrap = Crew.Function("trapUnwrap") { () -> Int in
        let missing: Int? = Int("not a number")
        return missing!
    }
    public static let exitWith = Crew.Function("exitWith") { (code: Int32) -> Crew.Empty in
        exit(code)
    }
    public static let killSelf = Crew.Function("killSelf") { (signal: Int32) -> Crew.Empty in
        kill(getpid(), signal)
        pause()
        return Crew.Empty()
    }
    public static let sleepForever = Crew.Function("sleepForever") { () -> Crew.Empty in
        while true { pause() }
    }
    /// Writes lines to standard output and standard error, then returns how many.
    public static let printLines = Crew.Function("printLines") { (lines: [String]) -> Int in
        for line in lines {
            print(line)
            fflush(nil)
            let text = "err: \(line)\n"
            _ = text.withCString { write(2, $0, strlen($0)) }
        }
        return lines.count
    }
    public static let bigResult = Crew.Function("bigResult") { (count: Int) -> [UInt8] in
        [UInt8](repeating: 7, count: count)
    }
    public static let noArgsNoResult = Crew.Function("noArgsNoResult") { () in }
    public static let argsNoResult = Crew.Function("argsNoResult") { (_: Int) in }
    /// Starts a grandchild that sleeps forever and returns its pid (for the parent-death test).
    public static let startGrandchild = Crew.Function("startGrandchild") { () throws -> Int32 in
        let p = Crew.Process(target: sleepForever)
        try p.start()
        return p.pid ?? -1
    }
    /// The child's open descriptors as "fd -> target (cloexec)" lines, read from /proc/self/fd.
    public static let descriptors = Crew.Function("descriptors") { () -> [String] in
        var lines: [String] = []
        guard let dir = opendir("/proc/self/fd") else { return ["cannot open /proc/self/fd"] }
        defer { closedir(dir) }
        let own = dirfd(dir)
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let fd = Int32(name), fd != own else { continue }
            var target = [CChar](repeating: 0, count: 512)
            let n = readlink("/proc/self/fd/\(fd)", &target, 511)
            let text = n > 0 ? String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
            let cloexec = fcntl(fd, F_GETFD) & FD_CLOEXEC != 0
            lines.append("\(fd) -> \(text)\(cloexec ? " (cloexec)" : "")")
        }
        return lines.sorted()
    }
    /// A pool initializer: stores `value` in the worker process.
    public static let initState = Crew.Function("initState") { (value: String) in
        workerState.withLock { $0 = value }
    }
    /// A pool initializer that always throws.
    public static let failingInit = Crew.Function("failingInit") { (value: String) throws in
        throw TestFailure(reason: "initializer refused \(value)")
    }
    /// What the initializer stored in this worker, if anything.
    public static let readState = Crew.Function("readState") { () -> String? in
        workerState.withLock { $0 }
    }
    /// Traps when `n` is negative, squares it otherwise.
    public static let squareOrTrap = Crew.Function("squareOrTrap") { (n: Int) -> Int in
        precondition(n >= 0, "negative input \(n)")
        return n * n
    }
    /// Burns CPU: sums a few million numbers (`n` rounds), for scaling measurements.
    public static let burn = Crew.Function("burn") { (rounds: Int) -> UInt64 in
        var x: UInt64 = 0
        for i in 0..<(rounds * 1_000_000) { x = x &* 6_364_136_223_846_793_005 &+ UInt64(truncatingIfNeeded: i) }
        return x
    }
    /// Ignores SIGTERM, then sleeps forever: only SIGKILL ends it.
    public static let ignoreTermForever = Crew.Function("ignoreTermForever") { () -> Crew.Empty in
        signal(SIGTERM, SIG_IGN)
        while true { pause() }
    }
    /// Uses Swift concurrency (a task group, a detached task) and Dispatch in the child, and returns 6 if all ran:
    /// a child forked from a process with threads would hang here.
    public static let threadsWork = Crew.Function("threadsWork") { () async -> Int in
        let group = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<3 { group.addTask { 1 } }
            return await group.reduce(0, +)
        }
        let detached = await Task.detached { 1 }.value
        let dispatched = await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
            DispatchQueue.global().async { continuation.resume(returning: 2) }
        }
        return group + detached + dispatched
    }
    /// Writes through a wild pointer: a segmentation fault, as a bug in C code would cause.
    public static let segfault = Crew.Function("segfault") { () -> Int in
        let wild = UnsafeMutablePointer<Int>(bitPattern: 0x10)!
        wild.pointee = 1
        return wild.pointee
    }
    /// Loops forever without sleeping (a runaway computation).
    public static let spinForever = Crew.Function("spinForever") { () -> Int in
        var x = 0
        while true { x = x &+ Int(bitPattern: UInt(getpid())) }
    }
    /// Points this process's standard error at a full pipe nobody reads, then runs a child that writes 2 000 lines
    /// to standard error: returns the child's answer, which must arrive although its output cannot be copied.
    public static let childOfAStuckParent = Crew.Function("childOfAStuckParent") { () throws -> Int in
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw TestFailure(reason: "pipe") }
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        var block = [UInt8](repeating: 0x2E, count: 4096)
        while write(fds[1], &block, block.count) > 0 {}
        dup2(fds[1], 2)
        let p = Crew.Process(target: printLines, args: (0..<2000).map { "line \($0)" })
        try p.start()
        let count = try p.get(timeout: .seconds(30))
        try p.join()
        return count
    }
    // MARK: IPC

    /// Puts every value on the queue; returns how many.
    public static let queuePut = Crew.Function("queuePut") { (job: QueueJob) throws -> Int in
        for value in job.values { try job.queue.put(value) }
        return job.values.count
    }
    /// Gets `count` values (each within `timeoutMilliseconds`) and returns them.
    public static let queueGet = Crew.Function("queueGet") { (job: QueueTake) throws -> [Int] in
        var values: [Int] = []
        for _ in 0..<job.count { values.append(try job.queue.get(timeout: .milliseconds(job.timeoutMilliseconds))) }
        return values
    }
    /// Gets until the queue says `closed` (or a value of -1 arrives); returns what it got.
    public static let queueDrain = Crew.Function("queueDrain") { (queue: Crew.Queue<Int>) throws -> [Int] in
        var values: [Int] = []
        while true {
            do {
                let value = try queue.get()
                if value == -1 { return values }
                values.append(value)
            } catch let error as CrewError where error.code == .closed {
                return values
            }
        }
    }
    /// Puts one big message of `size` bytes (blocks if the ring has no room).
    public static let queuePutBytes = Crew.Function("queuePutBytes") { (job: BytesJob) throws -> Int in
        try job.queue.put([UInt8](repeating: 9, count: job.size))
        return job.size
    }
    /// Takes values from a joinable queue and marks each done, until -1.
    public static let joinableWorker = Crew.Function("joinableWorker") {
        (queue: Crew.JoinableQueue<Int>) throws -> Int in
        var count = 0
        while true {
            let value = try queue.get(timeout: .seconds(30))
            try queue.taskDone()
            if value == -1 { return count }
            count += 1
        }
    }
    /// Answers each string on the connection with it uppercased, until the peer closes; returns how many.
    public static let pipeEcho = Crew.Function("pipeEcho") { (connection: Crew.Connection) throws -> Int in
        var count = 0
        while true {
            do {
                let text: String = try connection.recv()
                try connection.send(text.uppercased())
                count += 1
            } catch let error as CrewError where error.code == .closed {
                return count
            }
        }
    }
    /// Sends the strings on the connection, then returns (the child exits: its end closes).
    public static let pipeSend = Crew.Function("pipeSend") { (job: PipeJob) throws -> Int in
        for text in job.texts { try job.connection.send(text) }
        return job.texts.count
    }
    /// Takes the lock, then traps while holding it.
    public static let lockAndTrap = Crew.Function("lockAndTrap") { (lock: Crew.Lock) throws -> Crew.Empty in
        try lock.acquire()
        fatalError("dying while holding the lock")
    }
    /// Adds 1 to the shared value `times` times, each under its lock.
    public static let increment = Crew.Function("increment") { (job: CounterJob) throws -> Int in
        for _ in 0..<job.times { try job.counter.withLock { $0 += 1 } }
        return job.times
    }
    /// Sets the event after `milliseconds`.
    public static let setEvent = Crew.Function("setEvent") { (job: EventJob) -> Crew.Empty in
        usleep(UInt32(job.milliseconds) * 1000)
        job.event.set()
        return Crew.Empty()
    }
    /// Waits at the barrier; returns its arrival index.
    public static let barrierWait = Crew.Function("barrierWait") { (barrier: Crew.Barrier) throws -> Int in
        try barrier.wait(timeout: .seconds(30))
    }
    /// Releases the semaphore `times` times.
    public static let semaphoreRelease = Crew.Function("semaphoreRelease") { (job: SemaphoreJob) throws -> Crew.Empty in
        for _ in 0..<job.times { try job.semaphore.release() }
        return Crew.Empty()
    }
    /// Under the condition's lock, sets the shared flag to 1 and notifies.
    public static let conditionNotify = Crew.Function("conditionNotify") { (job: ConditionJob) throws -> Crew.Empty in
        try job.condition.withLock {
            job.flag.value = 1
            job.condition.notifyAll()
        }
        return Crew.Empty()
    }
    /// Gets one byte message (within 30 s).
    public static let queueGetBytes = Crew.Function("queueGetBytes") { (queue: Crew.Queue<[UInt8]>) throws -> [UInt8] in
        try queue.get(timeout: .seconds(30))
    }
    /// Holds the queue (it is decoded, so this process counts as a holder), sets `ready`, then gets one byte
    /// message.
    public static let queueGetBytesWhenReady = Crew.Function("queueGetBytesWhenReady") {
        (job: ReadyConsumerJob) throws -> [UInt8] in
        job.ready.set()
        return try job.queue.get(timeout: .seconds(30))
    }
    /// Makes and drops `rounds` of every IPC object in this (otherwise idle) child; returns the open
    /// descriptors before and after.
    public static let ipcChurn = Crew.Function("ipcChurn") { (rounds: Int) throws -> [Int] in
        func openDescriptors() -> Int {
            guard let dir = opendir("/proc/self/fd") else { return -1 }
            defer { closedir(dir) }
            var n = 0
            while readdir(dir) != nil { n += 1 }
            return n
        }
        let before = openDescriptors()
        for _ in 0..<rounds {
            let q = try Crew.Queue<Int>()
            try q.put(1)
            _ = try q.get()
            _ = try Crew.JoinableQueue<Int>()
            _ = try SharedValue(1)
            _ = try SharedArray([1, 2])
            _ = try Crew.Lock()
            _ = try Crew.RLock()
            _ = try Crew.Semaphore()
            _ = try Crew.Event()
            _ = try Crew.Condition()
            _ = try Crew.Barrier(parties: 2)
            let (a, b) = try Crew.Pipe().ends
            try a.send(1)
            _ = try b.recv(Int.self)
        }
        return [before, openDescriptors()]
    }
    /// A pool initializer: keeps the queue for `putToKeptQueue`.
    public static let keepQueue = Crew.Function("keepQueue") { (queue: Crew.Queue<Int>) in
        keptQueue.withLock { $0 = queue }
    }
    /// Puts `value` on the queue the initializer kept; returns this worker's pid.
    public static let putToKeptQueue = Crew.Function("putToKeptQueue") { (value: Int) throws -> Int32 in
        guard let queue = keptQueue.withLock({ $0 }) else { throw TestFailure(reason: "no queue kept") }
        try queue.put(value)
        return getpid()
    }

    /// Notes its run on the queue the initializer kept (`n`), then: traps when `n % 3 == 1`, kills its own process
    /// when `n % 3 == 2`, returns `n * n` otherwise. The queue then holds one entry per run of each call.
    public static let countedSquareOrCrash = Crew.Function("countedSquareOrCrash") { (n: Int) throws -> Int in
        guard let queue = keptQueue.withLock({ $0 }) else { throw TestFailure(reason: "no queue kept") }
        try queue.put(n)
        switch n % 3 {
        case 1: preconditionFailure("counted crash \(n)")
        case 2: kill(getpid(), SIGKILL)
        default: break
        }
        return n * n
    }

    /// Sleeps `ms` as a task; returns [pid, start, end] (monotonic nanoseconds, comparable across processes).
    public static let overlapProbe = Crew.Function("overlapProbe") { (ms: Int) async throws -> [Int] in
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let start = ts.tv_sec * 1_000_000_000 + ts.tv_nsec
        try await Task.sleep(for: .milliseconds(ms))
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return [Int(getpid()), start, ts.tv_sec * 1_000_000_000 + ts.tv_nsec]
    }

    /// Sends `signal` to its own process, as a task (so that other async calls of the worker run beside it).
    public static let killSelfAsync = Crew.Function("killSelfAsync") { (signal: Int32) async -> Int in
        kill(getpid(), signal)
        try? await Task.sleep(for: .seconds(60))
        return 0
    }

    /// The value of an environment variable in the child, or "" if it has none.
    public static let environmentVariable = Crew.Function("environmentVariable") { (name: String) -> String in
        getenv(name).map { String(cString: $0) } ?? ""
    }

    /// Throws `Oops` (declared) for 7, `TestFailure` (not declared) for 13, squares anything else.
    public static let risky = Crew.Function("risky") { (n: Int) throws -> Int in
        if n == 7 { throw Oops(n: n, note: "seven") }
        if n == 13 { throw TestFailure(reason: "thirteen") }
        return n * n
    }.throwing(Oops.self)
    /// `risky`, with an `async` body.
    public static let riskyAsync = Crew.Function("riskyAsync") { (n: Int) async throws -> Int in
        try await Task.sleep(for: .milliseconds(1))
        if n == 7 { throw Oops(n: n, note: "seven, later") }
        return n * n
    }.throwing(Oops.self)

    /// Prints a line with a plain `print` (buffered when standard output is a pipe or a file); returns `n`.
    public static let printPlain = Crew.Function("printPlain") { (n: Int) -> Int in
        print("printed by call \(n)")
        return n
    }

    /// Registered in the test process only: the child does not know it.
    public static let onlyInParent = Crew.Function("onlyInParent") { (n: Int) in n }

    /// Every function the worker registers.
    public static let all: [any AnyFunction] = [
        square, add, echo, echoBytes, pid, parentPID, greet, sleepMilliseconds, blockMilliseconds, fail, failAsync,
        trapFatalError, trapIndex, trapUnwrap, exitWith, killSelf, sleepForever, printLines, bigResult,
        noArgsNoResult, argsNoResult, startGrandchild, descriptors, initState, failingInit, readState, squareOrTrap,
        burn, ignoreTermForever, threadsWork, segfault, spinForever, childOfAStuckParent,
        queuePut, queueGet, queueDrain, queuePutBytes, joinableWorker, pipeEcho, pipeSend, lockAndTrap, increment,
        setEvent, barrierWait, semaphoreRelease, conditionNotify, keepQueue, putToKeptQueue, queueGetBytes, ipcChurn,
        queueGetBytesWhenReady,
        overlapProbe, environmentVariable, killSelfAsync, risky, riskyAsync, countedSquareOrCrash, printPlain,
        supervised,
    ]

    /// A supervised worker: `idle` gets ready and waits to be stopped, then notes it in `log`; `failBoot` throws
    /// before it is ready; `trapBoot` traps before it is ready; `exitSoon` gets ready and returns after 200 ms.
    public static let supervised = Crew.Function("supervised") {
        (start: Crew.Supervisor.Start<SupervisedJob>) async throws -> Crew.Empty in
        let job = start.arguments
        switch job.mode {
        case "failBoot":
            throw TestFailure(reason: "worker \(start.worker.id) cannot start")
        case "trapBoot":
            fatalError("worker \(start.worker.id) traps as it starts")
        case "exitSoon":
            start.worker.ready()
            try await Task.sleep(for: .milliseconds(200))
            return Crew.Empty()
        default:
            start.worker.ready()
            await start.worker.stopRequested()
            let line = "worker \(start.worker.id) generation \(start.worker.generation) stopped gracefully\n"
            let fd = open(job.log, O_WRONLY | O_APPEND | O_CREAT, 0o600)
            if fd >= 0 {
                _ = line.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
                close(fd)
            }
            return Crew.Empty()
        }
    }
}
