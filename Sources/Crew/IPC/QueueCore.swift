// Over 500 lines: the ring's layout and both of its sides (put and get) share the same offsets and the same lock
// and wake-up protocol; kept in one file so that the memory ordering between them can be read in one place.

import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// The byte queue under `Queue<T>`: a ring in an owner-only shared region, for many producer and consumer
// processes.
//
// Producers take the put lock, consumers the get lock (robust, process-shared mutexes); between the two lock
// holders the ring is single-producer single-consumer: the producer writes records past `tail` and publishes
// them by storing `tail`, the consumer reads records past `head` and frees them by storing `head`. A waiting side
// spins briefly, then sleeps on a futex that the other side wakes only when it knows someone sleeps.
//
// A record is [u32 length][u32 kind] and its bytes, padded to 8. A message bigger than a quarter of the ring
// travels as several records (first, middle..., last) while the producer holds the put lock, so its records are
// contiguous. A record never wraps: a skip record fills the ring's end instead.
//
// Who holds the queue: each process that holds it has a slot (pid and start time). A process that died or
// closed the queue no longer counts. Once another process has held the queue, a consumer that waits while no
// other process holds it gets `closed` (nobody can put any more), and so does a producer waiting for room.
// A consumer that dies holding the get lock loses nothing: `head` moves only after a record has been read. A
// producer that dies in the middle of a multi-record message leaves a partial message that the consumer drops.

@usableFromInline
final class QueueCore: @unchecked Sendable {
    // @unchecked Sendable: the shared state is synchronized by the region's atomics, futexes and mutexes; the
    // local state (`closedHere`) is atomic.

    enum Layout {
        static let kind = 0  // u32: 7
        static let capacity = 8  // u64: bytes in the ring (a power of two)
        static let maxSize = 16  // i64: most messages (0: no limit)
        static let count = 24  // i64: complete messages in the ring
        static let head = 32  // u64
        static let tail = 40  // u64
        static let notEmpty = 48  // u32 futex sequence
        static let notFull = 52  // u32 futex sequence
        static let emptyWaiters = 56  // u32
        static let fullWaiters = 60  // u32
        static let unfinished = 64  // i64: JoinableQueue's count of puts not yet marked done
        static let joinSequence = 72  // u32 futex sequence
        static let joinWaiters = 76  // u32
        static let shared = 80  // u32: 1 once another process has held the queue
        static let partialWriterPID = 88  // i32: who is writing a multi-record message now (0: nobody)
        static let partialWriterStart = 96  // u64: its start time
        static let putLock = 128
        static let getLock = 256
        static let slotsLock = 384
        static let slots = 512  // 64 × (i32 pid, i32 unused, u64 start time)
        static let slotCount = 64
        static let data = 4096
    }

    static let recordWhole: UInt32 = 0
    static let recordFirst: UInt32 = 1
    static let recordMiddle: UInt32 = 2
    static let recordLast: UInt32 = 3
    static let recordSkip: UInt32 = 4

    let region: SharedRegion
    let capacity: Int
    let maxSize: Int
    let spinNanoseconds: UInt64
    private let putLock: SharedMutex
    private let getLock: SharedMutex
    private let slotsLock: SharedMutex
    private let closedHere = Atomic<Bool>(false)
    private let me = ProcessIdentity.current()

    /// How long a waiting side sleeps before it looks at who still holds the queue.
    static let checkInterval: Int64 = 50_000_000

    private var data: UnsafeMutableRawPointer { region.pointer(Layout.data) }

    /// A new queue with a ring of `capacity` bytes (rounded up to a power of two) and at most `maxSize` messages.
    init(capacity requested: Int, maxSize: Int, spinNanoseconds: UInt64) throws {
        var capacity = 1 << 16
        while capacity < requested { capacity <<= 1 }
        region = try SharedRegion.create(name: "crew-queue", size: Layout.data + capacity)
        putLock = try SharedMutex.initialize(at: region.pointer(Layout.putLock), recursive: false)
        getLock = try SharedMutex.initialize(at: region.pointer(Layout.getLock), recursive: false)
        slotsLock = try SharedMutex.initialize(at: region.pointer(Layout.slotsLock), recursive: false)
        region.pointer(Layout.capacity).storeBytes(of: UInt64(capacity), as: UInt64.self)
        region.pointer(Layout.maxSize).storeBytes(of: Int64(maxSize), as: Int64.self)
        region.word(Layout.kind).pointee = 7
        self.capacity = capacity
        self.maxSize = maxSize
        self.spinNanoseconds = spinNanoseconds
        try register()
    }

