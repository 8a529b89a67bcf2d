import AsyncAlgorithms
import CCrewShims
public import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A counter several tasks take numbers from.
@usableFromInline
final class SharedCounter: Sendable {
    @usableFromInline let value = Atomic<Int>(0)

    @inlinable
    init() {}

    /// The next number (0, 1, 2, ...).
    @inlinable
    func take() -> Int {
        value.wrappingAdd(1, ordering: .relaxed).oldValue
    }
}

/// Results written by index from several tasks, each index once; read after they have all finished.
@usableFromInline
final class ResultSlots<R>: @unchecked Sendable {
    // @unchecked Sendable: each slot is written by one task, and read only after every writer has finished
    // (the task group's completion orders the writes before the read).
    @usableFromInline let slots: UnsafeMutableBufferPointer<R?>

    @inlinable
    init(count: Int) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil)
    }

    deinit {
        _ = slots.deinitialize()
        slots.deallocate()
    }

    @inlinable
    func set(_ index: Int, _ value: R) {
        slots[index] = value
    }

    @inlinable
    func values() -> [R] {
        slots.map { $0! }
    }
}

/// A counting gate for tasks: `acquire` suspends while no slot is free.
final class AsyncSlots: Sendable {
    private struct State {
        var free: Int
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var drained: [CheckedContinuation<Void, any Error>] = []
        var nextID: UInt64 = 0
    }

    private let total: Int
    private let state: Mutex<State>

    init(_ count: Int) {
        total = count
        state = Mutex(State(free: count))
    }

    var free: Int { state.withLock { $0.free } }

    func acquire() async throws {
        let id: UInt64 = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let granted = state.withLock { state -> Bool in
                    if Task.isCancelled { return false }
                    if state.free > 0 {
                        state.free -= 1
                        return true
                    }
                    state.waiters.append((id, continuation))
                    return false
                }
                if granted {
                    continuation.resume()
                } else if Task.isCancelled && !state.withLock({ $0.waiters.contains { $0.id == id } }) {
                    continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    func release() {
        let (next, drained): (CheckedContinuation<Void, any Error>?, [CheckedContinuation<Void, any Error>]) =
            state.withLock { state in
                if !state.waiters.isEmpty { return (state.waiters.removeFirst().continuation, []) }
                state.free += 1
                if state.free == total {
                    defer { state.drained.removeAll() }
                    return (nil, state.drained)
                }
                return (nil, [])
            }
        next?.resume()
        for waiter in drained { waiter.resume() }
    }

    func waitUntilAllFree() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let now = state.withLock { state -> Bool in
                if state.free == total { return true }
                state.drained.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}
