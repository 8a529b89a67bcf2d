import CCrewShims
public import FoundationEssentials
import Synchronization

// The durable queue's data: jobs as a broker stores them. Arguments and results are JSON text, so that rows stay
// readable and another language can enqueue by name.

/// A job's id: a UUID, as text (new ids are version 7: time-ordered, so that a broker's index of ids grows at its
/// end).
public struct JobID: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The id's text.
    public let rawValue: String

    /// An id from its text.
    public init(_ rawValue: String) {
        self.rawValue = rawValue
    }

    /// A new, unique id: a UUID version 7 (48 bits of Unix milliseconds, then 74 random bits).
    public static func make() -> JobID {
        let (first, second) = randomBits.withLock { $0.next() }
        let milliseconds = UInt64(Date().timeIntervalSince1970 * 1000)
        let high = (milliseconds << 16) | 0x7000 | (first & 0x0FFF)
        let low = (second & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(36)
        for (index, word) in [high, low].enumerated() {
            for nibble in 0..<16 {
                let position = index * 16 + nibble
                if position == 8 || position == 12 || position == 16 || position == 20 {
                    text.append(UInt8(ascii: "-"))
                }
                text.append(digits[Int((word >> UInt64(60 - nibble * 4)) & 0xF)])
            }
        }
        return JobID(String(decoding: text, as: UTF8.self))
    }

    /// The id's text.
    public var description: String { rawValue }
}

/// The system's random bits, taken 4 KiB at a time (one `getrandom` call per 256 ids instead of two per id).
private struct RandomPool {
    private var words = [UInt64](repeating: 0, count: 512)
    private var used = 512

    mutating func next() -> (UInt64, UInt64) {
        if used + 2 > words.count {
            let filled = words.withUnsafeMutableBytes { buffer in
                crew_random_bytes(buffer.baseAddress, UInt(buffer.count))
            }
            if filled != words.count * 8 {
                // Not filled at once (an old kernel, a signal): one word at a time from the standard library.
                var generator = SystemRandomNumberGenerator()
                for index in words.indices { words[index] = generator.next() }
            }
            used = 0
        }
        defer { used += 2 }
        return (words[used], words[used + 1])
    }
}

private let randomBits = Mutex(RandomPool())

/// Where a job is in its life.
///
/// `scheduled` (waits for its time) → `available` → `running` → `succeeded`, or `retrying` (waits for its
/// backoff, then `available` again), or `failed`; `cancelled` and `expired` end it without running.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case scheduled, available, running, succeeded, retrying, failed, cancelled, expired

    /// True for states a job never leaves.
    public var isFinal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled, .expired: true
        default: false
        }
    }
}

/// A job to enqueue.
public struct NewJob: Sendable {
    /// Its id (a new one unless given).
    public var id: JobID
    /// The registered function's name.
    public var name: String
    /// The arguments, as JSON.
    public var arguments: String
    /// The queue it waits in.
    public var queue: String
    /// Higher runs first.
    public var priority: Int
    /// How many times it may be tried, the first included.
    public var maxAttempts: Int
    /// Not before this time (now when nil).
    public var runAt: Date?
    /// Not after this time: it expires instead of running.
    public var expiresAt: Date?
    /// How long the job (with its result or errors) is kept once it has ended; for ever when nil.
    public var resultTTL: Duration?

    /// A job for `name` with JSON `arguments`.
    public init(
        id: JobID = .make(),
        name: String,
        arguments: String,
        queue: String = "default",
        priority: Int = 0,
        maxAttempts: Int = 1,
        runAt: Date? = nil,
        expiresAt: Date? = nil,
        resultTTL: Duration? = nil
    ) {
        self.id = id
        self.name = name
        self.arguments = arguments
        self.queue = queue
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.runAt = runAt
        self.expiresAt = expiresAt
        self.resultTTL = resultTTL
    }
}

/// Why one attempt of a job failed.
public struct AttemptError: Sendable, Codable, Equatable {
    /// Which attempt (1 for the first).
    public var attempt: Int
    /// What went wrong, in words.
    public var message: String
    /// The error's type, when there was one.
    public var type: String?
    /// When.
    public var at: Date

    /// An attempt's error.
    public init(attempt: Int, message: String, type: String? = nil, at: Date = Date()) {
        self.attempt = attempt
        self.message = message
        self.type = type
        self.at = at
    }
}

/// A job as the broker stores it.
public struct JobRecord: Sendable, Codable, Equatable {
    /// Its id.
    public var id: JobID
    /// The registered function's name.
    public var name: String
    /// The arguments, as JSON.
    public var arguments: String
    /// The queue it waits in.
    public var queue: String
    /// Higher runs first.
    public var priority: Int
    /// Where it is in its life.
    public var state: JobState
    /// Attempts started so far.
    public var attempts: Int
    /// How many attempts it may have.
    public var maxAttempts: Int
    /// When it may run (for `scheduled` and `retrying` jobs: when it becomes available).
    public var runAt: Date
    /// When it expires instead of running, if ever.
    public var expiresAt: Date?
    /// Until when its worker holds it (for `running` jobs).
    public var leaseUntil: Date?
    /// The worker running it, or that ran it last.
    public var worker: String?
    /// The result, as JSON, once it has succeeded.
    public var result: String?
    /// Every failed attempt, oldest first.
    public var errors: [AttemptError]
    /// When it was enqueued.
    public var createdAt: Date
    /// When it reached a final state.
    public var finishedAt: Date?

    /// A record with every field given (for brokers).
    public init(
        id: JobID, name: String, arguments: String, queue: String, priority: Int, state: JobState, attempts: Int,
        maxAttempts: Int, runAt: Date, expiresAt: Date?, leaseUntil: Date?, worker: String?, result: String?,
        errors: [AttemptError], createdAt: Date, finishedAt: Date?
    ) {
        self.id = id
        self.name = name
        self.arguments = arguments
        self.queue = queue
        self.priority = priority
        self.state = state
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.runAt = runAt
        self.expiresAt = expiresAt
        self.leaseUntil = leaseUntil
        self.worker = worker
        self.result = result
        self.errors = errors
        self.createdAt = createdAt
        self.finishedAt = finishedAt
    }
}

/// How many jobs of a queue are in each state.
public struct QueueCounts: Sendable, Codable, Equatable {
    /// The queue's name.
    public var queue: String
    /// Jobs by state (states with none are left out).
    public var counts: [JobState: Int]

    /// Counts for `queue`.
    public init(queue: String, counts: [JobState: Int]) {
        self.queue = queue
        self.counts = counts
    }
}

/// Errors of the durable queue.
public struct BrokerError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What kind of failure.
    public enum Code: String, Sendable {
        /// The database is not a Crew database, or is from a newer Crew.
        case incompatibleSchema
        /// The database could not be opened or written (read-only, locked, full disk ...).
        case storage
        /// An argument is out of range.
        case invalidArgument
        /// A job id that is already taken.
        case duplicateJob
        /// The broker's server cannot be reached, refused the credentials, or went away.
        case unavailable
    }

    /// What kind of failure.
    public var code: Code
    /// In words.
    public var message: String

    /// An error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The code and message.
    public var description: String { "BrokerError.\(code.rawValue): \(message)" }
}