    /// The queue behind a handed descriptor.
    init(adopting region: SharedRegion, spinNanoseconds: UInt64) throws {
        guard region.size > Layout.data, crew_load32(region.word(Layout.kind)) == 7 else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: [], debugDescription: "the handed region is not a queue"))
        }
        let capacity = Int(region.pointer(Layout.capacity).load(as: UInt64.self))
        guard capacity > 0, capacity & (capacity - 1) == 0, Layout.data + capacity <= region.size else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "the handed queue is damaged"))
        }
        self.region = region
        self.capacity = capacity
        self.maxSize = Int(region.pointer(Layout.maxSize).load(as: Int64.self))
        self.spinNanoseconds = spinNanoseconds
        putLock = SharedMutex(address: region.pointer(Layout.putLock))
        getLock = SharedMutex(address: region.pointer(Layout.getLock))
        slotsLock = SharedMutex(address: region.pointer(Layout.slotsLock))
        try register()
        crew_store32(region.word(Layout.shared), 1)
    }

    deinit {
        unregister()
    }

    // MARK: Atomics

    private func u64(_ offset: Int) -> UnsafeMutablePointer<UInt64> {
        region.pointer(offset).assumingMemoryBound(to: UInt64.self)
    }

    private func i64(_ offset: Int) -> UnsafeMutablePointer<Int64> {
        region.pointer(offset).assumingMemoryBound(to: Int64.self)
    }

    /// Complete messages in the queue now (approximate while others put and get, as Python's `qsize`).
    var count: Int { max(0, Int(crew_loadi64(i64(Layout.count)))) }

    // MARK: Who holds the queue

    private func withSlots<R>(_ body: (UnsafeMutableRawPointer) -> R) throws -> R {
        while true {
            do {
                _ = try slotsLock.lock(until: -1, what: "queue's holder table")
                break
            } catch let error as CrewError where error.code == .ownerDied {
                continue  // Released for us; the table is rewritten whole per slot, so it is still valid.
            }
        }
        defer { _ = crew_mutex_unlock(slotsLock.address) }
        return body(region.pointer(Layout.slots))
    }

    private func register() throws {
        let registered = try withSlots { slots -> Bool in
            var free: Int?
            for i in 0..<Layout.slotCount {
                let pid = slots.load(fromByteOffset: i * 16, as: Int32.self)
                let start = slots.load(fromByteOffset: i * 16 + 8, as: UInt64.self)
                if pid == me.pid && start == me.start { return true }
                if free == nil && (pid == 0 || !ProcessIdentity(pid: pid, start: start).isAlive) { free = i }
            }
            guard let free else { return false }
            slots.storeBytes(of: me.start, toByteOffset: free * 16 + 8, as: UInt64.self)
            slots.storeBytes(of: me.pid, toByteOffset: free * 16, as: Int32.self)
            return true
        }
        guard registered else {
            throw CrewError(.invalidArgument, "a queue can be held by at most \(Layout.slotCount) processes at once")
        }
    }

    private func unregister() {
        _ = try? withSlots { slots in
            for i in 0..<Layout.slotCount
            where slots.load(fromByteOffset: i * 16, as: Int32.self) == me.pid
                && slots.load(fromByteOffset: i * 16 + 8, as: UInt64.self) == me.start
            {
                slots.storeBytes(of: Int32(0), toByteOffset: i * 16, as: Int32.self)
            }
        }
    }

    /// True if the queue has been held by another process and none holds it now.
    private func othersGone() -> Bool {
        guard crew_load32(region.word(Layout.shared)) != 0 else { return false }
        let snapshot: [ProcessIdentity]
        do {
            snapshot = try withSlots { slots in
                (0..<Layout.slotCount).compactMap { i -> ProcessIdentity? in
                    let pid = slots.load(fromByteOffset: i * 16, as: Int32.self)
                    guard pid != 0 else { return nil }
                    return ProcessIdentity(pid: pid, start: slots.load(fromByteOffset: i * 16 + 8, as: UInt64.self))
                }
            }
        } catch {
            // The holder table cannot be read: nobody is known to be gone, so the wait goes on (a wrong "gone"
            // would end it with `closed` while a peer may still put).
            return false
        }
        return !snapshot.contains { $0 != me && $0.isAlive }
    }

    /// This process puts and gets no more (Python's `close`, for both directions): others waiting on the queue
    /// no longer count on this process.
    func close() {
        guard !closedHere.exchange(true, ordering: .acquiringAndReleasing) else { return }
        unregister()
        // Wake waiters everywhere so that they look again at who holds the queue.
        wake(Layout.notEmpty, waiters: Layout.emptyWaiters, force: true)
        wake(Layout.notFull, waiters: Layout.fullWaiters, force: true)
    }

    var isClosed: Bool { closedHere.load(ordering: .acquiring) }

    private func checkOpen() throws {
        if isClosed { throw CrewError(.closed, "this queue was closed in this process") }
    }

    // MARK: Waiting

    /// Bumps the futex sequence at `sequence` and wakes its sleepers, if any sleep (or `force`).
    private func wake(_ sequence: Int, waiters: Int, force: Bool = false) {
        crew_fence()
        guard force || crew_load32(region.word(waiters)) != 0 else { return }
        _ = crew_add32(region.word(sequence), 1)
        _ = crew_futex_wake(region.word(sequence), Int32.max)
    }

    enum WaitOutcome {
        case ready, timedOut, othersGone
    }

    /// Waits until `ready()` or the deadline; spins first, then sleeps on the futex at `sequence`, looking at
    /// who holds the queue every `checkInterval`.
    private func wait(
        _ sequence: Int,
        waiters: Int,
        until deadline: Int64,
        _ ready: () -> Bool
    ) -> WaitOutcome {
        if ready() { return .ready }
        if deadline >= 0 && deadline <= Int64(monotonicNanos()) { return .timedOut }  // Non-blocking.
        if spinNanoseconds > 0 {
            let spinUntil = monotonicNanos() &+ spinNanoseconds
            while monotonicNanos() < spinUntil {
                if ready() { return .ready }
            }
        }
        let word = region.word(sequence)
        while true {
            let seen = crew_load32(word)
            _ = crew_add32(region.word(waiters), 1)
            if ready() {
                _ = crew_sub32(region.word(waiters), 1)
                return .ready
            }
            var slice = Self.checkInterval
            if deadline >= 0 {
                let left = deadline - Int64(monotonicNanos())
                if left <= 0 {
                    _ = crew_sub32(region.word(waiters), 1)
                    return .timedOut
                }
                slice = min(slice, left)
            }
            let rc = crew_futex_wait(word, seen, slice)
            _ = crew_sub32(region.word(waiters), 1)
            if ready() { return .ready }
            if rc == ETIMEDOUT || isClosed || crew_load32(word) != seen {
                if isClosed || othersGone() { return ready() ? .ready : .othersGone }
            }
        }
    }

    private func lock(_ mutex: SharedMutex, until deadline: Int64, what: String) throws -> Bool {
        while true {
            do {
                return try mutex.lock(until: deadline, what: what)
            } catch let error as CrewError where error.code == .ownerDied {
                // A process died holding it. The ring is consistent (positions move only after a record is
                // complete), so take the lock again.
                continue
            }
        }
    }

    // MARK: Put

    /// Appends one message. `deadline` bounds the whole wait (for the lock and for room).
    @usableFromInline
    func put(_ bytes: UnsafeRawBufferPointer, until deadline: Int64) throws {
        try put(prefix: UnsafeRawBufferPointer(start: nil, count: 0), bytes, until: deadline)
    }

    /// Appends one message made of `prefix` then `bytes` (so that a caller need not join them first).
    @usableFromInline
    func put(prefix: UnsafeRawBufferPointer, _ bytes: UnsafeRawBufferPointer, until deadline: Int64) throws {
        if prefix.count > 0 && prefix.count + bytes.count > capacity / 4 - 8 {
            // Big enough to travel in pieces: join the parts first (the piece code takes one buffer).
            var joined = [UInt8](prefix)
            joined.append(contentsOf: bytes)
            return try joined.withUnsafeBytes {
                try put(prefix: UnsafeRawBufferPointer(start: nil, count: 0), $0, until: deadline)
            }
        }
        try checkOpen()
        guard try lock(putLock, until: deadline, what: "queue's put lock") else {
            throw CrewError(.full, "the queue stayed full (its put lock stayed taken) until the timeout")
        }
        defer { _ = crew_mutex_unlock(putLock.address) }
        if maxSize > 0 {
            let count = i64(Layout.count)
            switch wait(
                Layout.notFull, waiters: Layout.fullWaiters, until: deadline, { crew_loadi64(count) < Int64(maxSize) })
            {
            case .ready: break
            case .timedOut: throw CrewError(.full, "the queue held \(maxSize) messages until the timeout")
            case .othersGone: throw goneError(putting: true)
            }
        }
        // Counted before the message is published, so that a consumer never sees it uncounted (a `taskDone`
        // for it must find it in `unfinished`); taken back if it is not published after all.
        let fragment = capacity / 4 - 8
        if deadline == 0 && prefix.count + bytes.count > fragment && !roomNow(for: prefix.count + bytes.count) {
            // A message in pieces waits for room between its pieces: a caller that cannot wait (an async `put`
            // on a cooperative thread) takes it only if every piece fits now.
            throw CrewError(.full, "the queue has no room now for all of a message of \(bytes.count) bytes")
        }
        _ = crew_add64(i64(Layout.unfinished), 1)
        _ = crew_add64(i64(Layout.count), 1)
        do {
            if prefix.count + bytes.count <= fragment {
                try writeRecord(kind: Self.recordWhole, prefix: prefix, bytes, until: deadline)
            } else {
                // Who writes it, so that a consumer waiting for its records can tell if it died.
                region.pointer(Layout.partialWriterStart).storeBytes(of: me.start, as: UInt64.self)
                crew_store32(region.word(Layout.partialWriterPID), UInt32(bitPattern: me.pid))
                defer { crew_store32(region.word(Layout.partialWriterPID), 0) }
                var offset = 0
                while offset < bytes.count {
                    let end = min(bytes.count, offset + fragment)
                    let kind =
                        offset == 0 ? Self.recordFirst : (end == bytes.count ? Self.recordLast : Self.recordMiddle)
                    let piece = UnsafeRawBufferPointer(rebasing: bytes[offset..<end])
                    try writeRecord(kind: kind, piece, until: offset == 0 ? deadline : -1)
                    offset = end
                }
            }
        } catch {
            _ = crew_add64(i64(Layout.unfinished), -1)
            _ = crew_add64(i64(Layout.count), -1)
            throw error
        }
        wake(Layout.notEmpty, waiters: Layout.emptyWaiters)
    }

    /// Whether a message of `length` bytes, in pieces, fits in the ring's free space now (with the room a piece
    /// that would wrap may waste at the end).
    private func roomNow(for length: Int) -> Bool {
        let fragment = capacity / 4 - 8
        let pieces = (length + fragment - 1) / fragment
        let needed = pieces * (8 + (fragment + 7) & ~7) + capacity / 4
        let free = capacity - Int(crew_load64(u64(Layout.tail)) &- crew_load64(u64(Layout.head)))
        return needed <= free
    }

    /// Whether the ring holds, from `head`, the last record of the message that starts there (so that a caller that
    /// cannot wait can take it whole).
    private func wholeMessageQueued(from head: UInt64) -> Bool {
        let tail = crew_load64(u64(Layout.tail))
        let mask = UInt64(capacity - 1)
        var at = head
        while at != tail {
            let record = data + Int(at & mask)
            let length = Int(record.load(as: UInt32.self))
            let kind = record.load(fromByteOffset: 4, as: UInt32.self)
            if kind == Self.recordLast { return true }
            if kind == Self.recordWhole && at != head { return false }
            guard length <= capacity / 4 else { return false }
            at &+= kind == Self.recordSkip ? UInt64(8 + length) : UInt64(8 + (length + 7) & ~7)
        }
        return false
    }

    /// Writes one record past `tail` once there is room, and publishes it.
    private func writeRecord(
        kind: UInt32,
        prefix: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        _ bytes: UnsafeRawBufferPointer,
        until deadline: Int64
    ) throws {
        let length = prefix.count + bytes.count
        let size = 8 + (length + 7) & ~7
        let head = u64(Layout.head)
        let tailPointer = u64(Layout.tail)
        var tail = crew_load64(tailPointer)
        let mask = UInt64(capacity - 1)
        // A record does not wrap: if it does not fit before the end, a skip record fills the end first.
        let untilEnd = capacity - Int(tail & mask)
        let needed = size <= untilEnd ? size : untilEnd + size
        switch wait(
            Layout.notFull, waiters: Layout.fullWaiters, until: deadline,
            {
                self.capacity - Int(tail &- crew_load64(head)) >= needed
            })
        {
        case .ready: break
        case .timedOut:
            if kind == Self.recordWhole || kind == Self.recordFirst {
                throw CrewError(.full, "the queue had no room for a message of \(length) bytes until the timeout")
            }
            // Never happens: later records wait without a deadline.
            throw CrewError(.full, "the queue had no room until the timeout")
        case .othersGone:
            throw goneError(putting: true)
        }
        if size > untilEnd {
            let at = data + Int(tail & mask)
            at.storeBytes(of: UInt32(untilEnd - 8), as: UInt32.self)
            at.storeBytes(of: Self.recordSkip, toByteOffset: 4, as: UInt32.self)
            tail &+= UInt64(untilEnd)
        }
        let at = data + Int(tail & mask)
        at.storeBytes(of: UInt32(length), as: UInt32.self)
        at.storeBytes(of: kind, toByteOffset: 4, as: UInt32.self)
        if let base = prefix.baseAddress, prefix.count > 0 { (at + 8).copyMemory(from: base, byteCount: prefix.count) }
        if let base = bytes.baseAddress, bytes.count > 0 {
            (at + 8 + prefix.count).copyMemory(from: base, byteCount: bytes.count)
        }
        tail &+= UInt64(size)
        crew_store64(tailPointer, tail)
        if kind != Self.recordWhole && kind != Self.recordLast {
            // A consumer may be reading this message record by record: let it go on.
            wake(Layout.notEmpty, waiters: Layout.emptyWaiters)
        }
    }

    private func goneError(putting: Bool) -> CrewError {
        if isClosed { return CrewError(.closed, "this queue was closed in this process") }
        return CrewError(
            .closed,
            putting
                ? "the queue is full and no other process holds it any more: nobody will get from it"
                : "the queue is empty and no other process holds it any more: nobody will put to it"
        )
    }

    // MARK: Get

    /// Takes the oldest message; `body` reads its bytes (valid only during the call).
    @usableFromInline
    func get(until deadline: Int64, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try checkOpen()
        guard try lock(getLock, until: deadline, what: "queue's get lock") else {
            throw CrewError(.empty, "the queue stayed empty (its get lock stayed taken) until the timeout")
        }
        defer { _ = crew_mutex_unlock(getLock.address) }
        var assembled: [UInt8] = []
        var assembling = false
        let headPointer = u64(Layout.head)
        let tailPointer = u64(Layout.tail)
        let mask = UInt64(capacity - 1)
        while true {
            var head = crew_load64(headPointer)
            var nextDeathCheck: UInt64 = 0
            let outcome = wait(Layout.notEmpty, waiters: Layout.emptyWaiters, until: assembling ? -1 : deadline) {
                if crew_load64(tailPointer) != head { return true }
                guard assembling else { return false }
                // Whether the producer died is looked up in /proc: at most every 10 ms.
                let now = monotonicNanos()
                guard now >= nextDeathCheck else { return false }
                nextDeathCheck = now + 10_000_000
                return self.producerDied()
            }
            switch outcome {
            case .ready: break
            case .timedOut: throw CrewError(.empty, "the queue was empty until the timeout")
            case .othersGone: throw goneError(putting: false)
            }
            if crew_load64(tailPointer) == head {
                // The producer of a multi-record message died midway: drop what arrived of it.
                dropPartial(&assembled, &assembling)
                continue
            }
            let at = data + Int(head & mask)
            let length = Int(at.load(as: UInt32.self))
            let kind = at.load(fromByteOffset: 4, as: UInt32.self)
            if kind == Self.recordSkip {
                head &+= UInt64(8 + length)
                crew_store64(headPointer, head)
                wake(Layout.notFull, waiters: Layout.fullWaiters)
                continue
            }
            guard length <= capacity / 4, kind <= Self.recordLast else {
                throw CrewError(
                    .protocolError, "the queue's ring is damaged (a record of \(length) bytes, kind \(kind))")
            }
            let size = 8 + (length + 7) & ~7
            switch kind {
            case Self.recordWhole where !assembling:
                // The message is taken off the queue whether or not `body` can make sense of it.
                defer { finishMessage(head: head &+ UInt64(size)) }
                return try body(UnsafeRawBufferPointer(start: at + 8, count: length))
            case Self.recordFirst where !assembling:
                if deadline == 0 && !wholeMessageQueued(from: head) {
                    // Its other pieces are still coming: a caller that cannot wait leaves it for one that can.
                    throw CrewError(.empty, "the next message is still arriving")
                }
                assembling = true
                assembled.reserveCapacity(length * 4)
                assembled.append(contentsOf: UnsafeRawBufferPointer(start: at + 8, count: length))
            case Self.recordMiddle where assembling, Self.recordLast where assembling:
                assembled.append(contentsOf: UnsafeRawBufferPointer(start: at + 8, count: length))
            case Self.recordWhole, Self.recordFirst:
                // A new message while one was being assembled: that one's producer died midway (another
                // producer took the put lock over). Drop the partial message and read this record afresh.
                dropPartial(&assembled, &assembling)
                continue
            default:
                // The rest of a message whose start was dropped: skip it.
                break
            }
            if assembling && kind == Self.recordLast {
                finishMessage(head: head &+ UInt64(size))
                return try assembled.withUnsafeBytes { try body($0) }
            }
            head &+= UInt64(size)
            crew_store64(headPointer, head)
            wake(Layout.notFull, waiters: Layout.fullWaiters)
        }
    }

    /// Forgets a message whose producer died before its last record (it was counted when it was begun).
    private func dropPartial(_ assembled: inout [UInt8], _ assembling: inout Bool) {
        assembled.removeAll()
        assembling = false
        _ = crew_add64(i64(Layout.unfinished), -1)
        _ = crew_add64(i64(Layout.count), -1)
    }

    private func finishMessage(head: UInt64) {
        crew_store64(u64(Layout.head), head)
        _ = crew_add64(i64(Layout.count), -1)
        wake(Layout.notFull, waiters: Layout.fullWaiters)
    }

    /// True if the producer of the multi-record message being read died (checked only then).
    private func producerDied() -> Bool {
        let pid = Int32(bitPattern: crew_load32(region.word(Layout.partialWriterPID)))
        if pid != 0 {
            let start = region.pointer(Layout.partialWriterStart).load(as: UInt64.self)
            if !ProcessIdentity(pid: pid, start: start).isAlive { return true }
        }
        let rc = crew_mutex_trylock(putLock.address)
        switch rc {
        case EOWNERDEAD:
            _ = crew_mutex_consistent(putLock.address)
            _ = crew_mutex_unlock(putLock.address)
            return true
        case 0:
            // Nobody holds it, yet the message is incomplete: its producer is gone.
            _ = crew_mutex_unlock(putLock.address)
            return true
        default:
            return false
        }
    }

    // MARK: Joinable

    /// Marks one message as processed (`JoinableQueue.task_done`).
    func taskDone() throws {
        let unfinished = i64(Layout.unfinished)
        while true {
            let value = crew_loadi64(unfinished)
            guard value > 0 else {
                throw CrewError(.invalidArgument, "taskDone() was called more times than there were items put")
            }
            if crew_casi64(unfinished, value, value - 1) != 0 {
                if value == 1 { wake(Layout.joinSequence, waiters: Layout.joinWaiters) }
                return
            }
        }
    }

    /// Waits until every message put has been marked done.
    func join(until deadline: Int64) throws -> Bool {
        let unfinished = i64(Layout.unfinished)
        switch wait(
            Layout.joinSequence, waiters: Layout.joinWaiters, until: deadline, { crew_loadi64(unfinished) == 0 })
        {
        case .ready: return true
        case .timedOut: return false
        case .othersGone:
            throw CrewError(.closed, "items remain unfinished and no other process holds the queue any more")
        }
    }

    var unfinished: Int { Int(crew_loadi64(i64(Layout.unfinished))) }
}

/// A process, told apart from a later one with the same pid by its start time.
struct ProcessIdentity: Equatable, Sendable {
    var pid: Int32
    /// Field 22 of /proc/PID/stat (clock ticks after boot).
    var start: UInt64

    static func current() -> ProcessIdentity {
        let pid = getpid()
        return ProcessIdentity(pid: pid, start: Self.stat(pid)?.start ?? 0)
    }

    /// True while the process runs (a zombie counts as dead).
    var isAlive: Bool {
        guard pid > 0, let stat = Self.stat(pid) else { return false }
        return stat.start == start && stat.state != "Z" && stat.state != "X"
    }

    /// The state letter and start time of a process, from /proc.
    static func stat(_ pid: Int32) -> (state: Character, start: UInt64)? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        // The command name may contain spaces and parentheses: fields start after the last ')'.
        guard let close = buffer[0..<n].lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = buffer[(close + 2)..<n].split(separator: UInt8(ascii: " "))
        // fields[0] is field 3 (state); field 22 is fields[19].
        guard fields.count > 19, let state = fields[0].first,
            let start = UInt64(String(decoding: fields[19], as: UTF8.self))
        else { return nil }
        return (Character(UnicodeScalar(state)), start)
    }
}
