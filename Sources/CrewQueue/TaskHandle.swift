import Crew
import FoundationEssentials

/// A job enqueued by a ``TaskClient``: its id, its state, its result.
public struct TaskHandle<Result: Decodable & Sendable>: Sendable {
    /// The job's id.
    public let id: JobID
    /// Where it is stored.
    public let broker: any QueueBroker

    /// The broker's results mark from before the job was enqueued: no result of the job can have been signalled
    /// before it, so a first wait for it needs no look at the job first.
    let resultsMark: UInt64?

    /// A handle on job `id` of `broker`.
    public init(id: JobID, broker: any QueueBroker) {
        self.init(id: id, broker: broker, resultsMark: nil)
    }

    init(id: JobID, broker: any QueueBroker, resultsMark: UInt64?) {
        self.id = id
        self.broker = broker
        self.resultsMark = resultsMark
    }

    /// Where the job is now.
    public var state: JobState {
        get async throws {
            guard let job = try await broker.job(id) else { throw BrokerError(.invalidArgument, "no job \(id)") }
            return job.state
        }
    }

    /// Cancels the job if it has not ended; returns whether it did.
    @discardableResult
    public func cancel() async throws -> Bool {
        try await broker.cancel(id)
    }

    /// Waits for the job's result, at most `timeout` (no limit when nil).
    ///
    /// - Throws: the error the task's function threw in its last attempt, as itself, if the function declared its
    ///   type (`Crew.Function.throwing`); otherwise `CrewError.Code.remoteError` with that error if the job failed;
    ///   `CrewError.Code.cancelled` if it was cancelled or expired; `CrewError.Code.timedOut`.
    public func result(timeout: Duration? = nil) async throws -> Result {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        if let resultsMark {
            // Marked before the job was enqueued: until a result is signalled after that, it cannot have ended.
            // Waiting for that wake-up first spares a look at the job that would find it still running (a round
            // trip to the database when it is a network away, taken while the worker needs it).
            var pause = Duration.milliseconds(50)
            if let deadline { pause = min(pause, max(deadline - ContinuousClock.now, .zero)) }
            await broker.awaitSignal(.results, after: resultsMark, timeout: pause)
        }
        while true {
            // Marked before the look, so that a job ending between the look and the wait is not missed.
            let mark = broker.signalMark(.results)
            guard let job = try await broker.job(id) else { throw BrokerError(.invalidArgument, "no job \(id)") }
            switch job.state {
            case .succeeded:
                do {
                    return try JSONDecoder().decode(Result.self, from: Data((job.result ?? "null").utf8))
                } catch {
                    throw CrewError(
                        .decodingFailed, "the job's result is not a \(Result.self): \(error)", function: job.name)
                }
            case .failed:
                let last = job.errors.last
                if let last, let declared = try Self.declaredError(last, function: job.name) { throw declared }
                throw CrewError(
                    .remoteError,
                    "the job failed after \(job.attempts) attempt(s): \(last?.message ?? "no error recorded")",
                    remoteErrorType: last?.type,
                    function: job.name
                )
            case .cancelled, .expired:
                throw CrewError(.cancelled, "the job was \(job.state.rawValue)", function: job.name)
            default:
                if let deadline, ContinuousClock.now >= deadline {
                    throw CrewError(.timedOut, "the job had no result within \(timeout!)", function: job.name)
                }
                try Task.checkCancellation()
                // Brokers with wake-ups end the wait at once; the timeout is the fallback poll.
                var pause = Duration.milliseconds(50)
                if let deadline { pause = min(pause, max(deadline - ContinuousClock.now, .zero)) }
                await broker.awaitSignal(.results, after: mark, timeout: pause)
            }
        }
    }

    /// The declared error an attempt kept, decoded; nil if it kept none, or its type is not declared here.
    static func declaredError(_ attempt: AttemptError, function: String) throws -> (any Error)? {
        guard let value = attempt.value, let type = attempt.type, let codec = DeclaredErrors.codec(named: type) else {
            return nil
        }
        guard let bytes = Data(base64Encoded: value) else {
            throw CrewError(.decodingFailed, "the job's \(type) is not base64: \(value.prefix(64))", function: function)
        }
        do {
            return try codec.decode(Array(bytes))
        } catch {
            throw CrewError(
                .decodingFailed, "the job's \(type) (\(attempt.message)) did not decode: \(error)", function: function)
        }
    }
}
