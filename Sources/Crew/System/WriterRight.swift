/// The right to write to one descriptor, held by one writer at a time and handed to the writers that wait for it
/// in the order they came: threads sleep for it, tasks suspend for it (holding no thread). Unlike a mutex, it may be
/// let go of on another thread than the one that took it, as an async send does when it finishes on a thread of
/// the blocking pool.
final class WriterRight: @unchecked Sendable {
    // @unchecked Sendable: the fields below `lock` are only touched under it.
    private let lock = ConditionLock()
    private var held = false
    private enum Waiter {
        case thread(ticket: UInt64)
        case task(CheckedContinuation<Void, Never>)
    }
    private var waiters: [Waiter] = []
    private var nextTicket: UInt64 = 0
    /// The sleeping thread the right was handed to.
    private var grantedTicket: UInt64?

    /// Takes the right, sleeping until it is this thread's turn (blocking threads only).
    func take() {
        lock.withLock {
            guard held else {
                held = true
                return
            }
            let ticket = nextTicket
            nextTicket &+= 1
            waiters.append(.thread(ticket: ticket))
            while grantedTicket != ticket { lock.wait(until: nil) }
            grantedTicket = nil
        }
    }

    /// Takes the right, suspending until it is this task's turn. Not cancellable: a writer that waits in line is
    /// handed the right, and must let go of it.
    func take() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = lock.withLock {
                guard held else {
                    held = true
                    return true
                }
                waiters.append(.task(continuation))
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Lets go of the right (on any thread): the first writer in line has it now.
    func release() {
        let next: CheckedContinuation<Void, Never>? = lock.withLock {
            guard !waiters.isEmpty else {
                held = false
                return nil
            }
            switch waiters.removeFirst() {
            case .task(let continuation):
                return continuation
            case .thread(let ticket):
                grantedTicket = ticket
                lock.broadcast()
                return nil
            }
        }
        next?.resume()
    }
}
