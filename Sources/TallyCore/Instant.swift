/// A point in time with microsecond precision, as PostgreSQL's `timestamptz` stores it.
///
/// Billing compares timestamps exactly ("not spent one millisecond after expires_at"), so time is
/// an integer count of microseconds since 1970-01-01T00:00:00Z rather than a floating-point Date.
public struct Instant: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let microsecondsSinceEpoch: Int64

    public init(microsecondsSinceEpoch: Int64) {
        self.microsecondsSinceEpoch = microsecondsSinceEpoch
    }

    public init(secondsSinceEpoch: Int64) {
        self.microsecondsSinceEpoch = secondsSinceEpoch * 1_000_000
    }

    public static func < (lhs: Instant, rhs: Instant) -> Bool {
        lhs.microsecondsSinceEpoch < rhs.microsecondsSinceEpoch
    }

    /// Later than any instant Tally deals with.
    public static let distantFuture = Instant(microsecondsSinceEpoch: Int64.max / 2)

    public func adding(microseconds: Int64) -> Instant {
        Instant(microsecondsSinceEpoch: microsecondsSinceEpoch + microseconds)
    }

    public func adding(seconds: Int64) -> Instant { adding(microseconds: seconds * 1_000_000) }
    public func adding(days: Int) -> Instant { adding(seconds: Int64(days) * 86_400) }

    public func microseconds(since other: Instant) -> Int64 {
        microsecondsSinceEpoch - other.microsecondsSinceEpoch
    }

    /// Whole seconds since the epoch, rounded toward negative infinity.
    public var secondsSinceEpoch: Int64 {
        let (q, r) = microsecondsSinceEpoch.quotientAndRemainder(dividingBy: 1_000_000)
        return r < 0 ? q - 1 : q
    }

    public var description: String { rfc3339 }
}

// MARK: RFC 3339

extension Instant {
    public enum ParseError: Error, Sendable { case invalid }

    /// "2026-11-21T10:00:00Z", with fractional seconds ("...00.123456Z") only when there are any.
    public var rfc3339: String {
        let seconds = secondsSinceEpoch
        let micros = microsecondsSinceEpoch - seconds * 1_000_000
        let (days, secondOfDay) = Self.floorDivide(seconds, 86_400)
        let (year, month, day) = CivilDate.fromDaysSinceEpoch(days)
        var text = pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2) + "T"
        text += pad(Int(secondOfDay / 3600), 2) + ":" + pad(Int(secondOfDay % 3600 / 60), 2) + ":" + pad(Int(secondOfDay % 60), 2)
        if micros != 0 {
            var fraction = pad(Int(micros), 6)
            while fraction.last == "0" { fraction.removeLast() }
            text += "." + fraction
        }
        return text + "Z"
    }

    /// Parses RFC 3339: date, `T`, time, optional fraction (digits past microseconds are
    /// truncated), and `Z` or a numeric offset.
    public init(rfc3339 text: String) throws(ParseError) {
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ width: Int) throws(ParseError) -> Int {
            guard index + width <= bytes.count else { throw .invalid }
            var value = 0
            for byte in bytes[index..<(index + width)] {
                guard byte >= 48, byte <= 57 else { throw .invalid }
                value = value * 10 + Int(byte - 48)
            }
            index += width
            return value
        }
        func expect(_ characters: String) throws(ParseError) {
            guard index < bytes.count, characters.utf8.contains(bytes[index]) else { throw .invalid }
            index += 1
        }
        let year = try number(4); try expect("-")
        let month = try number(2); try expect("-")
        let day = try number(2); try expect("Tt")
        let hour = try number(2); try expect(":")
        let minute = try number(2); try expect(":")
        let second = try number(2)
        guard (1...12).contains(month), day >= 1, day <= CivilDate.daysInMonth(year: year, month: month),
              hour <= 23, minute <= 59, second <= 59 else { throw .invalid }
        var micros: Int64 = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                if digits < 6 { micros = micros * 10 + Int64(bytes[index] - 48) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { throw .invalid }
            for _ in min(digits, 6)..<6 { micros *= 10 }
        }
        guard index < bytes.count else { throw .invalid }
        var offsetSeconds = 0
        if bytes[index] == UInt8(ascii: "Z") || bytes[index] == UInt8(ascii: "z") {
            index += 1
        } else {
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            try expect("+-")
            let offsetHours = try number(2); try expect(":")
            let offsetMinutes = try number(2)
            guard offsetHours <= 23, offsetMinutes <= 59 else { throw .invalid }
            offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
        }
        guard index == bytes.count else { throw .invalid }
        let days = CivilDate.daysSinceEpoch(year: year, month: month, day: day)
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetSeconds)
        self.init(microsecondsSinceEpoch: seconds * 1_000_000 + micros)
    }

    static func floorDivide(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        let (q, r) = a.quotientAndRemainder(dividingBy: b)
        return r < 0 ? (q - 1, r + b) : (q, r)
    }
}

private func pad(_ value: Int, _ width: Int) -> String {
    let text = String(value)
    return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
}

extension Instant: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try Instant(rfc3339: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "is not an RFC 3339 timestamp")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rfc3339)
    }
}

/// Proleptic Gregorian calendar arithmetic on (year, month, day), independent of time zones.
/// (Howard Hinnant's days_from_civil / civil_from_days.)
public enum CivilDate {
    public static func isLeapYear(_ year: Int) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    public static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    public static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let m = Int64(month)
        let dayOfYear = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    public static func fromDaysSinceEpoch(_ days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }
}

/// Where "now" comes from. Every job and handler asks a clock; tests and test clocks pass their own.
public protocol WallClock: Sendable {
    func now() -> Instant
}
