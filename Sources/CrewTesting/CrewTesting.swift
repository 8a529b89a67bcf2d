public import Crew

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Helpers for testing code that runs functions in Crew child processes.
///
/// Under `swift test` the running program is the test runner, which cannot serve as a child. Children are
/// started instead from an executable of your package that registers the same functions: usually your app
/// itself (its `main` calls `Crew.bootstrap` first), or a small helper target:
///
/// ```swift
/// // Sources/my-worker/main.swift
/// import Crew
/// import MyFunctions
/// try Crew.bootstrap(MyFunctions.all)
///
/// // Tests/MyTests/MyTests.swift (the test target depends on "my-worker" so that it is built)
/// let crew = try CrewTesting.bootstrap(MyFunctions.all, worker: "my-worker")
/// let p = Crew.Process(target: MyFunctions.square, args: 7, crew: crew)
/// ```
public enum CrewTesting {
    /// The directory that holds the running test bundle and the package's other build products.
    public static var productsDirectory: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return "." }
        let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }

    /// The path of the executable product `name` built beside the test bundle.
    ///
    /// - Throws: ``CrewError/Code/spawnFailed`` if there is no such executable (is the product a
    ///   dependency of the test target, so that `swift test` builds it?).
    public static func executablePath(_ name: String) throws -> String {
        let path = productsDirectory + "/" + name
        guard access(path, X_OK) == 0 else {
            throw CrewError(
                .spawnFailed,
                "no executable \"\(name)\" in \(productsDirectory); make it a dependency of the test target"
            )
        }
        return path
    }

    /// Registers `functions` in the test process, with children started from the executable product
    /// `worker`, which must register (at least) the same functions.
    @discardableResult
    public static func bootstrap(
        _ functions: [any AnyFunction],
        worker: String,
        options: Crew.Options = Crew.Options()
    ) throws -> Crew {
        var options = options
        options.executable = try executablePath(worker)
        options.arguments = options.arguments ?? [worker]
        return try Crew.bootstrap(functions, options: options)
    }

    /// The children of this process that have exited and not been reaped (zombies). Crew reaps every child
    /// it starts, so after its children have ended this is empty.
    public static func zombieChildren() -> [Int32] {
        children().filter { $0.state == "Z" }.map(\.pid)
    }

    /// The live (not zombie) children of this process.
    public static func liveChildren() -> [Int32] {
        children().filter { $0.state != "Z" }.map(\.pid)
    }

    /// True if a process with this pid exists (a zombie counts).
    public static func processExists(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    private static func children() -> [(pid: Int32, state: String)] {
        let me = getpid()
        var result: [(Int32, String)] = []
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = Int32(name), let stat = readFile("/proc/\(pid)/stat") else { continue }
            // pid (comm) state ppid ...; comm may hold spaces and parentheses: split after the last ')'.
            guard let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count >= 2, let ppid = Int32(fields[1]), ppid == me else { continue }
            result.append((pid, String(fields[0])))
        }
        return result
    }

    private static func readFile(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = fread(&buffer, 1, buffer.count, file)
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }
}
