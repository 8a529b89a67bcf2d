import CCrewShims
import FoundationEssentials
import Synchronization

/// Where a job is in its life.
///
/// `scheduled` (waits for its time) → `available` → `running` → `succeeded`, or `retrying` (waits for its
/// backoff, then `available` again), or `failed`; `cancelled` and `expired` end it without running.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case scheduled, available, running, succeeded, retrying, failed, cancelled, expired

    /// True for states a job never leaves.
    public var isFinal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled, .expired: true
        default: false
        }
    }
}
