import ArgumentParser
import Crew

@main
enum Main {
    static func main() async throws {
        // Python's `if __name__ == "__main__":` — first thing, before anything prints: a child process is this
        // same program started again, and it stops here to serve its parent.
        try Crew.bootstrap(Twins.functions)
        await CrewDemo.main(nil)
    }
}
