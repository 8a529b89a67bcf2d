import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// The other side of each row: a Python peer in bench/peers (or crew-queue-bench, for the queue's Crew side),
// run as a command that prints one JSON line per figure:
//   {"workload": "pool.map", "variant": "mp.Pool", "value": 7712560.0, "unit": "calls/s",
//    "setup": "mp.Pool(2).map, chunksize auto = 125 000", "cpu_us": 1.5, "details": {"producer_s": 0.4}}
// and one line of versions: {"versions": {"python": "3.11.7", "celery": "5.7.0"}}. Its settings come to it as one
// JSON argument, from the same values the Crew side uses.

/// The figures one command printed, by "workload/variant".
struct Figures {
    var sides: [String: Side] = [:]
    var versions: [String: String] = [:]

    subscript(_ key: String) -> Side? { sides[key] }

    /// The side for `key`, named `who`; nil if the command did not print it.
    func side(_ key: String, who: String = "Python") -> Side? {
        guard var side = sides[key] else { return nil }
        side.who = who
        return side
    }

    /// The figures of a command's output; lines that are not figures (a peer's own messages) are skipped.
    static func parse(_ output: [UInt8], command: String) throws -> Figures {
        struct Line: Decodable {
            var workload: String?
            var variant: String?
            var value: Double?
            var unit: String?
            var setup: String?
            var cpuMicroseconds: Double?
            var details: [String: Double]?
            var versions: [String: String]?

            enum CodingKeys: String, CodingKey {
                case workload, variant, value, unit, setup, details, versions
                case cpuMicroseconds = "cpu_us"
            }
        }
        var figures = Figures()
        for text in output.split(separator: UInt8(ascii: "\n")) where text.first == UInt8(ascii: "{") {
            let line: Line
            do {
                line = try JSONDecoder().decode(Line.self, from: Data(text))
            } catch {
                throw BenchError(
                    "\(command) printed a line that is not a figure: \(String(decoding: text, as: UTF8.self))")
            }
            if let versions = line.versions { figures.versions.merge(versions) { _, new in new } }
            guard let workload = line.workload, let variant = line.variant, let value = line.value else { continue }
            figures.sides["\(workload)/\(variant)"] = Side(
                who: "Python", setup: line.setup ?? variant, value: value, cpuMicroseconds: line.cpuMicroseconds,
                details: line.details
            )
        }
        return figures
    }
}

enum Shell {
    /// Runs `command` through the shell; its standard output, or a typed error naming the command and its status.
    static func run(_ command: String) throws -> [UInt8] {
        fflush(nil)
        guard let pipe = popen(command, "r") else { throw BenchError("cannot run \(command)") }
        let output = Machine.readAll(pipe)
        let status = pclose(pipe)
        guard status == 0 else { throw BenchError("\(command) failed (status \(status))") }
        return output
    }

    /// The first line `command` prints, or nil if it cannot run.
    static func firstLine(_ command: String) -> String? {
        guard let output = try? run(command + " 2>/dev/null") else { return nil }
        return String(decoding: output, as: UTF8.self).split(separator: "\n").first.map(String.init)
    }

    static func quoted(_ word: String) -> String {
        "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }

    /// `settings` as one JSON argument.
    static func json(_ settings: [String: Any]) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: settings, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
