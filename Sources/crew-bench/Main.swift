import ArgumentParser
import Crew

@main
enum Main {
    static func main() async throws {
        // A child of the benchmark is this program again: register what children run, before anything else.
        try Crew.bootstrap(BenchFunctions.all)
        await CrewBench.main(nil)
    }
}
