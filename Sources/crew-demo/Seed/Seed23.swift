import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// Seed 2.3: three threads, each printing its name, sleeping 2 s; about 2 s together, about 6 s when each is
/// joined before the next starts.
///
/// ```python
/// start = time.time()
/// def doubler(number):
///     print(threading.currentThread().getName())
///     print('Parent process %s.' % os.getpid())
///     print(number * 2)
///     time.sleep(2)
///     print('thread run %0.2f s end' % (time.time() - start))
/// if __name__ == '__main__':
///     for i in range(3):
///         my_thread = threading.Thread(target=doubler, args=(i,))
///         my_thread.start()
///         #my_thread.join()
/// ```
///
/// The twin runs it both ways: as written (the threads overlap), then with the `join` uncommented (one after
/// the other). `CREW_DEMO_TASK_SECONDS` scales the sleep (the tests use it).
enum Seed23 {
    static func doubler(_ number: Int, since start: Double) {
        say(Crew.Thread.current.name)
        say("Parent process \(getpid()).")
        say("\(number * 2)")
        Clock.sleep(seconds: seconds())
        say("thread run \(fixed(Clock.seconds() - start, 2)) s end")
    }

    @Sendable
    static func main() async throws {
        say("# without join: the three threads overlap")
        var start = Clock.seconds()
        var threads: [Crew.Thread] = []
        for i in 0..<3 {
            let begun = start
            let myThread = Crew.Thread { doubler(i, since: begun) }
            try myThread.start()
            threads.append(myThread)
        }
        // Python waits for its (non-daemon) threads before exiting; a Swift program ends when main returns, so
        // the twin joins them here, after starting all three.
        for t in threads { try await t.join() }

        say("# with join: one after the other")
        start = Clock.seconds()
        for i in 0..<3 {
            let begun = start
            let myThread = Crew.Thread { doubler(i, since: begun) }
            try myThread.start()
            try await myThread.join()
        }
    }

    static func seconds() -> Double {
        getenv("CREW_DEMO_TASK_SECONDS").flatMap { Double(String(cString: $0)) } ?? 2
    }
}
