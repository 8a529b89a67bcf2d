import CCrewShims
import CrewQueue
import FoundationEssentials
import GRDB
import GRDBSQLite
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

extension SQLiteBroker {
    static func brokerError(_ error: DatabaseError, path: String) -> BrokerError {
        switch error.resultCode {
        case .SQLITE_NOTADB: BrokerError(.incompatibleSchema, "\(path) is not an SQLite database")
        case .SQLITE_FULL: BrokerError(.storage, "the disk is full: nothing was written (\(path))")
        case .SQLITE_READONLY: BrokerError(.storage, "\(path) is read-only")
        case .SQLITE_BUSY, .SQLITE_LOCKED: BrokerError(.storage, "\(path) is locked by another program")
        case .SQLITE_CONSTRAINT: BrokerError(.duplicateJob, "a job with that id already exists")
        default: BrokerError(.storage, "\(path): \(error.message ?? "\(error)")")
        }
    }
}
