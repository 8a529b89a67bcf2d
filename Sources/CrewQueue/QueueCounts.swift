import CCrewShims
import FoundationEssentials
import Synchronization

/// How many jobs of a queue are in each state.
public struct QueueCounts: Sendable, Codable, Equatable {
    /// The queue's name.
    public var queue: String
    /// Jobs by state (states with none are left out).
    public var counts: [JobState: Int]

    /// Counts for `queue`.
    public init(queue: String, counts: [JobState: Int]) {
        self.queue = queue
        self.counts = counts
    }
}
