import Crew

/// One example of the seed tutorial, in Swift.
struct Twin: Sendable {
    /// The section of the tutorial, such as `1.1`.
    var id: String
    var title: String
    var run: @Sendable () async throws -> Void
}

enum Twins {
    static let all: [Twin] = [
        Twin(id: "1.1", title: "Processes: Process, start, join", run: Seed11.main),
        Twin(id: "1.2", title: "Process pool: Pool(2), apply_async, close, join", run: Seed12.main),
        Twin(id: "1.3", title: "Interprocess communication: a Queue shared by a writer and a reader", run: Seed13.main),
        Twin(id: "2.2", title: "The GIL, measured: CPU-bound work on 1 and 2 threads and processes", run: Seed22.main),
        Twin(id: "2.3", title: "Threads: three threads, without and with join", run: Seed23.main),
        Twin(
            id: "2.4", title: "multiprocessing.dummy: the same pool code on processes and on threads", run: Seed24.main),
        Twin(id: "3.1", title: "Coroutines (gevent): three coroutines sleeping together", run: Seed31.main),
        Twin(id: "3.3", title: "Celery: a worker with a pool of coroutines serves queued tasks", run: Seed33.main),
    ]

    /// Every function the twins run in child processes; `main` registers them.
    static let functions: [any AnyFunction] =
        Seed11.functions + Seed12.functions + Seed13.functions + Seed22.functions + Seed24.functions

    static func named(_ id: String) -> Twin? {
        all.first { $0.id == id }
    }

    static func listing() -> String {
        """
        The seed is a tutorial on Python's processes, threads and coroutines (multiprocessing, threading, gevent, \
        Celery), whose examples Crew grew from.
        Each twin below runs one of its examples in Swift and keeps its section number (1.x processes, 2.x threads, \
        3.x coroutines and Celery; sections without code have no twin): `crew-demo run 1.2` runs one.

        Crew's twins of the seed examples:

        """ + all.map { "  \($0.id)  \($0.title)" }.joined(separator: "\n")
    }
}
