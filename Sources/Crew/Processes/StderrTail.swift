/// The last bytes a child wrote to its standard error, kept to explain its death (``CrewError/lastStderr``).
///
/// Swift's `Fatal error: …` line is kept even after more output has pushed it out of the tail, since it is the
/// line that says why a child trapped.
struct StderrTail {
    /// How many of the last bytes are kept.
    let limit: Int
    private(set) var bytes: [UInt8] = []
    /// The first line holding "Fatal error", once seen whole (up to its newline).
    private(set) var fatalLine: String?

    init(limit: Int) {
        self.limit = max(256, limit)
    }

    mutating func append(_ chunk: some Collection<UInt8>) {
        bytes.append(contentsOf: chunk)
        if fatalLine == nil { fatalLine = Self.fatalErrorLine(in: bytes, whole: true) }
        if bytes.count > limit { bytes.removeFirst(bytes.count - limit) }
    }

    /// The tail as text, cut at a line start when it was cut at all, with the `Fatal error` line first if the tail
    /// no longer holds it.
    var text: String {
        var kept = bytes[...]
        if kept.count >= limit, let newline = kept.firstIndex(of: UInt8(ascii: "\n")) {
            kept = kept[(newline + 1)...]
        }
        let text = String(decoding: kept, as: UTF8.self)
        // A line still being written when the child died is taken as it stands.
        if let fatalLine = fatalLine ?? Self.fatalErrorLine(in: bytes, whole: false), !text.contains(fatalLine) {
            return fatalLine + "\n...\n" + text
        }
        return text
    }

    /// The first line of `bytes` holding "Fatal error"; with `whole`, only once its newline has come (a chunk may
    /// end in the middle of it).
    static func fatalErrorLine(in bytes: [UInt8], whole: Bool) -> String? {
        let marker = Array("Fatal error".utf8)
        guard bytes.count >= marker.count else { return nil }
        var i = 0
        while i <= bytes.count - marker.count {
            if bytes[i] == marker[0] && bytes[i..<i + marker.count].elementsEqual(marker) {
                var start = i
                while start > 0 && bytes[start - 1] != UInt8(ascii: "\n") { start -= 1 }
                let newline = bytes[i...].firstIndex(of: UInt8(ascii: "\n"))
                if whole && newline == nil { return nil }
                let end = newline ?? bytes.count
                return String(decoding: bytes[start..<end], as: UTF8.self)
            }
            i += 1
        }
        return nil
    }
}
