extension Crew {
    /// The argument of a function that takes none and the result of one that returns nothing.
    @frozen
    public struct Empty: Codable, Sendable, Hashable {
        /// The empty value.
        @inlinable
        public init() {}
    }
}
