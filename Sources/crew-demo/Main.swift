import ArgumentParser
import Crew
import CrewCLI

@main
enum Main {
    static func main() async throws {
        // Python's `if __name__ == "__main__":` — first thing, before anything prints: a child process is this
        // same program started again, and it stops here to serve its parent.
        #if HTTP
            try Crew.bootstrap(Twins.functions + Seed33.functions + Seed32.functions)
        #else
            try Crew.bootstrap(Twins.functions + Seed33.functions)
        #endif
        // The durable queue's commands (seed 3.3): `crew-demo worker -P coroutines -c 10 -l info`, ...
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let first = arguments.first, Seed33.commands.contains(first) {
            await CrewCLI.main(tasks: Seed33.tasks, arguments: arguments)
            return
        }
        await CrewDemo.main(nil)
    }
}
