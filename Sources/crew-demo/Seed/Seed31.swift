import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// Seed 3.1: three gevent coroutines, each sleeping 2 s, finish together in about 2 s.
///
/// ```python
/// from gevent import monkey; monkey.patch_all()
/// start = time.time()
/// def doubler(number):
///     print('Parent process %s.' % os.getpid())
///     print(number * 2)
///     time.sleep(2)
///     print('run %0.2f s end' % (time.time() - start))
/// if __name__ == '__main__':
///     tasks = [gevent.spawn(doubler, i) for i in range(3)]
///     gevent.joinall(tasks)
/// ```
///
/// `time.sleep` becomes a coroutine's sleep in gevent because `monkey.patch_all()` replaced it. The twin shows
/// both Swift forms: a coroutine that sleeps as a task (`Task.sleep`), and one whose sleep is a blocking call
/// moved off the coroutine threads by `Crew.blocking { }` (what patching did for every blocking call).
/// `CREW_DEMO_TASK_SECONDS` scales the sleep (the tests use it).
enum Seed31 {
    @Sendable
    static func main() async throws {
        let seconds = Seed23.seconds()
        let start = Clock.seconds()
        let tasks = (0..<3).map { number in
            Crew.spawn {
                say("Parent process \(getpid()).")
                say("\(number * 2)")
                if number == 2 {
                    // A blocking call (as `time.sleep` is without gevent's patching), kept off the coroutines.
                    try await Crew.blocking { Clock.sleep(seconds: seconds) }
                } else {
                    try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
                }
                say("run \(fixed(Clock.seconds() - start, 2)) s end")
            }
        }
        try await Crew.joinAll(tasks, raiseError: true)
    }
}
