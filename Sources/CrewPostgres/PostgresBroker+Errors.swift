import CrewQueue
import FoundationEssentials
import Logging
import PostgresNIO
import Synchronization

extension PostgresBroker {
    /// A broker error for what postgres-nio threw.
    static func brokerError(_ error: any Error, endpoint: String) -> BrokerError {
        if let error = error as? BrokerError { return error }
        if let error = error as? PostgresTransactionError {
            return brokerError(
                error.closureError ?? error.beginError ?? error.commitError ?? error.rollbackError ?? error,
                endpoint: endpoint)
        }
        guard let error = error as? PSQLError else {
            return BrokerError(.unavailable, "PostgreSQL at \(endpoint): \(error)")
        }
        let state = error.serverInfo?[.sqlState]
        let message = error.serverInfo?[.message] ?? "\(error.code)"
        switch state {
        case "23505": return BrokerError(.duplicateJob, "a job with that id already exists (\(message))")
        case "28P01", "28000":
            return BrokerError(.unavailable, "PostgreSQL at \(endpoint) refused the credentials: \(message)")
        case "3D000": return BrokerError(.unavailable, "PostgreSQL at \(endpoint): \(message)")
        case "53100":
            return BrokerError(.storage, "the database server's disk is full: nothing was written (\(message))")
        case "25006": return BrokerError(.storage, "the database is read-only: \(message)")
        case .some(let code) where code.hasPrefix("08") || code.hasPrefix("57P"):
            return BrokerError(.unavailable, "PostgreSQL at \(endpoint) went away: \(message)")
        case .some(let code):
            return BrokerError(.storage, "PostgreSQL at \(endpoint): \(message) (SQLSTATE \(code))")
        case nil:
            if let underlying = error.underlying {
                return BrokerError(.unavailable, "cannot reach PostgreSQL at \(endpoint): \(underlying)")
            }
            return BrokerError(.unavailable, "PostgreSQL at \(endpoint): \(error.code)")
        }
    }
}
