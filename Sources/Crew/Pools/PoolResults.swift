import Synchronization

/// The results of ``ProcessPool/imap(_:_:chunkSize:timeout:)`` and
/// ``ProcessPool/imapUnordered(_:_:chunkSize:timeout:)``, as they arrive.
public struct PoolResults<Element: Sendable>: AsyncSequence, Sendable {
    @usableFromInline
    let buffer: ResultBuffer<Element>

    @usableFromInline
    init(buffer: ResultBuffer<Element>) {
        self.buffer = buffer
    }

    /// Makes the iterator. Iterate once: the results are handed out as they are consumed.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(buffer: buffer)
    }

    /// Yields the results; throws the first failure.
    public struct AsyncIterator: AsyncIteratorProtocol {
        @usableFromInline
        let buffer: ResultBuffer<Element>

        /// The next result, or nil after the last.
        @inlinable
        public mutating func next() async throws -> Element? {
            try await buffer.next()
        }
    }
}

/// Chunks of results waiting for their consumer, in chunk order (imap) or arrival order (imap_unordered).
@usableFromInline
final class ResultBuffer<Element: Sendable>: Sendable {
    @usableFromInline
    struct State {
        /// imap: chunks that arrived ahead of their turn, by index.
        @usableFromInline
        var early: [Int: Result<[Element], CrewError>] = [:]
        /// imap_unordered: chunks in the order they arrived (consumed from `readyHead`).
        @usableFromInline
        var ready: [Result<[Element], CrewError>] = []
        @usableFromInline
        var readyHead = 0
        @usableFromInline
        var nextChunk = 0
        @usableFromInline
        var consumedChunks = 0
        @usableFromInline
        var current: [Element] = []
        @usableFromInline
        var currentIndex = 0
        @usableFromInline
        var waiter: CheckedContinuation<Void, Never>?
        @usableFromInline
        var finished = false

        /// The next chunk the consumer may take, if it has arrived.
        @usableFromInline
        mutating func takeNext(ordered: Bool) -> Result<[Element], CrewError>? {
            if ordered {
                guard let chunk = early.removeValue(forKey: nextChunk) else { return nil }
                nextChunk += 1
                return chunk
            }
            guard readyHead < ready.count else { return nil }
            defer {
                readyHead += 1
                if readyHead > 256 && readyHead * 2 > ready.count {
                    ready.removeFirst(readyHead)
                    readyHead = 0
                }
            }
            return ready[readyHead]
        }

        @usableFromInline
        func hasNext(ordered: Bool) -> Bool {
            ordered ? early[nextChunk] != nil : readyHead < ready.count
        }
    }

    @usableFromInline
    let ordered: Bool
    @usableFromInline
    let chunks: Int
    @usableFromInline
    let state = Locked(State())

    @inlinable
    init(ordered: Bool, chunks: Int) {
        self.ordered = ordered
        self.chunks = chunks
    }

    @inlinable
    func deliver(_ index: Int, _ outcome: Result<[Element], CrewError>) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if ordered { state.early[index] = outcome } else { state.ready.append(outcome) }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    @usableFromInline
    enum Step {
        case element(Element)
        case end
        case failure(CrewError)
        case wait
    }

    @inlinable
    func next() async throws -> Element? {
        while true {
            let step = state.withLock { state -> Step in
                while true {
                    if state.finished { return .end }
                    if state.currentIndex < state.current.count {
                        defer { state.currentIndex += 1 }
                        return .element(state.current[state.currentIndex])
                    }
                    if state.consumedChunks == chunks {
                        state.finished = true
                        return .end
                    }
                    guard let outcome = state.takeNext(ordered: ordered) else { return .wait }
                    state.consumedChunks += 1
                    switch outcome {
                    case .failure(let error):
                        state.finished = true
                        return .failure(error)
                    case .success(let values):
                        state.current = values
                        state.currentIndex = 0
                    }
                }
            }
            switch step {
            case .element(let element): return element
            case .end: return nil
            case .failure(let error): throw error.rethrown
            case .wait:
                try Task.checkCancellation()
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let resumeNow = state.withLock { state -> Bool in
                            if state.hasNext(ordered: ordered) || Task.isCancelled { return true }
                            state.waiter = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                        defer { state.waiter = nil }
                        return state.waiter
                    }
                    waiter?.resume()
                }
            }
        }
    }
}
