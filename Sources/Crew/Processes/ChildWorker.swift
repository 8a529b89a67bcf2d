import CCrewShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A child process that serves calls until shut down: the building block of process pools, exposed for
/// Crew's benchmarks and tests.
@_spi(Internals)
public final class ChildWorker: Sendable {
    let connection: ChildConnection

    /// Starts a worker child with `crew`'s options (``Crew/current`` when nil).
    public init(crew: Crew? = nil) throws {
        guard let crew = crew ?? Crew.current else {
            throw CrewError(.notBootstrapped, "call Crew.bootstrap(...) before starting workers")
        }
        connection = try ChildConnection.spawn(crew: crew, mode: .worker)
    }

    /// The child's process id.
    public var pid: Int32 { connection.pid }

    /// Runs `function` in the child.
    public func call<A, R>(_ function: Crew.Function<A, R>, _ arguments: A) async throws -> R {
        let bytes = try await callEncoded(function.name) { try BinaryEncoder.encode(arguments, appendingTo: &$0) }
        return try decode(R.self, bytes, function: function.name)
    }

    /// Runs `function` in the child, blocking the calling thread until the result arrives.
    public func callBlocking<A, R>(_ function: Crew.Function<A, R>, _ arguments: A) throws -> R {
        let done = Completion<Result<[UInt8], CrewError>>()
        connection.call(
            function.name,
            encodeArguments: { try BinaryEncoder.encode(arguments, appendingTo: &$0) },
            completion: { done.complete($0) }
        )
        connection.readUntil(block: true) { done.current != nil }
        let bytes = try done.wait(timeout: nil)!.getRethrowing()
        return try decode(R.self, bytes, function: function.name)
    }

    /// Calls `name` with arguments written by `encode` and returns the encoded result.
    func callEncoded(_ name: String, _ encode: (inout [UInt8]) throws -> Void) async throws -> [UInt8] {
        let done = Completion<Result<[UInt8], CrewError>>()
        connection.call(name, encodeArguments: encode) { done.complete($0) }
        // A short spin on this thread often gets the answer without any thread hop; then the reactor takes over.
        connection.readUntil(block: false) { done.current != nil }
        guard let result = await done.wait() else { throw CancellationError() }
        return try result.getRethrowing()
    }

    private func decode<R: Decodable>(_ type: R.Type, _ bytes: [UInt8], function: String) throws -> R {
        do {
            return try BinaryDecoder().decode(R.self, from: bytes)
        } catch {
            throw CrewError(
                .decodingFailed, "the result did not decode as \(R.self): \(error)", pid: pid, function: function)
        }
    }

    /// Asks the child to finish its calls and exit, and waits until it has.
    @discardableResult
    public func shutdown() async -> Crew.ExitStatus? {
        connection.shutdown()
        return await connection.exited.wait()
    }

    /// Sends `signal` to the child.
    public func signal(_ signal: Int32) {
        connection.signal(signal)
    }

    /// Waits until the child exits.
    public func exitStatus() async -> Crew.ExitStatus? {
        await connection.exited.wait()
    }
}
