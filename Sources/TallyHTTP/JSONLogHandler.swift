import TallyJSON
import Foundation
import Logging
import TallyCore

/// Writes one JSON object per log record to standard error: time, level, message, label and
/// metadata (request id included), so that log collectors need no parsing rules.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String

    public init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var members: [(key: String, value: JSONValue)] = [
            ("time", .string(Self.timestamp())),
            ("level", .string(event.level.rawValue)),
            ("message", .string(event.message.description)),
            ("logger", .string(label)),
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for key in merged.keys.sorted() {
            members.append((key, .string("\(merged[key]!)")))
        }
        var line = JSONValue.object(members).serialized()
        line.append(UInt8(ascii: "\n"))
        line.withUnsafeBufferPointer { buffer in
            // One write(2) per record, so that lines from concurrent requests never interleave.
            _ = write(STDERR_FILENO, buffer.baseAddress, buffer.count)
        }
    }

    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let micros = Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
        return Instant(microsecondsSinceEpoch: micros).rfc3339
    }
}
