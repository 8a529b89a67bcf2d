import ArgumentParser
import Crew
import Dispatch

@main
enum Main {
    // A synchronous main: an `async` main leaves the main thread through `dispatch_main`, whose `pthread_exit`
    // unwinds the thread, and the first unwinding in a static executable sorts its whole unwind table (about
    // 12 ms of CPU time at every start, in the benchmark and in each of its children, beside what is measured).
    static func main() throws {
        // A child of the benchmark is this program again: register what children run, before anything else.
        try Crew.bootstrap(BenchFunctions.all)
        let done = DispatchSemaphore(value: 0)
        Task.detached {  // Not on the main actor: the main thread is blocked here.
            await CrewBench.main(nil)
            done.signal()
        }
        done.wait()
    }
}
