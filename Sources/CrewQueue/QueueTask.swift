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
        let decoded = try decode(arguments)
        let value = try await executor.submit(function, decoded, timeout: timeout).value
        do {
            return String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
        } catch {
            throw CrewError(.encodingFailed, "the result did not encode as JSON: \(error)", function: name)
        }
    }
}

extension QueueTask {
    /// Throws the error a job with these JSON arguments would fail with, before it is enqueued.
    ///
    /// - Throws: `CrewError` `decodingFailed` if `arguments` is not JSON for the task's `Arguments`.
    public func check(arguments: String) throws {
        _ = try decode(arguments)
    }

    private func decode(_ arguments: String) throws -> Arguments {
        do {
            return try JSONDecoder().decode(Arguments.self, from: Data(arguments.utf8))
        } catch {
            throw CrewError(
                .decodingFailed, "the arguments do not decode as \(Arguments.self): \(Self.describe(error))",
                function: name)
        }
    }

    /// A decoding error in one line: what was wrong, and where.
    private static func describe(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .typeMismatch(let type, let context):
            return "expected \(type)\(path(context)): \(context.debugDescription)"
        case .valueNotFound(let type, let context):
            return "no \(type) value\(path(context)): \(context.debugDescription)"
        case .keyNotFound(let key, let context):
            return "no key \"\(key.stringValue)\"\(path(context))"
        case .dataCorrupted(let context):
            return "\(context.debugDescription)\(path(context))"
        default:
            return "\(error)"
        }
    }

    private static func path(_ context: DecodingError.Context) -> String {
        context.codingPath.isEmpty ? "" : " at " + context.codingPath.map(\.stringValue).joined(separator: ".")
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
    /// Throws the error a job with these JSON arguments would fail with (`decodingFailed`), before it is enqueued.
    func check(arguments: String) throws
}
