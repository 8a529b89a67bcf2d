import Synchronization

/// Group commit: callers that submit while a write is under way are written together in the next one. The first
/// caller writes (no hand-off to another task, so a lone caller pays nothing extra); a caller that arrives during
/// a write waits and is written, with everyone else who arrived, by a task started when that write ends.
final class GroupCommit<Entry: Sendable, Output: Sendable>: Sendable {
    private typealias Waiter = (entry: Entry, continuation: CheckedContinuation<Output, any Error>)

    private struct State {
        var writing = false
        var waiting: [Waiter] = []
    }

    private let state = Mutex(State())
    private let write: @Sendable ([Entry]) async throws -> [Output]

    /// `write` stores a batch and returns one output per entry, in order.
    init(_ write: @escaping @Sendable ([Entry]) async throws -> [Output]) {
        self.write = write
    }

    /// Callers waiting for the next write (for tests).
    var waiting: Int { state.withLock { $0.waiting.count } }

    /// Writes `entry`, alone or with others; returns its output.
    func submit(_ entry: Entry) async throws -> Output {
        let lead = state.withLock { state -> Bool in
            guard !state.writing else { return false }
            state.writing = true
            return true
        }
        if lead {
            defer { handOff() }
            return try await write([entry])[0]
        }
        return try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { state -> Bool in
                state.waiting.append((entry, continuation))
                guard !state.writing else { return false }
                state.writing = true
                return true
            }
            if start { Task { await self.drain() } }
        }
    }

    /// After a write: writes what arrived meanwhile (in a task of its own), or stops writing.
    private func handOff() {
        let more = state.withLock { state -> Bool in
            if state.waiting.isEmpty { state.writing = false }
            return !state.waiting.isEmpty
        }
        if more { Task { await self.drain() } }
    }

    /// Writes the waiting entries in batches until none are left.
    private func drain() async {
        while true {
            let batch = state.withLock { state -> [Waiter] in
                let batch = state.waiting
                state.waiting = []
                if batch.isEmpty { state.writing = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            do {
                let outputs = try await write(batch.map(\.entry))
                for (waiter, output) in zip(batch, outputs) { waiter.continuation.resume(returning: output) }
            } catch {
                for waiter in batch { waiter.continuation.resume(throwing: error) }
            }
        }
    }
}
