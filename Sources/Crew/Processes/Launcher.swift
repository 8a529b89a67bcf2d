import CCrewShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A child process just started: its pid, the parent's end of its socket, the read end of its standard error
/// pipe (-1 when it writes straight to ours) and a pidfd for it (-1 if none could be opened).
struct LaunchedChild {
    var pid: Int32
    var socket: Int32
    var stderr: Int32
    var pidfd: Int32
}

/// Starts Crew children with `posix_spawn`: the same program (or `options.executable`), marked by the
/// environment so that its `Crew.bootstrap` serves instead of returning.
enum Launcher {
    /// Starts a child of `mode`. Its descriptor 3 is its end of a new socket pair of `socketType`, 0 is
    /// `/dev/null`, 1 is our standard output, 2 a pipe to us (or our standard error when `captureStderr` is
    /// false), 4 the progress page if one is given; nothing else is inherited.
    static func spawn(
        options: Crew.Options,
        mode: ChildMarker.Mode,
        socketType: Int32 = Int32(SOCK_STREAM.rawValue),
        captureStderr: Bool = true,
        progressFD: Int32? = nil,
        handed: [Int32] = []
    ) throws -> LaunchedChild {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, socketType | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw systemCallError("socketpair")
        }
        var errPipe: [Int32] = [-1, -1]
        if captureStderr {
            guard crew_pipe_cloexec(&errPipe) == 0 else {
                let error = systemCallError("pipe2")
                close(pair[0])
                close(pair[1])
                throw error
            }
        }
        var marker = ChildMarker(
            fd: 3,
            parentPID: getpid(),
            mode: mode,
            maxFrameSize: options.maxFrameSize,
            spinNanoseconds: Crew.effectiveSpinNanoseconds(options),
            progress: progressFD != nil
        )
        marker.handed = handed.count
        let arguments = options.arguments ?? CommandLine.arguments
        let environment = childEnvironment(marker: marker, extra: options.childEnvironment)

        // Whatever this process has buffered for standard output goes out before the child can write.
        fflush(nil)
        var pid: pid_t = 0
        let rc = withCStrings(arguments) { argv in
            withCStrings(environment) { envp in
                // 0 /dev/null, 1 and 2 as ours (2 through a pipe), 3 the socket, 4 the progress page (or /dev/null),
                // then the descriptors handed over with the arguments.
                let fds: [Int32] = [-1, 1, captureStderr ? errPipe[1] : 2, pair[1], progressFD ?? -1] + handed
                return fds.withUnsafeBufferPointer { fdBuffer in
                    crew_spawn(options.executable, argv, envp, fdBuffer.baseAddress, Int32(fds.count), &pid)
                }
            }
        }
        close(pair[1])
        if captureStderr { close(errPipe[1]) }
        guard rc == 0 else {
            close(pair[0])
            if captureStderr { close(errPipe[0]) }
            let text = strerror(rc).map { String(cString: $0) } ?? "errno \(rc)"
            throw CrewError(.spawnFailed, "could not start \(options.executable): \(text) (errno \(rc))")
        }
        let pidfd = crew_pidfd_open(pid)
        if pidfd < 0 {
            let error = systemCallError("pidfd_open")
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            close(pair[0])
            if captureStderr { close(errPipe[0]) }
            throw error
        }
        return LaunchedChild(pid: pid, socket: pair[0], stderr: captureStderr ? errPipe[0] : -1, pidfd: pidfd)
    }

    /// This process's environment, without any marker of its own, plus the child's marker and `extra`.
    static func childEnvironment(marker: ChildMarker, extra: [String: String]) -> [String] {
        var result: [String] = []
        var overridden = Set(extra.keys)
        overridden.insert(ChildMarker.variable)
        var entry = environ
        while let pointer = entry.pointee {
            let item = String(cString: pointer)
            let name = item.split(separator: "=", maxSplits: 1).first.map(String.init) ?? item
            if !overridden.contains(name) { result.append(item) }
            entry += 1
        }
        for (name, value) in extra.sorted(by: { $0.key < $1.key }) { result.append("\(name)=\(value)") }
        result.append("\(ChildMarker.variable)=\(marker.encoded)")
        return result
    }
}

/// Calls `body` with a NULL-terminated C array of the strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

extension Crew.ExitStatus {
    /// The status `waitid` reports: `CLD_EXITED` with an exit code, or a signal number otherwise.
    init(code: Int32, status: Int32) {
        self = code == CLD_EXITED ? .exited(status) : .signaled(status)
    }
}
