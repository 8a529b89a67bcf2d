import ArgumentParser
import Crew
import CrewQueue
import FoundationEssentials
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

/// A command that produces text instead of running forever.
protocol ReportingCommand: AsyncParsableCommand {
    func report() async throws -> String
}

extension ReportingCommand {
    mutating func run() async throws {
        print(try await report())
    }
}
