import CrewTestHelpers
import CrewTestSupport
import Synchronization
import Testing

@testable import Crew

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Queues, pipes, shared values and cross-process locks, within one process and across processes.
@Suite struct IPCTests {
    init() {
        _ = testCrew
    }

    func run<A, R>(_ function: Crew.Function<A, R>, _ args: A, startMethod: Crew.StartMethod = .spawn) throws
        -> Crew.Process<A, R>
    {
        let crew = startMethod == .spawn ? testCrew : testCrew.withOptions { $0.startMethod = startMethod }
        let p = Crew.Process(target: function, args: args, crew: crew)
        try p.start()
        return p
    }

    // MARK: Queue in one process

    @Test func aQueueKeepsOrderAndCounts() throws {
        let q = try Crew.Queue<String>(maxSize: 3)
        #expect(q.isEmpty && !q.isFull && q.count == 0)
        for text in ["A", "B", "C"] { try q.put(text) }
        #expect(q.count == 3 && q.isFull)
        let full = try #require(throws: CrewError.self) { try q.putNowait("D") }
        #expect(full.code == .full)
        let timedOut = try #require(throws: CrewError.self) { try q.put("D", timeout: .milliseconds(20)) }
        #expect(timedOut.code == .full)
        #expect(try q.get() == "A")
        #expect(try q.getNowait() == "B")
        #expect(try q.get(timeout: .milliseconds(10)) == "C")
        let empty = try #require(throws: CrewError.self) { try q.getNowait() }
        #expect(empty.code == .empty)
        let late = try #require(throws: CrewError.self) { try q.get(timeout: .milliseconds(20)) }
        #expect(late.code == .empty)
    }

    @Test func aMessageThatIsNotTheElementTypeIsATypedErrorAndTheQueueGoesOn() throws {
        let numbers = try Crew.Queue<Int>()
        let strings = Crew.Queue<String>(core: numbers.core)
        try numbers.put(42)
        try numbers.put(7)
        let error = try #require(throws: CrewError.self) { try strings.get() }
        #expect(error.code == .decodingFailed)
        #expect(try numbers.get() == 7)
    }

    @Test func byteMessagesTakeTheDirectPathAndStillCheckTheirInput() throws {
        let q = try Crew.Queue<[UInt8]>()
        for message in [[], [0], [UInt8](repeating: 200, count: 300)] as [[UInt8]] {
            try q.put(message)
            #expect(try q.get() == message)
        }
        // A message that is not a byte array is a typed error, and the queue goes on.
        let numbers = Crew.Queue<Int>(core: q.core)
        try numbers.put(7)
        let error = try #require(throws: CrewError.self) { try q.get() }
        #expect(error.code == .decodingFailed)
        try q.put([1])
        #expect(try q.get() == [1])
    }

