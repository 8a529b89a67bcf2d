/// Errors of the durable queue.
public struct BrokerError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What kind of failure.
    public var code: Code
    /// In words.
    public var message: String

    /// An error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The code and message.
    public var description: String { "BrokerError.\(code): \(message)" }
}
