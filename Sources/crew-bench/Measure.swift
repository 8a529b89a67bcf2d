import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// Clocks, medians and CPU time: the same on every workload, and the same arithmetic as the Python peers'.

enum Measure {
    /// Runs `body` once untimed when `warmUp`, then `rounds` times; the median of what it returned.
    static func median(rounds: Int, warmUp: Bool = true, _ body: () async throws -> Double) async throws -> Double {
        if warmUp { _ = try await body() }
        var values: [Double] = []
        for _ in 0..<rounds { values.append(try await body()) }
        return median(values)
    }

    /// The median of rounds that return several figures, by the first one; the others come from the same round.
    static func median(rounds: Int, warmUp: Bool = true, _ body: () async throws -> [Double]) async throws -> [Double] {
        if warmUp { _ = try await body() }
        var values: [[Double]] = []
        for _ in 0..<rounds { values.append(try await body()) }
        values.sort { $0[0] < $1[0] }
        return values[values.count / 2]
    }

    /// Crew and its floor, measured in turns (one untimed round of each, then a round of one, a round of the
    /// other, `rounds` times): both see the same phases of a shared machine. The medians of each, by first figure.
    static func interleaved(
        rounds: Int, _ crew: () async throws -> [Double], _ floor: () async throws -> [Double]
    ) async throws -> (crew: [Double], floor: [Double]) {
        _ = try await crew()
        _ = try await floor()
        var a: [[Double]] = []
        var b: [[Double]] = []
        for _ in 0..<rounds {
            a.append(try await crew())
            b.append(try await floor())
        }
        a.sort { $0[0] < $1[0] }
        b.sort { $0[0] < $1[0] }
        return (a[a.count / 2], b[b.count / 2])
    }

    /// As ``interleaved(rounds:_:_:)-([Double])``, for rounds of one figure.
    static func interleaved(
        rounds: Int, _ crew: () async throws -> Double, _ floor: () async throws -> Double
    ) async throws -> (crew: Double, floor: Double) {
        let (a, b) = try await interleaved(rounds: rounds, { [try await crew()] }, { [try await floor()] })
        return (a[0], b[0])
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted.count % 2 == 1
            ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    static func ms(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15
    }
    static func us(_ d: Duration) -> Double { ms(d) * 1e3 }
    static func seconds(_ d: Duration) -> Double { ms(d) / 1e3 }

    /// CPU time a process has used so far, every thread alive included, in seconds: the sum of each thread's
    /// `/proc/PID/task/TID/schedstat` (nanoseconds, unlike `/proc/PID/stat`'s 10 ms ticks). Threads that have
    /// ended are not counted, so a window is read while the processes it covers are still alive.
    /// NaN if the process is gone (its figure is then "n/a", never too low).
    static func cpuSeconds(pid: Int32) -> Double {
        let threads: [String]
        do {
            threads = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")
        } catch {
            return .nan
        }
        var nanoseconds = 0.0
        for thread in threads {
            let text = Machine.read("/proc/\(pid)/task/\(thread)/schedstat")
            if let first = text.split(separator: " ").first, let value = Double(first) { nanoseconds += value }
        }
        return nanoseconds / 1e9
    }

    /// CPU time of this process so far (user + system, every thread, ended ones too), in seconds.
    static func selfCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}

/// CPU time of a set of processes over a window: read at its start and at its end, while they are all alive.
struct CPUWindow {
    let pids: [Int32]
    private let start: Double

    init(pids: [Int32]) {
        self.pids = pids
        start = Self.total(pids)
    }

    /// CPU microseconds per operation since the window started.
    func microseconds(per operations: Int) -> Double {
        (Self.total(pids) - start) * 1e6 / Double(operations)
    }

    private static func total(_ pids: [Int32]) -> Double {
        Measure.selfCPUSeconds() + pids.map(Measure.cpuSeconds(pid:)).reduce(0, +)
    }
}
