import ArgumentParser
import Crew
import Dispatch
import Foundation

@main
enum Main {
    // A synchronous main: an `async` main leaves the main thread through `dispatch_main`, whose `pthread_exit`
    // unwinds the thread, and the first unwinding in an executable sorts its unwind table (milliseconds of CPU at
    // every start, in the benchmark and in each of its children, beside what is measured).
    static func main() throws {
        // A child of the benchmark is this program again: register what children run, before anything else. A
        // child started for a row without spinning is told so (as a user's program would pass the same options to
        // `bootstrap` in the parent and in its children).
        var options = Crew.Options()
        if let value = ProcessInfo.processInfo.environment[CrewBench.spinVariable], let spin = Int(value) {
            options.spinMicroseconds = spin
        }
        try Crew.bootstrap(BenchFunctions.all, options: options)
        let done = DispatchSemaphore(value: 0)
        Task.detached {  // Not on the main actor: the main thread is blocked here.
            await CrewBench.main(nil)
            done.signal()
        }
        done.wait()
    }
}