    @Test func messagesBiggerThanTheRingTravelInPieces() async throws {
        let q = try Crew.Queue<[UInt8]>(capacity: 1 << 16)
        let big = (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let producer = Task.detached { for _ in 0..<3 { try await q.put(big) } }
        for _ in 0..<3 { #expect(try await q.get() == big) }
        try await producer.value
        #expect(q.isEmpty)
    }

    @Test func aClosedQueueRefusesPutsAndGets() throws {
        let q = try Crew.Queue<Int>()
        try q.put(1)
        q.close()
        #expect(throws: CrewError.self) { try q.put(2) }
        let error = try #require(throws: CrewError.self) { try q.get() }
        #expect(error.code == .closed)
    }

    @Test func asyncGetWaitsWithoutBlockingAndCanBeCancelled() async throws {
        let q = try Crew.Queue<Int>()
        let waiter = Task { try await q.get() }
        try await Task.sleep(for: .milliseconds(30))
        try await q.put(5)
        #expect(try await waiter.value == 5)
        let cancelled = Task { try await q.get() }
        try await Task.sleep(for: .milliseconds(20))
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
    }

    @Test func manyAsyncGettersShareABoundedPoolOfThreads() async throws {
        let q = try Crew.Queue<Int>()
        let getters = (0..<200).map { _ in Task { try await q.get() } }
        try await Task.sleep(for: .milliseconds(100))
        #expect(BlockingPool.shared.threads <= BlockingPool.shared.limit)
        for i in 0..<200 { try q.put(i, timeout: nil) }
        var got: [Int] = []
        for getter in getters { got.append(try await getter.value) }
        #expect(got.sorted() == Array(0..<200))
    }

    @Test func aQueueCannotBeAPoolCallArgument() async throws {
        let q = try Crew.Queue<Int>()
        let pool = try ProcessPool(testCrew, processes: 1)
        defer { pool.terminate() }
        let error = await expectCrewError(.encodingFailed) { try await pool.apply(TestFunctions.keepQueue, q) }
        #expect(error?.message.contains("initializer") == true)
    }

    // MARK: Queue across processes

    @Test(arguments: [Crew.StartMethod.spawn, .forkserver])
    func aChildPutsAndTheParentGets(startMethod: Crew.StartMethod) throws {
        let q = try Crew.Queue<Int>()
        let writer = try run(
            TestFunctions.queuePut, QueueJob(queue: q, values: Array(0..<1000)), startMethod: startMethod)
        var got: [Int] = []
        for _ in 0..<1000 { got.append(try q.get(timeout: .seconds(30))) }
        #expect(got == Array(0..<1000))
        #expect(try writer.get(timeout: .seconds(30)) == 1000)
        // The writer has exited; nobody else holds the queue, so waiting for more ends instead of hanging.
        try writer.join()
        let error = try #require(throws: CrewError.self) { try q.get(timeout: .seconds(30)) }
        #expect(error.code == .closed)
        // A queue handed to a child that has exited still works here.
        try q.put(1)
        #expect(try q.get() == 1)
    }

    @Test func twoProducersAndTwoConsumersLoseAndDuplicateNothing() throws {
        let q = try Crew.Queue<Int>(maxSize: 100)
        let producers = try (0..<2).map { i in
            try run(TestFunctions.queuePut, QueueJob(queue: q, values: Array((i * 5000)..<((i + 1) * 5000))))
        }
        let consumers = try (0..<2).map { _ in try run(TestFunctions.queueDrain, q) }
        for p in producers { #expect(try p.get(timeout: .seconds(60)) == 5000) }
        try q.put(-1)
        try q.put(-1)
        var all: [Int] = []
        for c in consumers { all += try c.get(timeout: .seconds(60)) }
        #expect(all.count == 10_000)
        #expect(Set(all) == Set(0..<10_000))
    }

    @Test func aConsumerKilledWhileWaitingLosesNoMessage() throws {
        let q = try Crew.Queue<Int>()
        // The consumer waits in get (holding the get lock) and is killed there.
        let consumer = try run(TestFunctions.queueGet, QueueTake(queue: q, count: 1, timeoutMilliseconds: 60_000))
        usleep(300_000)
        consumer.kill()
        try consumer.join()
        for i in 0..<100 { try q.put(i) }
        let other = try run(TestFunctions.queueGet, QueueTake(queue: q, count: 100))
        #expect(try other.get(timeout: .seconds(30)) == Array(0..<100))
    }

    @Test func aProducerKilledInTheMiddleOfABigMessageLeavesTheQueueUsable() async throws {
        let q = try Crew.Queue<[UInt8]>(capacity: 1 << 16)
        // 1 MB through a 64 KiB ring with nobody reading: the producer blocks with part of it written.
        let producer = try run(TestFunctions.queuePutBytes, BytesJob(queue: q, size: 1_000_000))
        try await Task.sleep(for: .milliseconds(300))
        producer.kill()
        try await producer.join()
        // A consumer drops the dead producer's partial message (freeing the ring), then gets the next one. The
        // put waits until the consumer holds the queue: before that, nobody else does, and a put that has to wait
        // for room would rightly end with `closed`.
        let ready = try Crew.Event()
        let consumer = try run(TestFunctions.queueGetBytesWhenReady, ReadyConsumerJob(queue: q, ready: ready))
        #expect(try await Crew.blocking { ready.wait(timeout: .seconds(30)) })
        try await q.put([1, 2, 3])
        #expect(try await consumer.value == [1, 2, 3])
        #expect(q.isEmpty)
    }

    @Test func aJoinableQueueJoinsWhenEveryItemIsDone() throws {
        let q = try Crew.JoinableQueue<Int>()
        let worker = try run(TestFunctions.joinableWorker, q)
        for i in 0..<50 { try q.put(i) }
        #expect(try q.join(timeout: .seconds(30)))
        #expect(q.unfinished == 0)
        try q.put(-1)
        #expect(try worker.get(timeout: .seconds(30)) == 50)
        let error = try #require(throws: CrewError.self) { try q.taskDone() }
        #expect(error.code == .invalidArgument)
    }

    @Test func aPoolInitializerHandsAQueueToEveryWorker() async throws {
        let q = try Crew.Queue<Int>()
        let pool = try ProcessPool(
            testCrew, processes: 2, maxTasksPerChild: 5, initializer: TestFunctions.keepQueue, initArgs: q)
        let pids = try await pool.map(TestFunctions.putToKeptQueue, Array(0..<20), chunkSize: 1)
        var got: [Int] = []
        for _ in 0..<20 { got.append(try await q.get()) }
        #expect(got.sorted() == Array(0..<20))
        #expect(Set(pids).count >= 4)  // Workers were recycled: the replacements got the queue too.
        pool.close()
        try await pool.join()
    }

    @Test func ipcObjectsLeaveNoDescriptorsBehind() throws {
        // In a child, where nothing else opens descriptors meanwhile.
        let counts = try run(TestFunctions.ipcChurn, 100).get(timeout: .seconds(60))
        #expect(counts.count == 2 && counts[0] == counts[1], "\(counts)")
    }

    // MARK: Pipes

    @Test(arguments: [Crew.StartMethod.spawn, .forkserver])
    func aPipeTalksToAChildAndEndsWhenItsPeerIsGone(startMethod: Crew.StartMethod) throws {
        let (mine, theirs) = try Crew.Pipe().ends
        let child = try run(TestFunctions.pipeEcho, theirs, startMethod: startMethod)
        theirs.close()
        for word in ["ping", "pong", "crew"] {
            try mine.send(word)
            #expect(try mine.recv(String.self, timeout: .seconds(30)) == word.uppercased())
        }
        #expect(try !mine.poll(timeout: .milliseconds(10)))
        mine.close()
        #expect(try child.get(timeout: .seconds(30)) == 3)
    }

    @Test func aReceiveWhosePeerDiedEndsWithClosed() throws {
        let (mine, theirs) = try Crew.Pipe().ends
        let child = try run(TestFunctions.pipeSend, PipeJob(connection: theirs, texts: ["one", "two"]))
        theirs.close()
        #expect(try mine.recv(String.self, timeout: .seconds(30)) == "one")
        #expect(try mine.recv(String.self, timeout: .seconds(30)) == "two")
        try child.join()
        let error = try #require(throws: CrewError.self) { try mine.recv(String.self, timeout: .seconds(30)) }
        #expect(error.code == .closed)
        let send = try #require(throws: CrewError.self) { try mine.send("anyone?") }
        #expect(send.code == .closed)
    }

    @Test func bytesTimeoutsOneWayPipesAndBadMessages() throws {
        let (a, b) = try Crew.Pipe().ends
        try a.sendBytes([1, 2, 3])
        #expect(try b.poll())
        #expect(try b.recvBytes() == [1, 2, 3])
        let late = try #require(throws: CrewError.self) { try b.recvBytes(timeout: .milliseconds(20)) }
        #expect(late.code == .timedOut)
        try a.send(12)
        let wrong = try #require(throws: CrewError.self) { try b.recv(String.self) }
        #expect(wrong.code == .decodingFailed)
        try a.send("fine")
        #expect(try b.recv(String.self) == "fine")

        let (reader, writer) = try Crew.Pipe(duplex: false).ends
        #expect(throws: CrewError.self) { try reader.send(1) }
        #expect(throws: CrewError.self) { try writer.recv(Int.self) }
        try writer.send([1.5, 2.5])
        #expect(try reader.recv([Double].self) == [1.5, 2.5])
        writer.close()
        let closed = try #require(throws: CrewError.self) { try reader.recv(Int.self) }
        #expect(closed.code == .closed)
    }

    @Test func asyncSendsOnFullPipesSuspendKeepTheirTurnAndArriveWhole() async throws {
        // More sends than the blocking pool has threads, on pipes nobody reads yet: each waits for room without
        // holding a thread for long, so the receives below (which need the pool too) still run.
        let pipes = try (0..<4).map { _ in try Crew.Pipe().ends }
        let texts = (0..<20).map { k in String(repeating: Character(Unicode.Scalar(UInt8(97 + k))), count: 1 << 20) }
        #expect(pipes.count * texts.count > BlockingPool.shared.limit / 4)
        let sends = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (mine, _) in pipes {
                    for text in texts { group.addTask { try await mine.send(text) } }
                }
                try await group.waitForAll()
            }
        }
        // The cooperative threads stay free meanwhile: a task still gets to run (how soon is the heartbeat test's
        // subject, in a process of its own; here other suites share the machine).
        try await Task.sleep(for: .milliseconds(100))
        // A blocking send waits its turn behind them.
        let (firstMine, firstTheirs) = pipes[0]
        let blocking = Task.detached { try firstMine.send("last") }
        for (_, theirs) in pipes {
            var received: [String] = []
            for _ in texts.indices { received.append(try await theirs.recv(String.self)) }
            #expect(received.sorted() == texts)
        }
        try await sends.value
        try await blocking.value
        #expect(try await firstTheirs.recv(String.self) == "last")
        // A send to a closed peer is a typed error, not a hang.
        let (mine, theirs) = try Crew.Pipe().ends
        theirs.close()
        let error = await #expect(throws: CrewError.self) {
            try await mine.send(String(repeating: "x", count: 1 << 20))
        }
        #expect(error?.code == .closed)
    }

