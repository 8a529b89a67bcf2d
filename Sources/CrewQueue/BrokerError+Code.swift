extension BrokerError {
    /// What kind of failure: a struct rather than an enum, so that a new kind can be added without breaking a
    /// `switch` in your code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case incompatibleSchema, storage, invalidArgument, duplicateJob, unavailable
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The database is not a Crew database, or is from a newer Crew.
        public static let incompatibleSchema = Code(.incompatibleSchema)
        /// The database could not be opened or written (read-only, locked, full disk ...).
        public static let storage = Code(.storage)
        /// An argument is out of range.
        public static let invalidArgument = Code(.invalidArgument)
        /// A job id that is already taken.
        public static let duplicateJob = Code(.duplicateJob)
        /// The broker's server cannot be reached, refused the credentials, or went away.
        public static let unavailable = Code(.unavailable)

        /// The code's name, as `storage`.
        public var description: String { base.rawValue }
    }
}
