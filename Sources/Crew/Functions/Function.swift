extension Crew {
    /// A function that can run in another process: a stable name and a typed body.
    ///
    /// Closures cannot cross a process boundary, so work that may run in a child process is registered under a
    /// name. The parent sends the name and the encoded arguments; the child, which is the same program, looks the
    /// name up in its own registry and runs the body.
    ///
    /// ```swift
    /// enum Work {
    ///     static let square = Crew.Function("square") { (n: Int) in n * n }
    ///     static let fetch = Crew.Function("fetch") { (url: String) async throws -> Int in try await download(url) }
    ///     static let ping = Crew.Function("ping") { () -> String in "pong" }
    /// }
    /// ```
    ///
    /// Register every function with ``Crew/bootstrap(_:options:)-(Crew.AnyFunction...,_)`` at the top of `main`.
    /// Arguments and results are `Codable`; pass several arguments as a tuple-like struct. A body without
    /// arguments takes ``Crew/Empty``, one without a result returns ``Crew/Empty``.
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
}

extension Crew.Function where Arguments == Crew.Empty {
    /// A function without arguments.
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable () throws -> Result) {
        self.init(name) { (_: Crew.Empty) in try body() }
    }

    /// A function without arguments, with an `async` body.
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable () async throws -> Result) {
        self.init(name) { (_: Crew.Empty) async throws in try await body() }
    }

    /// Runs the body in this process.
    public func callAsFunction() async throws -> Result {
        try await callAsFunction(Crew.Empty())
    }
}

extension Crew.Function where Result == Crew.Empty {
    /// A function without a result.
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable (Arguments) throws -> Void) {
        self.init(name) { (arguments: Arguments) throws -> Crew.Empty in
            try body(arguments)
            return Crew.Empty()
        }
    }

    /// A function without a result, with an `async` body.
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable (Arguments) async throws -> Void) {
        self.init(name) { (arguments: Arguments) async throws -> Crew.Empty in
            try await body(arguments)
            return Crew.Empty()
        }
    }
}

extension Crew.Function where Arguments == Crew.Empty, Result == Crew.Empty {
    /// A function without arguments or result.
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable () throws -> Void) {
        self.init(name) { (_: Crew.Empty) throws -> Crew.Empty in
            try body()
            return Crew.Empty()
        }
    }

    /// A function without arguments or result, with an `async` body.
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable () async throws -> Void) {
        self.init(name) { (_: Crew.Empty) async throws -> Crew.Empty in
            try await body()
            return Crew.Empty()
        }
    }
}
