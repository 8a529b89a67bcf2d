import CCrewShims
public import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Crew: Python's multiprocessing, for Swift on Linux.
///
/// A `Crew` value is the registry of functions that child processes may run, plus how to start those
/// children. Make it once, at the top of `main`, with ``bootstrap(_:options:)-(Crew.AnyFunction...,_)``: in a
/// child process that call serves the parent and never returns; in the parent it returns the `Crew`.
///
/// ```swift
/// @main struct App {
///     static func main() async throws {
///         let crew = try Crew.bootstrap(Work.square, Work.fetch)   // Python's `if __name__ == "__main__":`
///         let p = Crew.Process(target: Work.square, args: 12)
///         try p.start()
///         print(try await p.value)                                 // 144
///     }
/// }
/// ```
///
/// `Crew.Process` and the other types named like Foundation's live inside `Crew`, so that `import Foundation`
/// beside `import Crew` is never ambiguous.
public struct Crew: Sendable {
    /// How children are started and what they may send.
    public struct Options: Sendable {
        /// The program a child runs. `/proc/self/exe` (this same program) unless set; a test bundle sets it
        /// to a helper executable (see `CrewTesting`).
        public var executable: String
        /// The child's arguments, `argv[0]` included; this program's own arguments when nil, so that `main`
        /// reaches the same `bootstrap` call in the child.
        public var arguments: [String]?
        /// Variables added to (or replacing those in) the environment a child inherits.
        public var environment: [String: String]
        /// The largest message, in bytes, either side accepts. A larger one fails with
        /// ``CrewError/Code/frameTooLarge``.
        public var maxFrameSize: Int
        /// How many of the last bytes of each child's standard error are kept to explain a crash.
        public var stderrTailBytes: Int
        /// How long, in microseconds, a side that has just sent something keeps polling for the answer before
        /// it sleeps. Waking a sleeping thread on another CPU can cost more than the spin on virtual machines;
        /// a short spin saves it for calls that follow each other closely, at the price of that much CPU time
        /// per wait (crew-bench measures the rows that spin both ways, with the CPU each costs). 0 turns spinning
        /// off; it is always off on a machine with one CPU. It applies to waits on a ``Crew/Queue``, a
        /// ``Crew/Connection``,
        /// a ``Crew/Process``'s answer and a ``Crew/Thread``'s join; ``ProcessPool`` workers never spin.
        public var spinMicroseconds: Int
        /// How children start: a new `posix_spawn` of the program each (the default), or forked by a fork server.
        public var startMethod: StartMethod
        /// Where Crew logs child starts and deaths (at `debug` and `notice`); silent by default.
        public var logger: Logger
        /// How many bytes of freed memory malloc keeps for reuse, set by `bootstrap` in this process and in its
        /// children; nil leaves malloc's own settings alone.
        ///
        /// A pool's parent and workers encode, decode and gather buffers of up to a few megabytes, one after
        /// another. With glibc's defaults each such buffer is a fresh mapping, or heap that was just handed back
        /// to the system, and every 4 KiB page of it faults on first touch, which can take most of a large `map`'s
        /// time (BENCHMARKS.md has the measurement). With this set, allocations up to this size (at most 32 MiB) come
        /// from the heap,
        /// and the heap is trimmed only when more than this many bytes at its top are free. The price is that
        /// much memory kept by a process after a large job. 64 MiB by default.
        public var keepFreedMemory: Int?
        /// Whether a child that traps runs Swift's backtracer before it dies. Off by default: the backtracer
        /// symbolicates every frame of every thread, which takes seconds of CPU time before the parent can learn
        /// of the death, where without it a trap ends the child at once. Turn it on to debug a crash: the
        /// backtrace then goes to the child's standard error (of which ``CrewError/lastStderr`` keeps the tail).
        /// A `SWIFT_BACKTRACE` in ``environment`` or in this process's own environment takes precedence.
        public var crashBacktraces: Bool

        /// The variables a child's environment gets on top of this process's: ``environment``, and Swift's
        /// backtracer turned off unless ``crashBacktraces`` asks for it.
        var childEnvironment: [String: String] {
            var variables = environment
            if !crashBacktraces && variables["SWIFT_BACKTRACE"] == nil && getenv("SWIFT_BACKTRACE") == nil {
                variables["SWIFT_BACKTRACE"] = "enable=no"
            }
            return variables
        }

