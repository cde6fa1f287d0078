import struct Foundation.Date
import struct Foundation.TimeZone

/// A billing period: from `start` (inclusive) to `end` (exclusive).
public struct BillingPeriod: Sendable, Equatable, CustomStringConvertible {
    public let index: Int
    public let start: Instant
    public let end: Instant

    public init(index: Int, start: Instant, end: Instant) {
        self.index = index
        self.start = start
        self.end = end
    }

    public func contains(_ instant: Instant) -> Bool { start <= instant && instant < end }
    public var description: String { "#\(index) \(start)..<\(end)" }
}

/// Anchored billing periods in an organisation's time zone.
///
/// Period k starts k months (or years) after the anchor, on the anchor's day of the month clamped
/// to the month's end (Jan 31 -> Feb 28 or 29 -> Mar 31 -> Apr 30), at the anchor's local
/// wall-clock time. Every period is computed from the anchor, never from the previous period, so
/// a short month never shortens the months after it. Daylight saving time does not move the
/// local time; a local time that does not exist (spring forward) moves forward by the gap, and
/// one that exists twice (fall back) takes its first occurrence.
public struct BillingCalendar: Sendable {
    public let anchor: Instant
    public let interval: Plan.Interval
    public let timeZone: TimeZone
    private let local: LocalDateTime

    public init(anchor: Instant, interval: Plan.Interval, timeZone: TimeZone) {
        self.anchor = anchor
        self.interval = interval
        self.timeZone = timeZone
        self.local = LocalDateTime(anchor, in: timeZone)
    }

    public init(anchor: Instant, interval: Plan.Interval, timeZone identifier: String) {
        self.init(anchor: anchor, interval: interval, timeZone: TimeZone(identifier: identifier) ?? TimeZone(identifier: "UTC")!)
    }

    /// The start of period `index` (0 is the anchor itself).
    public func start(ofPeriod index: Int) -> Instant {
        precondition(index >= 0, "periods count from the anchor")
        let months = interval == .month ? index : index * 12
        let total = local.year * 12 + (local.month - 1) + months
        let year = total / 12
        let month = total % 12 + 1
        let day = min(local.day, CivilDate.daysInMonth(year: year, month: month))
        return LocalDateTime(year: year, month: month, day: day, secondOfDay: local.secondOfDay, microsecond: local.microsecond)
            .instant(in: timeZone)
    }

    public func period(_ index: Int) -> BillingPeriod {
        BillingPeriod(index: index, start: start(ofPeriod: index), end: start(ofPeriod: index + 1))
    }

    /// The period containing `instant` (the first period for instants before the anchor).
    public func period(containing instant: Instant) -> BillingPeriod {
        guard instant >= anchor else { return period(0) }
        let elapsedDays = instant.microseconds(since: anchor) / 86_400_000_000
        var index = max(0, Int(interval == .month ? elapsedDays / 31 : elapsedDays / 366))
        while start(ofPeriod: index + 1) <= instant { index += 1 }
        while index > 0 && start(ofPeriod: index) > instant { index -= 1 }
        return period(index)
    }
}

/// A wall-clock date and time in some time zone.
struct LocalDateTime: Equatable {
    let year: Int
    let month: Int
    let day: Int
    let secondOfDay: Int
    let microsecond: Int

    init(year: Int, month: Int, day: Int, secondOfDay: Int, microsecond: Int) {
        self.year = year
        self.month = month
        self.day = day
        self.secondOfDay = secondOfDay
        self.microsecond = microsecond
    }

    init(_ instant: Instant, in timeZone: TimeZone) {
        let seconds = instant.secondsSinceEpoch
        let offset = Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(seconds))))
        let (days, secondOfDay) = Instant.floorDivide(seconds + offset, 86_400)
        let (year, month, day) = CivilDate.fromDaysSinceEpoch(days)
        self.init(year: year, month: month, day: day, secondOfDay: Int(secondOfDay),
                  microsecond: Int(instant.microsecondsSinceEpoch - seconds * 1_000_000))
    }

    /// The instant this wall-clock time names in `timeZone`.
    func instant(in timeZone: TimeZone) -> Instant {
        let wall = CivilDate.daysSinceEpoch(year: year, month: month, day: day) * 86_400 + Int64(secondOfDay)
        func offset(_ seconds: Int64) -> Int64 { Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(seconds)))) }
        // The offsets in force a day before and a day after bracket any transition near `wall`.
        let before = offset(wall - 86_400)
        let after = offset(wall + 86_400)
        let candidates = [wall - before, wall - after].filter { offset($0) == wall - $0 }
        let seconds = candidates.min() ?? (wall - before)   // none: a gap; moving forward by it
        return Instant(microsecondsSinceEpoch: seconds * 1_000_000 + Int64(microsecond))
    }
}
