import CCrewShims
public import CrewQueue
import FoundationEssentials
import GRDB
import GRDBSQLite
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

extension SQLiteBroker {
    /// Wake-ups of `signal` so far, counted in the wake file that every process using this database shares.
    public func signalMark(_ signal: BrokerSignal) -> UInt64 {
        wake.mark(Self.word(signal))
    }

    /// Returns once a process using this database raised `signal` after `mark`, or after `timeout`.
    public func awaitSignal(_ signal: BrokerSignal, after mark: UInt64, timeout: Duration) async {
        await wake.wait(Self.word(signal), after: mark, timeout: timeout)
    }

    static func word(_ signal: BrokerSignal) -> WakeFile.Word {
        switch signal {
        case .jobs: .jobs
        case .results: .results
        }
    }
}
