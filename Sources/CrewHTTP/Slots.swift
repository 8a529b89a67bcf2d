import Synchronization

/// A bounded number of slots that tasks wait for, suspended, in the order they came: how a worker keeps at most
/// `--concurrency` requests at once.
final class Slots: Sendable {
    private struct State {
        var free: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
        var head = 0
    }

    private let state: Mutex<State>

    init(_ count: Int) {
        state = Mutex(State(free: count))
    }

    /// Takes a slot, waiting for one to be given back if none is free.
    func take() async {
        let now = state.withLock { state -> Bool in
            guard state.free > 0 else { return false }
            state.free -= 1
            return true
        }
        if now { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let free = state.withLock { state -> Bool in
                if state.free > 0 {
                    state.free -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if free { continuation.resume() }
        }
    }

    /// Takes as many free slots as there are, up to `limit`, without waiting; returns how many it took.
    func takeAvailable(upTo limit: Int) -> Int {
        state.withLock { state in
            let taken = min(max(0, limit), state.free)
            state.free -= taken
            return taken
        }
    }

    /// Gives a slot back: to the first waiter, if any.
    func give() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.head < state.waiters.count else {
                state.free += 1
                return nil
            }
            let next = state.waiters[state.head]
            state.head += 1
            if state.head > 64 && state.head * 2 > state.waiters.count {
                state.waiters.removeFirst(state.head)
                state.head = 0
            }
            return next
        }
        next?.resume()
    }
}
