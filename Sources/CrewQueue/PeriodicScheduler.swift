import FoundationEssentials
public import Logging
public import ServiceLifecycle
import Synchronization

/// Enqueues scheduled tasks when they are due: Celery beat. Several schedulers may share a broker (for
/// availability): each period goes to exactly one of them, decided in the broker.
public final class PeriodicScheduler: Service, Sendable {
    /// Where jobs go.
    public let broker: any QueueBroker
    /// What it enqueues, and how often.
    public let schedules: [PeriodicTask]
    /// How often it looks at the schedules.
    public let tick: Duration
    private let logger: Logger
    private let stopped = StopFlag()

    /// A scheduler of `schedules` on `broker`, looking every `tick`.
    public init(
        broker: any QueueBroker, schedules: [PeriodicTask], tick: Duration = .seconds(1),
        logger: Logger = Logger(label: "crew.scheduler")
    ) {
        self.broker = broker
        self.schedules = schedules
        self.tick = tick
        self.logger = logger
    }

    /// Enqueues what is due now; returns the names of the schedules it enqueued.
    @discardableResult
    public func runDue() async throws -> [String] {
        let client = TaskClient(broker: broker)
        var enqueued: [String] = []
        for schedule in schedules where try await broker.claimSchedule(schedule.name, every: schedule.every) {
            try await schedule.enqueue(client)
            enqueued.append(schedule.name)
        }
        return enqueued
    }

    /// Enqueues due tasks every ``tick`` until ``stop()`` or a graceful shutdown of its service group.
    public func run() async throws {
        await withGracefulShutdownHandler {
            while !stopped.isSet {
                do {
                    for name in try await runDue() {
                        logger.debug("enqueued a scheduled task", metadata: ["schedule": "\(name)"])
                    }
                } catch {
                    logger.error(
                        "could not enqueue scheduled tasks", metadata: ["error": "\(String(reflecting: error))"])
                }
                try? await Task.sleep(for: tick)
            }
        } onGracefulShutdown: {
            self.stop()
        }
    }

    /// Stops ``run()`` after its current tick.
    public func stop() {
        stopped.set()
    }
}

/// A flag set once.
final class StopFlag: Sendable {
    private let state = Atomic<Bool>(false)

    var isSet: Bool { state.load(ordering: .acquiring) }

    func set() {
        state.store(true, ordering: .releasing)
    }
}
