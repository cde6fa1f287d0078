import Foundation
import Logging
import TallyCore

/// Log lines for a person at a terminal: `07:00:01 info  listening http.port=8080`. What
/// `TALLY_LOG_FORMAT=human` asks for, and the default when standard error is a terminal.
public struct HumanLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level

    public init(level: Logger.Level) {
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        var line = "\(Self.clock()) \(event.level.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)) \(event.message)"
        for key in merged.keys.sorted() {
            let value = "\(merged[key]!)"
            line += " \(key)=" + (value.contains(" ") ? "\"\(value)\"" : value)
        }
        line += "\n"
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBufferPointer { buffer in
            _ = write(STDERR_FILENO, buffer.baseAddress, buffer.count)
        }
    }

    private static func clock() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let time = Instant(microsecondsSinceEpoch: Int64(now.tv_sec) * 1_000_000).rfc3339
        // "2026-12-03T07:00:01Z" -> "07:00:01"
        return String(time.dropFirst(11).prefix(8))
    }
}

/// How log lines are written: `TALLY_LOG_FORMAT` (`json` or `human`), else human on a terminal
/// and JSON for everything else (collectors, files, pipes).
public enum LogFormat: String, Sendable {
    case json, human

    public static func resolve(_ setting: String?) -> LogFormat {
        if let setting, let format = LogFormat(rawValue: setting.lowercased()) { return format }
        return isatty(STDERR_FILENO) == 1 ? .human : .json
    }
}