        /// Options with defaults: this program as the child, 256 MiB frames, 8 KiB of standard error kept,
        /// 50 µs of spinning, 64 MiB of freed memory kept for reuse, no backtraces from crashing children.
        public init(
            executable: String = "/proc/self/exe",
            arguments: [String]? = nil,
            environment: [String: String] = [:],
            maxFrameSize: Int = 256 << 20,
            stderrTailBytes: Int = 8 << 10,
            spinMicroseconds: Int = 50,
            startMethod: StartMethod = .spawn,
            logger: Logger = Logger(label: "crew", factory: { _ in SwiftLogNoOpLogHandler() }),
            keepFreedMemory: Int? = 64 << 20,
            crashBacktraces: Bool = false
        ) {
            self.crashBacktraces = crashBacktraces
            self.keepFreedMemory = keepFreedMemory
            self.spinMicroseconds = spinMicroseconds
            self.startMethod = startMethod
            self.executable = executable
            self.arguments = arguments
            self.environment = environment
            self.maxFrameSize = maxFrameSize
            self.stderrTailBytes = stderrTailBytes
            self.logger = logger
        }
    }

    /// How child processes are started, as Python's `multiprocessing` start methods.
    public enum StartMethod: Sendable, Hashable {
        /// Each child is this program started anew with `posix_spawn`: a clean process, which pays the program's
        /// own start (its shared libraries loaded; much less for a static executable). The default.
        case spawn
        /// Children are forked by a fork server: this program started once more, which stops in its
        /// `Crew.bootstrap` before any thread starts and forks a child on request, without the program's start.
        /// The parent may have any number of threads; only the single-threaded fork server ever forks. The
        /// fork server is started on first use and ends with the parent.
        case forkserver
    }

    let functions: [String: FunctionRegistration]
    /// How this crew starts children.
    public let options: Options

    /// The names of the registered functions, sorted.
    public var functionNames: [String] { functions.keys.sorted() }

    /// True if a function is registered under `name`.
    public func contains(_ name: String) -> Bool { functions[name] != nil }

    init(functions: [String: FunctionRegistration], options: Options) {
        self.functions = functions
        self.options = options
    }

    /// This crew's functions with changed options: `crew.withOptions { $0.spinMicroseconds = 0 }`.
    public func withOptions(_ change: (inout Options) -> Void) -> Crew {
        var options = self.options
        change(&options)
        return Crew(functions: functions, options: options)
    }

    /// Registers `functions` and, in a child process, serves the parent: Python's
    /// `if __name__ == "__main__":`.
    ///
    /// Call it first thing in `main`, before anything with side effects: a child is this same program started
    /// again, and runs `main` until it reaches this call. In a child it never returns (the child exits when
    /// its parent is done with it or dies). In the parent it returns the registry, which also becomes
    /// ``current``, the crew that ``Crew/Process`` uses by default.
    ///
    /// - Throws: ``CrewError/Code/duplicateFunction`` if two functions share a name.
    @discardableResult
    public static func bootstrap(_ functions: any AnyFunction..., options: Options = Options()) throws -> Crew {
        try bootstrap(functions, options: options)
    }

    /// Registers `functions` and, in a child process, serves the parent. See
    /// ``bootstrap(_:options:)-(Crew.AnyFunction...,_)``.
    @discardableResult
    public static func bootstrap(_ functions: [any AnyFunction], options: Options = Options()) throws -> Crew {
        var table: [String: FunctionRegistration] = [:]
        for function in functions {
            guard table[function.name] == nil else {
                let error = CrewError(
                    .duplicateFunction,
                    "two functions are registered under the name \"\(function.name)\"",
                    function: function.name
                )
                if ChildRuntime.isChild { ChildRuntime.fail(error.description) }
                throw error
            }
            table[function.name] = function.registration
        }
        let crew = Crew(functions: table, options: options)
        if let keep = options.keepFreedMemory, keep >= 0 { _ = crew_keep_freed_memory(UInt(keep)) }
        _current.withLock { $0 = crew }
        if let marker = ChildRuntime.takeMarker() {
            ChildRuntime.serve(crew: crew, marker: marker)  // never returns
        }
        return crew
    }

    private static let _current = Mutex<Crew?>(nil)

    /// The spin time in nanoseconds, 0 on a one-CPU machine (where spinning only delays the other side).
    static func effectiveSpinNanoseconds(_ options: Options) -> UInt64 {
        guard options.spinMicroseconds > 0, onlineProcessorCount > 1 else { return 0 }
        return UInt64(min(options.spinMicroseconds, 1_000_000)) * 1000
    }

    static let onlineProcessorCount: Int = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))

    /// The crew made by the latest ``bootstrap(_:options:)-(Crew.AnyFunction...,_)`` in this process, if any.
    public static var current: Crew? { _current.withLock { $0 } }

    /// True in a process that Crew started as a child (before and while it serves).
    public static var isChildProcess: Bool { ChildRuntime.isChild }
}
