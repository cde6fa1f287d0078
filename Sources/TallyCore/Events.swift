import struct Foundation.TimeZone

/// What Tally tells the outside world about, through the events outbox and webhooks.
public enum EventType: String, Sendable, CaseIterable, Codable {
    case usageThresholdReached = "usage.threshold_reached"
    case balanceLow = "balance.low"
    case creditsExpired = "credits.expired"
    case creditsExpiring = "credits.expiring"
    case subscriptionRenewed = "subscription.renewed"
    case subscriptionChanged = "subscription.changed"
    case invoiceFinalized = "invoice.finalized"
    case invoicePaid = "invoice.paid"
    case autoTopUpFailed = "auto_topup.failed"
}

/// A calendar month in some time zone, e.g. 2026-11 in Europe/Berlin.
public struct CalendarMonth: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let year: Int
    public let month: Int

    public init(year: Int, month: Int) {
        precondition((1...12).contains(month), "months run from 1 to 12")
        self.year = year
        self.month = month
    }

    /// The month `instant` falls in, in `timeZone` (an instant at 23:30Z on Oct 31 is November
    /// in Berlin).
    public init(containing instant: Instant, in timeZone: TimeZone) {
        let local = LocalDateTime(instant, in: timeZone)
        self.init(year: local.year, month: local.month)
    }

    public init(containing instant: Instant, in identifier: String) {
        self.init(containing: instant, in: TimeZone(identifier: identifier) ?? TimeZone(identifier: "UTC")!)
    }

    /// `n` months earlier (negative: later).
    public func minus(_ months: Int) -> CalendarMonth {
        let index = year * 12 + (month - 1) - months
        return CalendarMonth(year: index / 12, month: index % 12 + 1)
    }

    /// "2026-11".
    public var description: String {
        String(year) + "-" + (month < 10 ? "0" : "") + String(month)
    }

    /// Days since 1970-01-01 of the month's first day (how PostgreSQL's `date` counts from 2000).
    public var firstDayDaysSinceEpoch: Int64 {
        CivilDate.daysSinceEpoch(year: year, month: month, day: 1)
    }

    public static func < (a: CalendarMonth, b: CalendarMonth) -> Bool {
        (a.year, a.month) < (b.year, b.month)
    }
}

/// When a failed webhook delivery is tried again: 30 s after the first failure, doubling up to
/// six hours between attempts, and never given up before three days have passed since the first
/// attempt.
public enum WebhookRetry {
    public static let firstDelaySeconds: Int64 = 30
    public static let longestDelaySeconds: Int64 = 6 * 3600
    public static let retryForSeconds: Int64 = 3 * 86_400

    /// The next attempt after `attempt` (1 for the first) failed at `now`; nil gives up.
    public static func nextAttempt(after attempt: Int, firstAttemptAt: Instant, now: Instant) -> Instant? {
        let elapsed = now.microseconds(since: firstAttemptAt) / 1_000_000
        guard elapsed < retryForSeconds else { return nil }
        let doublings = min(max(attempt - 1, 0), 20)
        let delay = min(firstDelaySeconds << Int64(doublings), longestDelaySeconds)
        return now.adding(seconds: delay)
    }
}
