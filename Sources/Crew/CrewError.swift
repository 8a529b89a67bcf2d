/// An error from Crew: what went wrong (``code``), in words (``message``), and, when a child process was
/// involved, which one and how it ended.
///
/// Match on ``code`` (`error.code == .workerCrashed`); new codes may be added in any release, so a `switch`
/// over codes needs a `default`.
public struct CrewError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure a ``CrewError`` is. New codes may be added in any release.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case duplicateFunction, unknownFunction, notBootstrapped, workerCrashed, timedOut, alreadyStarted
            case notStarted, frameTooLarge, protocolError, encodingFailed, decodingFailed, remoteError, spawnFailed
            case systemCallFailed, cancelled, poolClosed, poolNotClosed, terminated, invalidArgument, notReady
            case empty, full, closed, ownerDied, brokenBarrier, crashLoop
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// Two registered functions share one name (thrown by ``Crew/bootstrap(_:options:)-([Crew.AnyFunction],_)``).
        public static let duplicateFunction = Code(.duplicateFunction)
        /// No function is registered under the name asked for, in the parent or in the child.
        public static let unknownFunction = Code(.unknownFunction)
        /// A child process was asked for before ``Crew/bootstrap(_:options:)-([Crew.AnyFunction],_)`` ran.
        public static let notBootstrapped = Code(.notBootstrapped)
        /// A child process died: it trapped, was killed by a signal, or exited before answering. The error
        /// carries its ``CrewError/pid``, ``CrewError/exitStatus`` and ``CrewError/lastStderr``.
        public static let workerCrashed = Code(.workerCrashed)
        /// A wait with a timeout ran out of time.
        public static let timedOut = Code(.timedOut)
        /// `Crew.Process.start()` was called twice.
        public static let alreadyStarted = Code(.alreadyStarted)
        /// A process was joined or asked for its value before `Crew.Process.start()`.
        public static let notStarted = Code(.notStarted)
        /// A message is larger than the frame size limit (``Crew/Options/maxFrameSize``).
        public static let frameTooLarge = Code(.frameTooLarge)
        /// The bytes between parent and child were not a valid frame or message.
        public static let protocolError = Code(.protocolError)
        /// Arguments or a result could not be encoded.
        public static let encodingFailed = Code(.encodingFailed)
        /// Arguments or a result could not be decoded as the function's types.
        public static let decodingFailed = Code(.decodingFailed)
        /// The function threw in the child. ``CrewError/remoteErrorType`` names the thrown error's type and
        /// ``CrewError/message`` describes it.
        public static let remoteError = Code(.remoteError)
        /// A child process could not be started.
        public static let spawnFailed = Code(.spawnFailed)
        /// A system call failed; ``CrewError/message`` names it and its `errno`.
        public static let systemCallFailed = Code(.systemCallFailed)
        /// The waiting task was cancelled.
        public static let cancelled = Code(.cancelled)
        /// Work was submitted to a pool after ``ProcessPool/close()`` or ``ProcessPool/terminate()`` (Python's
        /// `ValueError: Pool not running`).
        public static let poolClosed = Code(.poolClosed)
        /// ``ProcessPool/join()`` was called before ``ProcessPool/close()`` (Python's
        /// `ValueError: Pool is still running`).
        public static let poolNotClosed = Code(.poolNotClosed)
        /// The call was pending when ``ProcessPool/terminate()`` ended the pool.
        public static let terminated = Code(.terminated)
        /// A queue had nothing to get without waiting, or within the timeout (Python's `queue.Empty`).
        public static let empty = Code(.empty)
        /// A bounded queue had no room without waiting, or within the timeout (Python's `queue.Full`).
        public static let full = Code(.full)
        /// The other side is gone: every other process holding a queue has exited or closed it while this one
        /// waited, the peer of a ``Crew/Connection`` closed it or died, or this handle was closed. Python blocks
        /// forever here.
        public static let closed = Code(.closed)
        /// The process or thread that held a cross-process lock died holding it. The lock has been released;
        /// what it guarded may be half-updated.
        public static let ownerDied = Code(.ownerDied)
        /// A ``Crew/Barrier`` was broken (a wait timed out, or ``Crew/Barrier/abort()`` was called): Python's
        /// `BrokenBarrierError`.
        public static let brokenBarrier = Code(.brokenBarrier)
        /// An argument is out of range (a pool of no processes, a chunk size of 0).
        public static let invalidArgument = Code(.invalidArgument)
        /// A result was asked whether it succeeded before it was ready (Python's `ValueError`).
        public static let notReady = Code(.notReady)
        /// A ``Crew/Supervisor``'s workers kept dying before they were ready: it stopped rather than restart them
        /// for ever.
        public static let crashLoop = Code(.crashLoop)

        /// The code's name, such as `workerCrashed`.
        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// A description of the failure for people.
    public var message: String
    /// The child process involved, if any.
    public var pid: Int32?
    /// How the child process ended, if it did.
    public var exitStatus: Crew.ExitStatus?
    /// The last lines the child wrote to its standard error before it ended. A `fatalError` writes its
    /// `Fatal error: …` line there in every build; the runtime's own checks (an index out of range, a nil
    /// unwrapped) write theirs in debug builds only. A child running without Swift's backtracer (the default) adds
    /// a line naming the signal and the synchronous call it was running: `crew child: SIGILL (…) while running
    /// "square"`.
    public var lastStderr: String?
    /// The type name of the error the function threw in the child, for ``Code/remoteError``.
    public var remoteErrorType: String?
    /// The registered function involved, if any.
    public var function: String?
    /// For a pool call that failed with ``Code/workerCrashed``: what the call was doing when its worker died, and
    /// so whether it can have caused the death (nil for other errors).
    public var callState: CallState?
    /// The error the function threw, as itself, when its type is one the function declared
    /// (``Crew/Function/throwing(_:)``): the error a pool call, an ``AsyncResult`` or a ``Crew/Process``'s value
    /// rethrows in place of this one.
    public var thrown: (any Error & Sendable)? {
        get { thrownBox?.error }
        set { thrownBox = newValue.map(ThrownBox.init) }
    }
    private var thrownBox: ThrownBox?

    /// Holds ``thrown`` without taking part in equality or hashing (an error value need not be `Hashable`).
    private struct ThrownBox: Hashable, Sendable {
        let error: any Error & Sendable
        static func == (lhs: Self, rhs: Self) -> Bool { true }
        func hash(into hasher: inout Hasher) {}
    }

    /// What a caller is thrown for this failure: the declared error the function threw, or this error.
    @usableFromInline
    var rethrown: any Error { thrown ?? self }

    /// Creates an error.
    public init(
        _ code: Code,
        _ message: String,
        pid: Int32? = nil,
        exitStatus: Crew.ExitStatus? = nil,
        lastStderr: String? = nil,
        remoteErrorType: String? = nil,
        function: String? = nil
    ) {
        self.code = code
        self.message = message
        self.pid = pid
        self.exitStatus = exitStatus
        self.lastStderr = lastStderr
        self.remoteErrorType = remoteErrorType
        self.function = function
    }

    /// The code, the message, and the child's pid, exit status and last standard error lines when known.
    public var description: String {
        var text = "CrewError.\(code): \(message)"
        if let function { text += " [function \(function)]" }
        if let pid { text += " [pid \(pid)]" }
        if let exitStatus { text += " [\(exitStatus)]" }
        if let lastStderr, !lastStderr.isEmpty {
            text += "\n--- last standard error lines of the child ---\n" + lastStderr
        }
        return text
    }
}

