import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// Seed 1.3: two child processes share a queue the parent made; one writes, the other reads forever until
/// the parent terminates it.
///
/// ```python
/// def write(q):
///     print("Process to write: %s" % os.getpid())
///     for value in ['A', 'B', 'C']:
///         print("Put %s to queue..." % value)
///         q.put(value)
///         time.sleep(random.random())
/// def read(q):
///     print("Process to read: %s" % os.getpid())
///     while True:
///         value = q.get(True)
///         print("Get %s from queue." % value)
/// if __name__ == '__main__':
///     q = Crew.Queue()
///     pw = Process(target=write, args=(q,))
///     pr = Process(target=read, args=(q,))
///     pw.start()
///     pr.start()
///     pw.join()
///     pr.terminate()
/// ```
///
/// `CREW_DEMO_TASK_SECONDS` scales the random pauses (the tests use it).
enum Seed13 {
    static let write = Crew.Function("write") { (q: Crew.Queue<String>) throws in
        say("Process to write: \(getpid())")
        for value in ["A", "B", "C"] {
            say("Put \(value) to queue...")
            try q.put(value)
            Clock.sleep(seconds: Double.random(in: 0..<1) * Seed12.taskSeconds() / 3)
        }
    }

    // Plain `print`, as Python's reader: when the output is a pipe or a file, these lines wait in the reader's
    // buffer, and reach it when `terminate()` ends the reader (a Crew child writes what it buffered on SIGTERM).
    static let read = Crew.Function("read") { (q: Crew.Queue<String>) throws in
        print("Process to read: \(getpid())")
        while true {
            let value = try q.get()
            print("Get \(value) from queue.")
        }
    }

    static let functions: [any AnyFunction] = [write, read]

    @Sendable
    static func main() async throws {
        let q = try Crew.Queue<String>()  // The parent makes the queue and hands it to both children.
        let pw = Crew.Process(target: write, args: q)
        let pr = Crew.Process(target: read, args: q)
        try await pw.start()  // The writer starts...
        try await pr.start()  // ...and the reader.
        try await pw.join()  // Wait for the writer to end.
        // The reader loops forever: it cannot be waited for, only terminated. (Crew's queue would also end its
        // wait with `closed` once no other process held the queue; the parent still does.)
        waitUntilDrained(q)
        pr.terminate()
        try await pr.join()
    }

    /// Python's reader prints its last line before the parent's `terminate` only by luck of timing; the twin
    /// waits until the queue is empty and the reader has had a moment to print.
    static func waitUntilDrained(_ q: Crew.Queue<String>) {
        while !q.isEmpty { Clock.sleep(seconds: 0.001) }
        Clock.sleep(seconds: 0.05)
    }
}
