import CCrewShims
public import FoundationEssentials
import Synchronization

/// Why one attempt of a job failed.
public struct AttemptError: Sendable, Codable, Equatable {
    /// Which attempt (1 for the first).
    public var attempt: Int
    /// What went wrong, in words.
    public var message: String
    /// The error's type, when there was one.
    public var type: String?
    /// When.
    public var at: Date
    /// The error itself, encoded (Crew's binary form, in base64), when its type is one the task's function declared
    /// (`Crew.Function.throwing`): a handle's ``TaskHandle/result(timeout:)`` rethrows it as itself.
    public var value: String?

    /// An attempt's error.
    public init(attempt: Int, message: String, type: String? = nil, at: Date = Date(), value: String? = nil) {
        self.attempt = attempt
        self.message = message
        self.type = type
        self.at = at
        self.value = value
    }
}
