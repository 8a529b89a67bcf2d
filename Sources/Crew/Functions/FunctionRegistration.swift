/// What a child process needs to run a registered function: its name and its body behind the wire codec.
/// Made by ``Crew/Function``; opaque to everything else.
public struct FunctionRegistration: Sendable {
    /// The name the function is registered under.
    public let name: String
    /// Runs one call.
    @usableFromInline
    let invoke: Invoke
    /// Runs a chunk of calls: the arguments are an encoded `[Arguments]`, the result an encoded `[Result]`. A
    /// synchronous body's calls run in order, an `async` body's together; the first that throws fails the chunk
    /// (as in Python's `map`).
    @usableFromInline
    let invokeChunk: Invoke

    /// Why an invocation failed, as the child reports it.
    @usableFromInline
    enum Failure: Error {
        case decoding(any Error)
        case encoding(any Error)
        case threw(any Error)
    }

    @usableFromInline
    enum Invoke: Sendable {
        /// Decodes the arguments from `bytes[range]`, runs the body, appends the encoded result to `out`.
        case sync(@Sendable (_ bytes: [UInt8], _ range: Range<Int>, _ out: inout [UInt8]) throws(Failure) -> Void)
        /// Decodes the arguments, runs the body, returns the encoded result.
        case async(@Sendable (_ arguments: [UInt8]) async throws(Failure) -> [UInt8])
    }

    @inlinable
    init<A, R>(name: String, body: Crew.Function<A, R>.Body) {
        self.name = name
        switch body {
        case .sync(let body):
            invokeChunk = .sync { bytes, range, out throws(Failure) in
                let arguments: [A]
                do {
                    arguments = try BinaryDecoder().decode([A].self, from: bytes, range: range)
                } catch {
                    throw .decoding(error)
                }
                var results: [R] = []
                results.reserveCapacity(arguments.count)
                do {
                    for argument in arguments { results.append(try body(argument)) }
                } catch {
                    throw .threw(error)
                }
                do {
                    try BinaryEncoder.encode(results, appendingTo: &out)
                } catch {
                    throw .encoding(error)
                }
            }
            invoke = .sync { bytes, range, out throws(Failure) in
                let arguments: A
                do {
                    arguments = try BinaryDecoder().decode(A.self, from: bytes, range: range)
                } catch {
                    throw .decoding(error)
                }
                let result: R
                do {
                    result = try body(arguments)
                } catch {
                    throw .threw(error)
                }
                do {
                    try BinaryEncoder.encode(result, appendingTo: &out)
                } catch {
                    throw .encoding(error)
                }
            }
        case .async(let body):
            invokeChunk = .async { bytes throws(Failure) in
                let arguments: [A]
                do {
                    arguments = try BinaryDecoder().decode([A].self, from: bytes)
                } catch {
                    throw .decoding(error)
                }
                // The calls of a chunk run together, as separate calls of an `async` function do (a chunk counts
                // as its calls toward a pool's `coroutinesEach`); the results keep their order.
                let results: [R]
                do {
                    results = try await withThrowingTaskGroup(of: (Int, R).self) { group in
                        for (index, argument) in arguments.enumerated() {
                            group.addTask { (index, try await body(argument)) }
                        }
                        var slots = [R?](repeating: nil, count: arguments.count)
                        for try await (index, result) in group { slots[index] = result }
                        return slots.map { $0! }
                    }
                } catch {
                    throw .threw(error)
                }
                do {
                    return try BinaryEncoder().encode(results)
                } catch {
                    throw .encoding(error)
                }
            }
            invoke = .async { bytes throws(Failure) in
                let arguments: A
                do {
                    arguments = try BinaryDecoder().decode(A.self, from: bytes)
                } catch {
                    throw .decoding(error)
                }
                let result: R
                do {
                    result = try await body(arguments)
                } catch {
                    throw .threw(error)
                }
                do {
                    return try BinaryEncoder().encode(result)
                } catch {
                    throw .encoding(error)
                }
            }
        }
    }

    /// True when the body is synchronous (it runs inline on the child's serving thread).
    @usableFromInline
    var isSynchronous: Bool {
        if case .sync = invoke { true } else { false }
    }
}
