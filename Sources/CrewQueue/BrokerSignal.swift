import FoundationEssentials

/// What a broker's wake-ups are about.
public enum BrokerSignal: Sendable {
    /// Jobs were enqueued or given back: idle workers look again.
    case jobs
    /// Jobs ended: result waiters look again.
    case results
}
