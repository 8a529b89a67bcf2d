@_spi(Internals) import Crew
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What the benchmark ran on, for the record, and readings of this process.
enum Machine {
    /// Bytes the heap has handed out and not taken back (glibc's `mallinfo2`, `uordblks + hblkhd`): what live
    /// objects use, whatever the heap kept from earlier work.
    static func heapBytesInUse() -> Int {
        Crew.heapBytesInUse()
    }

    /// This process's resident memory, in bytes (from /proc/self/statm).
    static func residentBytes() -> Int {
        let fields = read("/proc/self/statm").split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func read(_ path: String) -> String {
        guard let file = fopen(path, "r") else { return "" }
        defer { fclose(file) }
        return String(decoding: readAll(file), as: UTF8.self)
    }

    /// Everything left to read from a stdio stream.
    static func readAll(_ file: UnsafeMutablePointer<FILE>) -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n <= 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
        }
        return bytes
    }

    static func trimmed(_ text: String) -> String {
        text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The directory this executable is in (its siblings: crew-queue-bench, crew-bench-static).
    static var executableDirectory: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return "." }
        let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (path as NSString).deletingLastPathComponent
    }

    static func describe() -> String {
        let cpu =
            read("/proc/cpuinfo").split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last.map { trimmed(String($0)) } ?? "unknown CPU"
        let kernel = trimmed(read("/proc/sys/kernel/osrelease"))
        let memory = ProcessInfo.processInfo.physicalMemory >> 30
        return "\(ProcessInfo.processInfo.activeProcessorCount) CPUs (\(cpu)), \(memory) GiB, Linux \(kernel)"
    }
}