    @Test func aTimedReceiveBehindAnotherReceiverTimesOutInsteadOfWaitingForIt() async throws {
        let (a, b) = try Crew.Pipe().ends
        // A receive with no time limit holds the receiving side while it waits.
        let waiting = Task { try await Crew.blocking { try b.recvBytes() } }
        try await Task.sleep(for: .milliseconds(100))
        let start = ContinuousClock.now
        let outcome = try await Crew.blocking { () -> CrewError.Code? in
            do {
                _ = try b.recvBytes(timeout: .milliseconds(50))
                return nil
            } catch let error as CrewError {
                return error.code
            }
        }
        #expect(outcome == .timedOut)
        #expect(ContinuousClock.now - start < .seconds(5))
        try await a.sendBytes([7])
        #expect(try await waiting.value == [7])
    }

    // MARK: Locks and shared values

    @Test func aLockWhoseHolderDiedIsReportedThenFree() throws {
        let lock = try Crew.Lock()
        let child = try run(TestFunctions.lockAndTrap, lock)
        try child.join()
        #expect(child.exitCode != 0)
        let error = try #require(throws: CrewError.self) { try lock.acquire(timeout: .seconds(10)) }
        #expect(error.code == .ownerDied)
        #expect(try lock.acquire(timeout: .seconds(10)))
        try lock.release()
        #expect(throws: CrewError.self) { try lock.release() }  // Not held.
    }

