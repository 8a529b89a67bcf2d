public import Logging
import Synchronization

/// Log lines kept for a test to read.
public final class RecordedLines: Sendable {
    public struct Line: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]
    }
    private let lines = Mutex<[Line]>([])
    public init() {}
    public var all: [Line] { lines.withLock { $0 } }
    public func append(_ line: Line) { lines.withLock { $0.append(line) } }
}

/// A log handler that keeps every line, at every level.
public struct RecordingLogHandler: LogHandler {
    let lines: RecordedLines
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace

    public init(lines: RecordedLines) { self.lines = lines }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        lines.append(.init(level: event.level, message: "\(event.message)", metadata: all.mapValues { "\($0)" }))
    }
}
