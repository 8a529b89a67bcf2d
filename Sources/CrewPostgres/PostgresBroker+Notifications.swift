public import CrewQueue
import FoundationEssentials
import Logging
import PostgresNIO
import Synchronization

extension PostgresBroker {
    /// Starts listening for `signal`'s notifications, the first time it is asked for.
    func listen(for signal: BrokerSignal) {
        let bit: UInt8 = signal == .jobs ? 1 : 2
        guard options.notifications, listening.load(ordering: .relaxed) & bit == 0 else { return }
        guard listening.bitwiseOr(bit, ordering: .relaxed).oldValue & bit == 0 else { return }
        // Holds no reference to the broker: dropping the broker ends it (deinit cancels it).
        let task = Task { [signals, configuration, endpoint, logger] in
            await Self.listen(
                signal, signals: signals, configuration: configuration, endpoint: endpoint, logger: logger)
        }
        tasks.withLock { $0.append(task) }
    }

    /// Listens for the triggers' notifications of `signal` on a connection of its own, and reconnects (backing
    /// off) when it drops. Every (re)connection raises the signal: what happened while it was away (or before it
    /// first listened) is looked at again.
    static func listen(
        _ signal: BrokerSignal,
        signals: BrokerSignals,
        configuration: PostgresClient.Configuration,
        endpoint: String,
        logger: Logger
    ) async {
        let channel = signal == .jobs ? "crew_jobs" : "crew_results"
        var backoff = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                let connection = try await open(configuration, endpoint: endpoint, logger: logger)
                defer { Task { try? await connection.close() } }
                try await connection.listen(on: channel) { notifications in
                    signals.raise(signal)
                    backoff = .milliseconds(100)
                    for try await _ in notifications { signals.raise(signal) }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning(
                    "lost the PostgreSQL notifications connection; reconnecting",
                    metadata: [
                        "channel": "\(channel)", "error": "\(brokerError(error, endpoint: endpoint))",
                        "retry_in": "\(backoff)",
                    ])
            }
            signals.raise(signal)
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
    }

    /// Wake-ups of `signal` this process has seen.
    public func signalMark(_ signal: BrokerSignal) -> UInt64 {
        signals.mark(signal)
    }

    /// Returns once a notification of `signal` arrived after `mark`, or after `timeout` (the fallback poll). The
    /// first wait for a signal starts listening for it (which raises it once listening, for what it may have
    /// missed): a process that only enqueues never listens.
    public func awaitSignal(_ signal: BrokerSignal, after mark: UInt64, timeout: Duration) async {
        listen(for: signal)
        await signals.wait(signal, after: mark, timeout: timeout)
    }
}