    @Test func incrementsUnderTheLockFromTwoProcessesAddUp() throws {
        let counter = try SharedValue(0)
        let children = try (0..<2).map { _ in
            try run(TestFunctions.increment, CounterJob(counter: counter, times: 5000))
        }
        for child in children { #expect(try child.get(timeout: .seconds(60)) == 5000) }
        #expect(counter.value == 10_000)
        try counter.withLock { $0 = 3 }
        #expect(counter.value == 3)
        let raw = try SharedValue(1.5, lock: false)
        raw.value += 1
        #expect(raw.value == 2.5)
        #expect(throws: CrewError.self) { try raw.withLock { $0 += 1 } }
    }

    @Test func sharedArraysHoldPlainValues() throws {
        let array = try SharedArray([1, 2, 3, 4])
        #expect(array.count == 4 && array[2] == 3)
        array[2] = 30
        try array.withLock { buffer in buffer[0] = 10 }
        #expect(array.elements == [10, 2, 30, 4])
        #expect(try SharedArray(repeating: 0.0, count: 0).elements.isEmpty)
    }

    @Test func eventsSemaphoresConditionsAndBarriersWorkAcrossProcesses() throws {
        let event = try Crew.Event()
        #expect(!event.wait(timeout: .milliseconds(10)))
        let setter = try run(TestFunctions.setEvent, EventJob(event: event, milliseconds: 50))
        #expect(event.wait(timeout: .seconds(30)))
        #expect(event.isSet)
        event.clear()
        #expect(!event.isSet)
        try setter.join()

        let semaphore = try Crew.Semaphore(value: 0)
        #expect(try !semaphore.tryAcquire())
        let releaser = try run(TestFunctions.semaphoreRelease, SemaphoreJob(semaphore: semaphore, times: 3))
        for _ in 0..<3 { #expect(try semaphore.acquire(timeout: .seconds(30))) }
        #expect(try !semaphore.acquire(timeout: .milliseconds(10)))
        try releaser.join()

        let condition = try Crew.Condition()
        let flag = try SharedValue(0)
        let ready = try condition.withLock {
            let notifier = try run(TestFunctions.conditionNotify, ConditionJob(condition: condition, flag: flag))
            defer { _ = try? notifier.join() }
            return try condition.wait(for: { flag.value == 1 }, timeout: .seconds(30))
        }
        #expect(ready)

        let barrier = try Crew.Barrier(parties: 2)
        let party = try run(TestFunctions.barrierWait, barrier)
        let mine = try barrier.wait(timeout: .seconds(30))
        let theirs = try party.get(timeout: .seconds(30))
        #expect(Set([mine, theirs]) == [0, 1])
        let lonely = try Crew.Barrier(parties: 2)
        let error = try #require(throws: CrewError.self) { try lonely.wait(timeout: .milliseconds(30)) }
        #expect(error.code == .brokenBarrier && lonely.isBroken)
        try lonely.reset()
        #expect(!lonely.isBroken)
    }

    @Test func anRLockReentersAndBadArgumentsAreTyped() throws {
        let rlock = try Crew.RLock()
        try rlock.withLock { try rlock.withLock {} }
        let lock = try Crew.Lock()
        try lock.acquire()
        let again = try #require(throws: CrewError.self) { try lock.acquire() }
        #expect(again.code == .invalidArgument)
        try lock.release()
        #expect(throws: CrewError.self) { try Crew.Semaphore(value: -1) }
        #expect(throws: CrewError.self) { try Crew.Barrier(parties: 0) }
        #expect(throws: CrewError.self) { try Crew.Queue<Int>(maxSize: -1) }
    }
}