extension Crew {
    /// How a child process ended. (Inside `Crew` because Swift Testing has an `ExitStatus` of its own.)
    public enum ExitStatus: Sendable, Hashable, CustomStringConvertible {
        /// It called `exit` (or returned from `main`) with this code.
        case exited(Int32)
        /// A signal ended it (`SIGKILL` is 9, `SIGTERM` 15; a trap in Swift code is `SIGILL` 4 or `SIGTRAP` 5).
        case signaled(Int32)

        /// Python's `exitcode`: the exit code, or minus the signal number.
        public var code: Int32 {
            switch self {
            case .exited(let code): code
            case .signaled(let signal): -signal
            }
        }

        /// True for `exit(0)`.
        public var isSuccess: Bool { self == .exited(0) }

        /// `exit code N` or `killed by signal N (NAME)`.
        public var description: String {
            switch self {
            case .exited(let code): "exit code \(code)"
            case .signaled(let signal): "killed by signal \(signal)\(signalName(signal).map { " (\($0))" } ?? "")"
            }
        }
    }
}

func signalName(_ signal: Int32) -> String? {
    switch signal {
    case 1: "SIGHUP"
    case 2: "SIGINT"
    case 3: "SIGQUIT"
    case 4: "SIGILL"
    case 5: "SIGTRAP"
    case 6: "SIGABRT"
    case 7: "SIGBUS"
    case 8: "SIGFPE"
    case 9: "SIGKILL"
    case 11: "SIGSEGV"
    case 13: "SIGPIPE"
    case 14: "SIGALRM"
    case 15: "SIGTERM"
    default: nil
    }
}
