#if canImport(Glibc)
    import Glibc
#endif

/// Prints a line and flushes it at once, as Python's `print(..., flush=True)`: when the output is a pipe, lines
/// of the parent and of its children then appear in the order they were written.
func say(_ line: String) {
    print(line)
    fflush(nil)
}

/// `value` with `digits` decimals, as Python's `%0.2f`.
func fixed(_ value: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (value * scale).rounded()
    let whole = Int(scaled / scale)
    let fraction = Int(abs(scaled.truncatingRemainder(dividingBy: scale)))
    guard digits > 0 else { return "\(whole)" }
    let text = String(fraction)
    return "\(whole).\(String(repeating: "0", count: max(0, digits - text.count)))\(text)"
}

/// Wall-clock seconds and a blocking sleep, as Python's `time.time()` and `time.sleep()`.
enum Clock {
    static func seconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func sleep(seconds: Double) {
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}
