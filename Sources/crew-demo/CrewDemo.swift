import ArgumentParser
import Crew

/// The demo: Swift twins of the examples in the tutorial Crew grew from (Python's processes, threads and
/// coroutines).
struct CrewDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crew-demo",
        abstract: "Runs Crew's twins of the Python examples on processes, threads and coroutines.",
        discussion: """
            Seed 3.3 (Celery) is a worker and a producer: `crew-demo worker -P coroutines -c 10 -l info` in one
            terminal, `crew-demo produce` in another. The worker also takes `enqueue`, `inspect`, `result`, `retry`,
            `cancel` and `purge` (see `crew-demo worker --help`).
            """,
        subcommands: CrewDemo.subcommands,
        defaultSubcommand: All.self
    )

    #if HTTP
        static let subcommands: [any ParsableCommand.Type] = [All.self, List.self, Run.self, Produce.self, Serve.self]
    #else
        static let subcommands: [any ParsableCommand.Type] = [All.self, List.self, Run.self, Produce.self]
    #endif

    struct All: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lists the twins, then runs each of them.")

        func run() async throws {
            print(Twins.listing())
            for twin in Twins.all {
                print("")
                print("== \(twin.id) \(twin.title) ==")
                try await twin.run()
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lists the twins.")

        func run() {
            print(Twins.listing())
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Runs the named twins, as the seed prints them.")

        @Argument(help: "Twin ids, such as 1.1 (see `crew-demo list`).")
        var ids: [String]

        func validate() throws {
            for id in ids where Twins.named(id) == nil {
                throw ValidationError("no twin \(id); `crew-demo list` shows them")
            }
        }

        func run() async throws {
            for id in ids { try await Twins.named(id)!.run() }
        }
    }
}
