import ArgumentParser
import Crew
import CrewQueue
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

struct EnqueueCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Enqueues a task by name, or the jobs of a batch file in one transaction.",
        discussion: """
            Every job is checked before any is stored: its task must be one this program knows, its arguments \
            must decode as that task's, and a countdown must be 0 or more seconds. A batch file has one job per \
            line, as JSON: {"task": "name", "args": ..., "countdown": seconds, "queue": "name"} (all but "task" \
            optional).
            """
    )

    @Argument(help: "The task's name (not with --batch).")
    var name: String?

    @Option(help: "The arguments, as JSON.")
    var args = "null"

    // Read as given, so that `--countdown -5` is a negative countdown (and refused), not a missing value.
    @Option(parsing: .unconditional, help: "Run it after this many seconds (0 or more).")
    var countdown: Double?

    @Option(help: "The queue (the task's own unless given).")
    var queue: String?

    @Option(help: "A file of jobs as JSON lines, or - for standard input: all are enqueued, or none.")
    var batch: String?

    @OptionGroup var options: BrokerOptions

    func validate() throws {
        guard (name != nil) != (batch != nil) else {
            throw ValidationError("give a task's name or --batch FILE (one of the two)")
        }
        if batch != nil && (args != "null" || countdown != nil || queue != nil) {
            throw ValidationError("--args, --countdown and --queue go in the batch file's lines, not beside --batch")
        }
    }

    func report() async throws -> String {
        let jobs: [NewJob]
        if let batch {
            // Standard input or a slow file may keep the read waiting: not on a cooperative thread.
            let text = try await Crew.blocking { try Self.readBatch(batch) }
            jobs = try Self.jobs(inBatch: text)
        } else {
            jobs = [try Self.job(name: name ?? "", arguments: args, countdown: countdown, queue: queue)]
        }
        let broker = try await options.open()
        try await broker.enqueue(jobs)
        if options.json {
            return name != nil ? "{\"id\":\"\(jobs[0].id)\"}" : try encodeJSON(["ids": jobs.map { "\($0.id)" }])
        }
        return name != nil ? "enqueued \(jobs[0].name) as \(jobs[0].id)" : "enqueued \(jobs.count) job(s)"
    }

    /// One job, checked: a known task, arguments that decode as its own, a countdown of 0 or more seconds.
    static func job(name: String, arguments: String, countdown: Double?, queue: String?) throws -> NewJob {
        let tasks = CLIContext.tasks.withLock { $0 }
        guard let task = tasks.first(where: { $0.name == name }) else {
            let known = tasks.map(\.name).sorted().joined(separator: ", ")
            throw CLIError(
                .refused,
                "no task named \"\(name)\" is known to this program" + (known.isEmpty ? "" : " (it knows \(known))"))
        }
        try task.check(arguments: arguments)
        if let countdown, !(countdown >= 0) || !countdown.isFinite {
            throw CLIError(.refused, "a countdown is a number of seconds, 0 or more, not \(countdown)")
        }
        let now = Date()
        let runAt = countdown.map { now.addingTimeInterval($0) }
        let options = task.options
        return NewJob(
            name: name,
            arguments: arguments,
            queue: queue ?? options.queue,
            priority: options.priority,
            maxAttempts: options.maxRetries + 1,
            runAt: runAt,
            expiresAt: options.expires.map { (runAt ?? now).addingTimeInterval(JobRules.seconds($0)) },
            resultTTL: options.resultTTL
        )
    }

    /// A line of a batch file.
    struct Line: Decodable {
        var task: String
        var args: JSONValue?
        var countdown: Double?
        var queue: String?
    }

    /// The jobs of a batch file's text, every line checked (the first bad one refuses the whole batch).
    static func jobs(inBatch text: String) throws -> [NewJob] {
        var jobs: [NewJob] = []
        let decoder = JSONDecoder()
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard !line.allSatisfy(\.isWhitespace) else { continue }
            do {
                let entry: Line
                do {
                    entry = try decoder.decode(Line.self, from: Data(line.utf8))
                } catch {
                    throw CLIError(.refused, "not a job: \(error)")
                }
                // A misspelt key would otherwise be ignored (a job meant for later would run now).
                if case .object(let keys) = try decoder.decode(JSONValue.self, from: Data(line.utf8)) {
                    let unknown = Set(keys.keys).subtracting(["task", "args", "countdown", "queue"]).sorted()
                    guard unknown.isEmpty else {
                        throw CLIError(
                            .refused,
                            "unknown key(s) \(unknown.joined(separator: ", ")); a job has task, "
                                + "args, countdown and queue")
                    }
                }
                jobs.append(
                    try job(
                        name: entry.task, arguments: try (entry.args ?? .null).text, countdown: entry.countdown,
                        queue: entry.queue))
            } catch {
                let failure = CLIError(error)
                throw CLIError(failure.status, "line \(index + 1) of the batch: \(failure.message)")
            }
        }
        guard !jobs.isEmpty else { throw CLIError(.refused, "the batch holds no job") }
        return jobs
    }

    /// The text of a batch file, or of standard input for `-`.
    static func readBatch(_ path: String) throws -> String {
        let fd = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw CLIError(
                code == ENOENT ? .notFound : .failed,
                "cannot read the batch \(path): \(String(cString: strerror(code)))")
        }
        defer { if fd != 0 { close(fd) } }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                bytes += chunk[0..<n]
            } else if n == 0 {
                break
            } else {
                let code = errno
                if code != EINTR {
                    throw CLIError(.failed, "cannot read the batch \(path): \(String(cString: strerror(code)))")
                }
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw CLIError(.refused, "the batch \(path) is not UTF-8 text")
        }
        return text
    }
}
