import Synchronization

/// Wake-ups within one process, for brokers to build ``QueueBroker/signalMark(_:)`` and
/// ``QueueBroker/awaitSignal(_:after:timeout:)`` on: ``MemoryBroker`` raises them itself; a broker on a server raises
/// them when the server tells it that jobs were enqueued or ended.
public final class BrokerSignals: Sendable {
    private struct State {
        var jobs: UInt64 = 0
        var results: UInt64 = 0
        var nextWaiter: UInt64 = 0
        var waiters: [UInt64: (signal: BrokerSignal, continuation: CheckedContinuation<Void, Never>)] = [:]
        /// Waits whose timeout passed before they were parked: they return as soon as they try to park.
        var timedOut: Set<UInt64> = []

        func count(_ signal: BrokerSignal) -> UInt64 {
            switch signal {
            case .jobs: jobs
            case .results: results
            }
        }
    }

    private let state = Mutex(State())

    /// No wake-ups yet.
    public init() {}

    /// How many times `signal` has been raised.
    public func mark(_ signal: BrokerSignal) -> UInt64 {
        state.withLock { $0.count(signal) }
    }

    /// Raises `signal`: every waiter on it returns.
    public func raise(_ signal: BrokerSignal) {
        let woken = state.withLock { state in
            switch signal {
            case .jobs: state.jobs &+= 1
            case .results: state.results &+= 1
            }
            let ids = state.waiters.filter { $0.value.signal == signal }.map(\.key)
            return ids.compactMap { state.waiters.removeValue(forKey: $0)?.continuation }
        }
        for continuation in woken { continuation.resume() }
    }

    /// Returns once `signal` has been raised after `mark` was taken, or after `timeout`.
    public func wait(_ signal: BrokerSignal, after mark: UInt64, timeout: Duration) async {
        let id = state.withLock { state -> UInt64? in
            guard state.count(signal) == mark else { return nil }
            state.nextWaiter &+= 1
            return state.nextWaiter
        }
        guard let id else { return }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            if Task.isCancelled { return }
            let parked = self.state.withLock { state in
                guard let waiter = state.waiters.removeValue(forKey: id) else {
                    // Not parked yet: it must not park now, or nothing would wake it.
                    state.timedOut.insert(id)
                    return CheckedContinuation<Void, Never>?.none
                }
                return waiter.continuation
            }
            parked?.resume()
        }
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                guard state.count(signal) == mark, state.timedOut.remove(id) == nil else { return true }
                state.waiters[id] = (signal, continuation)
                return false
            }
            if now { continuation.resume() }
        }
        timer.cancel()
        // A timer that fired after a raise or an early return leaves its mark behind: drop it.
        state.withLock { _ = $0.timedOut.remove(id) }
    }
}
