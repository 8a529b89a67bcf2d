import ArgumentParser
import Crew
public import CrewQueue
import FoundationEssentials
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

#if PostgreSQL
    import CrewPostgres
#endif
#if SQLite
    import CrewSQLite
#endif

#if canImport(Glibc)
    import Glibc
#endif

// The durable queue's command line, as a library: a user's own executable embeds it, because only that program
// knows its registered tasks.
//
//     @main struct App {
//         static func main() async {
//             try! Crew.bootstrap(Work.all)           // children of `-P prefork` serve the functions
//             await CrewCLI.main(tasks: [Jobs.resize, Jobs.mail])
//         }
//     }
//
// then `app worker -P prefork -c 4`, `app enqueue resize --args '"a.jpg"'`, `app inspect`, ...

/// The durable queue's command line: `worker`, `enqueue`, `inspect`, `result`, `retry`, `cancel`, `purge`.
///
/// A command line that does not parse (an unknown option, a value that is not a number) ends with the parser's
/// message, the usage and status 64. A command that refuses its input or fails prints one line,
/// `program: error: ...`, and ends with 65 (refused input: an unknown task, arguments that do not decode as the
/// task's, a negative countdown, a bad batch line), 66 (no such job, no such batch file), 69 (the broker cannot be
/// opened or reached) or 1 (anything else).
public enum CrewCLI {
    /// Parses `arguments` (the process's when nil), runs the command and exits with its status.
    public static func main(tasks: [any AnyQueueTask], arguments: [String]? = nil) async {
        CLIContext.tasks.withLock { $0 = tasks }
        var command: any ParsableCommand
        do {
            command = try QueueCommand.parseAsRoot(arguments)
        } catch {
            QueueCommand.exit(withError: error)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error where error is ExitCode || error is CleanExit {
            QueueCommand.exit(withError: error)
        } catch {
            let failure = CLIError(error)
            var line = "\(programName): error: \(failure.message)\n"
            line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
            exit(failure.status.rawValue)
        }
    }

    /// The name the program was started by, for its usage and its error lines.
    static var programName: String {
        let path = CommandLine.arguments.first ?? "crew"
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return name.isEmpty ? "crew" : name
    }

    /// Runs a command other than `worker` and returns what it would print (for tests and for embedding).
    public static func output(tasks: [any AnyQueueTask], arguments: [String]) async throws -> String {
        CLIContext.tasks.withLock { $0 = tasks }
        let command = try QueueCommand.parseAsRoot(arguments)
        guard let reporting = command as? any ReportingCommand else {
            throw ValidationError("\(arguments.first ?? "") does not report; run it with CrewCLI.main")
        }
        return try await reporting.report()
    }

    /// Opens the broker a URL names: `sqlite:///absolute/path.db`, `sqlite://relative.db`,
    /// `postgres://user:password@host:port/database` (or `…/database?host=/socket/directory`) or `memory://`.
    public static func broker(_ url: String) async throws -> any QueueBroker {
        if url == "memory://" { return MemoryBroker() }
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            #if PostgreSQL
                return try await PostgresBroker.connect(url: url)
            #else
                throw CLIError(
                    .refused, "this program was built without Crew's PostgreSQL trait: \(url) cannot be used")
            #endif
        }
        guard url.hasPrefix("sqlite://") else {
            throw CLIError(
                .refused,
                "unknown broker \(url): use sqlite:///path/to/crew.db (the default), postgres://user@host/database or memory://"
            )
        }
        let path = String(url.dropFirst("sqlite://".count))
        guard !path.isEmpty else { throw CLIError(.refused, "the broker URL \(url) names no file") }
        #if SQLite
            // Opening the file migrates it, which may wait for another process's write lock: not on a cooperative
            // thread.
            return try await Crew.blocking { try SQLiteBroker(path: path) }
        #else
            throw CLIError(.refused, "this program was built without Crew's SQLite trait: \(url) cannot be used")
        #endif
    }
}

/// The tasks of the program that embeds the command line.
enum CLIContext {
    static let tasks = Mutex<[any AnyQueueTask]>([])
}
