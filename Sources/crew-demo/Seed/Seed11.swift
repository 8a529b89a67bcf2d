import Crew

#if canImport(Glibc)
    import Glibc
#endif

/// Seed 1.1: a child process runs `run_proc('test')`; the parent starts it, joins it, and says it ended.
///
/// ```python
/// def run_proc(name):
///     print('Run child process %s (%s)...' % (name, os.getpid()))
/// if __name__ == '__main__':
///     print('Parent process %s.' % os.getpid())
///     p = Process(target=run_proc, args=('test',))
///     print('Child process will start.')
///     p.start()
///     p.join()
///     print('Child process end.')
/// ```
enum Seed11 {
    /// The code the child process runs.
    static let runProc = Crew.Function("run_proc") { (name: String) in
        print("Run child process \(name) (\(getpid()))...")
    }

    static let functions: [any AnyFunction] = [runProc]

    @Sendable
    static func main() async throws {
        print("Parent process \(getpid()).")
        let p = Crew.Process(target: runProc, args: "test")
        print("Child process will start.")
        try await p.start()
        try await p.join()
        print("Child process end.")
    }
}
