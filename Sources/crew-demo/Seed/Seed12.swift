import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// Seed 1.2: a pool of two processes runs five three-second tasks; the parent waits for all of them.
///
/// ```python
/// def long_time_task(name):
///     print('Run task %s (%s)...' % (name, os.getpid()))
///     start = time.time()
///     time.sleep(3)
///     end = time.time()
///     print('Task %s runs %0.2f seconds.' % (name, (end - start)))
/// if __name__=='__main__':
///     print('Parent process %s.' % os.getpid())
///     p = Pool(2)
///     for i in range(5):
///         p.apply_async(long_time_task, args=(i,))
///     print('Waiting for all subprocesses done...')
///     p.close()
///     p.join()
///     print('All subprocesses done.')
/// ```
///
/// `CREW_DEMO_TASK_SECONDS` shortens the three seconds (the tests use it).
enum Seed12 {
    static let longTimeTask = Crew.Function("long_time_task") { (name: Int) in
        say("Run task \(name) (\(getpid()))...")
        let start = Clock.seconds()
        Clock.sleep(seconds: taskSeconds())
        say("Task \(name) runs \(fixed(Clock.seconds() - start, 2)) seconds.")
    }

    static let functions: [any AnyFunction] = [longTimeTask]

    @Sendable
    static func main() async throws {
        say("Parent process \(getpid()).")
        let p = try ProcessPool(processes: 2)
        for i in 0..<5 {
            try p.applyAsync(longTimeTask, i)
        }
        say("Waiting for all subprocesses done...")
        p.close()
        try await p.join()
        say("All subprocesses done.")
    }

    static func taskSeconds() -> Double {
        getenv("CREW_DEMO_TASK_SECONDS").flatMap { Double(String(cString: $0)) } ?? 3
    }
}
