public import Crew
import FoundationEssentials

/// A registered function that runs as a queued task, with its options.
///
/// ```swift
/// enum Jobs {
///     static let resize = QueueTask(Work.resize, options: TaskOptions(maxRetries: 3))
/// }
/// let handle = try await client.enqueue(Jobs.resize, "photo.jpg")
/// ```
///
/// Arguments and results are stored as JSON, so the function's types must be JSON-codable.
public struct QueueTask<Arguments: Codable & Sendable, Result: Codable & Sendable>: AnyQueueTask {
    /// The function the task runs.
    public let function: Crew.Function<Arguments, Result>
    /// How it is queued, retried and limited.
    public let options: TaskOptions

    /// The task for `function`, with `options`.
    public init(_ function: Crew.Function<Arguments, Result>, options: TaskOptions = TaskOptions()) {
        self.function = function
        self.options = options
    }

    /// The task's name: its function's.
    public var name: String { function.name }

    /// Decodes the JSON arguments, runs the function on `executor`, encodes its result as JSON.
    public func run(arguments: String, on executor: Crew.Executor, timeout: Duration?) async throws -> String {
        let decoded: Arguments
        do {
            decoded = try JSONDecoder().decode(Arguments.self, from: Data(arguments.utf8))
        } catch {
            throw CrewError(
                .decodingFailed, "the job's arguments are not a \(Arguments.self): \(error)", function: name)
        }
        let value = try await executor.submit(function, decoded, timeout: timeout).value
        do {
            return String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
        } catch {
            throw CrewError(.encodingFailed, "the result did not encode as JSON: \(error)", function: name)
        }
    }
}

/// A task with its types erased, as a worker holds it.
public protocol AnyQueueTask: Sendable {
    /// The task's name.
    var name: String { get }
    /// How it is queued, retried and limited.
    var options: TaskOptions { get }
    /// Runs one attempt from JSON arguments to a JSON result.
    func run(arguments: String, on executor: Crew.Executor, timeout: Duration?) async throws -> String
}
