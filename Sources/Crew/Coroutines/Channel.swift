import AsyncAlgorithms
import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
    /// A channel between coroutines with back-pressure — a send waits until a receiver takes the element —
    /// built on swift-async-algorithms' `AsyncChannel`: gevent's `Channel`.
    ///
    /// ```swift
    /// let channel = Crew.Channel<Int>()
    /// spawn { for i in 0..<3 { await channel.send(i) }; channel.finish() }
    /// for await i in channel { print(i) }
    /// ```
    public final class Channel<Element: Sendable>: AsyncSequence, Sendable {
        private let channel = AsyncChannel<Element>()

        /// A new, open channel.
        public init() {}

        /// Sends `element`, suspending until a receiver takes it (or the channel is finished).
        public func send(_ element: Element) async {
            await channel.send(element)
        }

        /// Ends the channel: receivers' iterations end once they have taken what was sent.
        public func finish() {
            channel.finish()
        }

        /// Receives the elements until the channel is finished.
        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(base: channel.makeAsyncIterator())
        }

        /// Receives the elements of a ``Crew/Channel``.
        public struct AsyncIterator: AsyncIteratorProtocol {
            var base: AsyncChannel<Element>.Iterator

            /// The next element, or nil once the channel is finished.
            public mutating func next() async -> Element? {
                await base.next()
            }
        }
    }
}
