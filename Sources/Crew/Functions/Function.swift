/// A function that can run in another process: a stable name and a typed body.
///
/// Closures cannot cross a process boundary, so work that may run in a child process is registered under a
/// name. The parent sends the name and the encoded arguments; the child, which is the same program, looks the
/// name up in its own registry and runs the body.
///
/// ```swift
/// enum Work {
///     static let square = Function("square") { (n: Int) in n * n }
///     static let fetch = Function("fetch") { (url: String) async throws -> Int in try await download(url) }
///     static let ping = Function("ping") { () -> String in "pong" }
/// }
/// ```
///
/// Register every function with ``Crew/bootstrap(_:options:)-(AnyFunction...,_)`` at the top of `main`.
/// Arguments and results are `Codable`; pass several arguments as a tuple-like struct. A body without
/// arguments takes ``Empty``, one without a result returns ``Empty``.
public struct Function<Arguments: Codable & Sendable, Result: Codable & Sendable>: AnyFunction {
    /// The name the function is registered and called under. It must be unique in the program.
    public let name: String
    @usableFromInline
    let body: Body
    /// How a child process runs this function from encoded arguments.
    public let registration: FunctionRegistration

    @usableFromInline
    enum Body: Sendable {
        case sync(@Sendable (Arguments) throws -> Result)
        case async(@Sendable (Arguments) async throws -> Result)
    }

    // The initializers are inlinable so that the registration's closures — which decode, run and encode every
    // call a child serves, and loop over the calls of a chunk — are specialized for the concrete argument and
    // result types where the function is declared, rather than run as generic code.

    /// A function whose body runs to completion without suspending.
    ///
    /// In a child process such a body runs directly on the thread that reads calls, with no task created per
    /// call: the fastest path.
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable (Arguments) throws -> Result) {
        self.name = name
        self.body = .sync(body)
        self.registration = FunctionRegistration(name: name, body: .sync(body))
    }

    /// A function with an `async` body.
    ///
    /// In a child process the body runs as a task on the child's serving thread; calls that suspend (network,
    /// sleeps) overlap, as coroutines do.
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable (Arguments) async throws -> Result) {
        self.name = name
        self.body = .async(body)
        self.registration = FunctionRegistration(name: name, body: .async(body))
    }

    /// Runs the body in this process.
    public func callAsFunction(_ arguments: Arguments) async throws -> Result {
        switch body {
        case .sync(let body): try body(arguments)
        case .async(let body): try await body(arguments)
        }
    }

}

extension Function where Arguments == Empty {
    /// A function without arguments.
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable () throws -> Result) {
        self.init(name) { (_: Empty) in try body() }
    }

    /// A function without arguments, with an `async` body.
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable () async throws -> Result) {
        self.init(name) { (_: Empty) async throws in try await body() }
    }

    /// Runs the body in this process.
    public func callAsFunction() async throws -> Result {
        try await callAsFunction(Empty())
    }
}

extension Function where Result == Empty {
    /// A function without a result.
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable (Arguments) throws -> Void) {
        self.init(name) { (arguments: Arguments) throws -> Empty in
            try body(arguments)
            return Empty()
        }
    }

    /// A function without a result, with an `async` body.
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable (Arguments) async throws -> Void) {
        self.init(name) { (arguments: Arguments) async throws -> Empty in
            try await body(arguments)
            return Empty()
        }
    }
}

extension Function where Arguments == Empty, Result == Empty {
    /// A function without arguments or result.
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable () throws -> Void) {
        self.init(name) { (_: Empty) throws -> Empty in
            try body()
            return Empty()
        }
    }

    /// A function without arguments or result, with an `async` body.
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable () async throws -> Void) {
        self.init(name) { (_: Empty) async throws -> Empty in
            try await body()
            return Empty()
        }
    }
}

/// The argument of a function that takes none and the result of one that returns nothing.
@frozen
public struct Empty: Codable, Sendable, Hashable {
    /// The empty value.
    @inlinable
    public init() {}
}

/// A registered function of any argument and result type, as ``Crew/bootstrap(_:options:)-(AnyFunction...,_)``
/// takes them. ``Function`` is the conforming type.
public protocol AnyFunction: Sendable {
    /// The name the function is registered under.
    var name: String { get }
    /// How a child process runs the function from encoded arguments.
    var registration: FunctionRegistration { get }
}

/// What a child process needs to run a registered function: its name and its body behind the wire codec.
/// Made by ``Function``; opaque to everything else.
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
    init<A, R>(name: String, body: Function<A, R>.Body) {
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
