import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
    /// Two connected ``Crew/Connection``s: Python's `multiprocessing.Pipe()`.
    ///
    /// ```swift
    /// let (parentEnd, childEnd) = try Crew.Pipe().ends
    /// let p = Crew.Process(target: Demo.answer, args: childEnd)
    /// try p.start()
    /// childEnd.close()                      // the child has its own copy now
    /// try parentEnd.send("ping")
    /// let reply: String = try parentEnd.recv()
    /// ```
    ///
    /// In async code, `try await p.start()`, `try await parentEnd.send(...)` and `try await parentEnd.recv()`
    /// suspend instead of blocking a thread of the cooperative pool (the compiler picks them there).
    ///
    /// Hand an end to a child in its arguments. Close the ends a process does not use — above all the parent's
    /// copy of the child's end once the child has started: a ``Crew/Connection/recv(_:timeout:)`` learns that its
    /// peer is gone (``CrewError/Code/closed``) only when no process holds the other end open any more.
    public struct Pipe: Sendable {
        /// The first end (with `duplex: false`, the one that receives).
        public let first: Crew.Connection
        /// The second end (with `duplex: false`, the one that sends).
        public let second: Crew.Connection

        /// Both ends, for `let (a, b) = try Crew.Pipe().ends`.
        public var ends: (Crew.Connection, Crew.Connection) { (first, second) }

        /// A new pipe: both ends send and receive (`duplex`, the default, as Python's), or the first only
        /// receives and the second only sends.
        public init(duplex: Bool = true) throws {
            var pair: [Int32] = [-1, -1]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
                throw systemCallError("socketpair")
            }
            if !duplex {
                shutdown(pair[0], Int32(SHUT_WR))
                shutdown(pair[1], Int32(SHUT_RD))
            }
            first = Crew.Connection(fd: pair[0], readable: true, writable: duplex)
            second = Crew.Connection(fd: pair[1], readable: duplex, writable: true)
        }
    }
}
