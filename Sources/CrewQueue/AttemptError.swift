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

extension AttemptError {
    /// A job's errors from the JSON a broker stores them as. Text that does not read as that JSON (a row written by
    /// hand, a damaged file) is kept whole, as the message of one error that says so, rather than dropped.
    package static func list(fromJSON json: String) -> [AttemptError] {
        if json == "[]" { return [] }
        do {
            return try JSONDecoder().decode([AttemptError].self, from: Data(json.utf8))
        } catch {
            return [
                AttemptError(
                    attempt: 0, message: "the job's recorded errors do not read (\(error)): \(json)",
                    type: "BrokerError.storage", at: Date(timeIntervalSince1970: 0))
            ]
        }
    }
}
