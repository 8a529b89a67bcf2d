import Crew

/// The functions the benchmark runs in child processes.
enum BenchFunctions {
    static let double = Function("bench.double") { (x: Int) in x * 2 }
    static let echoByte = Function("bench.echoByte") { (b: UInt8) in b }

    static let all: [any AnyFunction] = [double, echoByte]
}
