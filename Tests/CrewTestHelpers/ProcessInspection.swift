import CrewTesting

#if canImport(Glibc)
    import Glibc
#endif

/// How many descriptors this process has open.
public func openDescriptorCount() -> Int {
    guard let dir = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(dir) }
    var count = 0
    while readdir(dir) != nil { count += 1 }
    return count
}

/// Waits up to 10 s for `pid` to exit. An orphan is reparented (to init or a subreaper), which reaps it once it
/// has exited; until then it is a zombie, which counts as gone.
public func exitsSoon(_ pid: Int32) async throws -> Bool {
    for _ in 0..<200 {
        if !CrewTesting.processExists(pid) || processState(pid) == "Z" { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return false
}

/// The fields of /proc/PID/stat after the command name (state, parent pid, ...), or nil.
public func statFields(_ pid: Int32) -> [String]? {
    guard let file = fopen("/proc/\(pid)/stat", "r") else { return nil }
    defer { fclose(file) }
    var buffer = [UInt8](repeating: 0, count: 1024)
    let n = fread(&buffer, 1, buffer.count, file)
    let text = String(decoding: buffer[0..<n], as: UTF8.self)
    // The command name may hold spaces and parentheses: split after the last ')'.
    guard let close = text.lastIndex(of: ")") else { return nil }
    return text[text.index(after: close)...].split(separator: " ").map(String.init)
}

/// The state letter of a process in /proc (`R`, `S`, `Z`, ...), or nil.
public func processState(_ pid: Int32) -> String? {
    statFields(pid)?.first
}
