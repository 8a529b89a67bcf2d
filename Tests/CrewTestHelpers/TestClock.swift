public import Foundation
import Synchronization

/// A clock the tests move by hand.
public final class TestClock: Sendable {
    public init() {}
    private let now = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
    public var read: @Sendable () -> Date { { [self] in now.withLock { $0 } } }
    public func advance(_ seconds: Double) { now.withLock { $0 = $0.addingTimeInterval(seconds) } }
}
