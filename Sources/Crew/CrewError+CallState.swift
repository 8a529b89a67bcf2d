extension CrewError {
    /// What a pool call was doing when its worker died: whether it may have caused the death, and whether it ran.
    ///
    /// A pool's policy for a worker's death: the call it was running fails with ``running``; `async` calls it ran
    /// together all fail with ``runningWithOthers`` (any of them may have caused it, and each may have had effects);
    /// a call that finished but whose answer was not sent fails with ``finishedUnsent`` (it ran to its end: it did
    /// not cause the death); calls it had not started are given to another worker and do not fail. Crew does not
    /// retry a call that ran: only you know whether running it twice is safe.
    public struct CallState: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case running, runningWithOthers, finishedUnsent
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// It was the call its worker was running, alone: it caused the death, or something killed the worker
        /// while it ran.
        public static let running = CallState(.running)
        /// It was running beside other calls of the same worker (`async` calls run together): any of them may
        /// have caused the death.
        public static let runningWithOthers = CallState(.runningWithOthers)
        /// It had finished, but the worker died before its answer was sent: it did not cause the death, and its
        /// effects happened.
        public static let finishedUnsent = CallState(.finishedUnsent)

        /// The state's name, as `running`.
        public var description: String { base.rawValue }
    }
}
