import ArgumentParser
import Crew
import CrewQueue

/// What a command refuses or fails with once its command line has parsed: one line on standard error (no usage),
/// and an exit status of its own (those of BSD's sysexits.h, as other command-line tools use them).
struct CLIError: Error, CustomStringConvertible {
    /// The exit statuses a command ends with. A command line that does not parse (an unknown option, a value that
    /// is not a number) ends with 64, after the parser's message and the usage.
    enum Status: Int32 {
        /// Input the command refuses: an unknown task, arguments that do not decode as the task's, a negative
        /// countdown, a bad line of a batch (EX_DATAERR).
        case refused = 65
        /// What it was asked about does not exist: a job id, a batch file (EX_NOINPUT).
        case notFound = 66
        /// The broker could not be opened or reached (EX_UNAVAILABLE).
        case unavailable = 69
        /// Anything else.
        case failed = 1
    }

    var status: Status
    var message: String

    var description: String { message }

    init(_ status: Status, _ message: String) {
        self.status = status
        self.message = message
    }

    /// The one-line report of an error a command threw.
    init(_ error: any Error) {
        switch error {
        case let error as CLIError:
            self = error
        case let error as ValidationError:
            self.init(.refused, error.message)
        case let error as BrokerError:
            let status: Status =
                switch error.code {
                case .invalidArgument, .duplicateJob: .refused
                case .storage, .unavailable, .incompatibleSchema: .unavailable
                default: .failed
                }
            self.init(status, String(describing: error))
        case let error as CrewError:
            let status: Status =
                switch error.code {
                case .invalidArgument, .decodingFailed, .encodingFailed, .frameTooLarge: .refused
                default: .failed
                }
            self.init(status, "\(error.code): \(error.message)")
        default:
            self.init(.failed, String(describing: error))
        }
    }
}
