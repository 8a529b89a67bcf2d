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

/// Options every command takes.
struct BrokerOptions: ParsableArguments {
    @Option(
        help: "The broker: sqlite:///path/to/crew.db, sqlite://relative.db, postgres://user@host/database or memory://."
    )
    var broker = "sqlite://crew.db"

    @Flag(help: "Print JSON for scripts instead of text for people.")
    var json = false

    func open() async throws -> any QueueBroker {
        try await CrewCLI.broker(broker)
    }
}
