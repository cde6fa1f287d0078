import Foundation
import Testing
@testable import TallyCore

private func instant(_ text: String) -> Instant { try! Instant(rfc3339: text) }

@Suite struct BillingCalendarTests {
    /// 48+ months for anchor days 28-31 in UTC and in a zone with daylight saving time: every
    /// period starts on the anchor day clamped to the month's end, at the anchor's local time.
    @Test(arguments: [28, 29, 30, 31], ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney"])
    func monthlyPeriodsKeepTheAnchorDayClampedToTheMonthsEnd(anchorDay: Int, zone: String) throws {
        let timeZone = try #require(TimeZone(identifier: zone))
        // 2023-01-dd 09:15:30.25 local time.
        let anchorLocal = LocalDateTime(year: 2023, month: 1, day: anchorDay, secondOfDay: 9 * 3600 + 15 * 60 + 30, microsecond: 250_000)
        let calendar = BillingCalendar(anchor: anchorLocal.instant(in: timeZone), interval: .month, timeZone: timeZone)
        var previous = calendar.start(ofPeriod: 0)
        for index in 1...60 {
            let start = calendar.start(ofPeriod: index)
            let local = LocalDateTime(start, in: timeZone)
            let year = 2023 + index / 12
            let month = index % 12 + 1
            #expect(local.year == year && local.month == month)
            #expect(local.day == min(anchorDay, CivilDate.daysInMonth(year: year, month: month)), "period \(index)")
            #expect(local.secondOfDay == anchorLocal.secondOfDay, "local time kept across DST, period \(index)")
            #expect(local.microsecond == 250_000)
            #expect(start > previous)
            previous = start
        }
    }

    @Test func january31RunsThroughFebruaryAndBack() {
        let calendar = BillingCalendar(anchor: instant("2024-01-31T00:00:00Z"), interval: .month, timeZone: "UTC")
        let starts = (0...4).map { calendar.start(ofPeriod: $0).rfc3339 }
        #expect(starts == ["2024-01-31T00:00:00Z", "2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z", "2024-04-30T00:00:00Z", "2024-05-31T00:00:00Z"])
        let nonLeap = BillingCalendar(anchor: instant("2025-01-31T00:00:00Z"), interval: .month, timeZone: "UTC")
        #expect(nonLeap.start(ofPeriod: 1).rfc3339 == "2025-02-28T00:00:00Z")
        #expect(nonLeap.start(ofPeriod: 2).rfc3339 == "2025-03-31T00:00:00Z")
    }

    @Test func yearlyPeriodsFromFebruary29() {
        let calendar = BillingCalendar(anchor: instant("2024-02-29T12:00:00Z"), interval: .year, timeZone: "UTC")
        let starts = (0...4).map { calendar.start(ofPeriod: $0).rfc3339 }
        #expect(starts == ["2024-02-29T12:00:00Z", "2025-02-28T12:00:00Z", "2026-02-28T12:00:00Z", "2027-02-28T12:00:00Z", "2028-02-29T12:00:00Z"])
    }

    @Test func theSeedsAnchors() {
        // "if you start date was Oct 2, then on Nov 2 you will again get new credits"
        let oct2 = BillingCalendar(anchor: instant("2026-10-02T08:00:00Z"), interval: .month, timeZone: "UTC")
        #expect(oct2.period(0).end.rfc3339 == "2026-11-02T08:00:00Z")
        // Re-anchored on May 8: the next cycle starts June 8.
        let may8 = BillingCalendar(anchor: instant("2026-05-08T10:00:00Z"), interval: .month, timeZone: "UTC")
        #expect(may8.period(0).end.rfc3339 == "2026-06-08T10:00:00Z")
    }

    @Test func daylightSavingKeepsTheLocalTime() {
        // 09:00 in Berlin is 08:00Z in winter and 07:00Z in summer.
        let berlin = BillingCalendar(anchor: instant("2026-02-15T08:00:00Z"), interval: .month, timeZone: "Europe/Berlin")
        #expect(berlin.start(ofPeriod: 1).rfc3339 == "2026-03-15T08:00:00Z")
        #expect(berlin.start(ofPeriod: 2).rfc3339 == "2026-04-15T07:00:00Z")
        #expect(berlin.start(ofPeriod: 9).rfc3339 == "2026-11-15T08:00:00Z")
    }

    @Test func aLocalTimeInTheSpringGapMovesForwardAndAnOverlapTakesTheFirst() throws {
        let berlin = try #require(TimeZone(identifier: "Europe/Berlin"))
        // 2026-03-29 02:30 does not exist in Berlin (clocks go 02:00 -> 03:00): 03:30 CEST = 01:30Z.
        let gap = LocalDateTime(year: 2026, month: 3, day: 29, secondOfDay: 2 * 3600 + 1800, microsecond: 0)
        #expect(gap.instant(in: berlin).rfc3339 == "2026-03-29T01:30:00Z")
        // 2026-10-25 02:30 happens twice: first in CEST (00:30Z).
        let overlap = LocalDateTime(year: 2026, month: 10, day: 25, secondOfDay: 2 * 3600 + 1800, microsecond: 0)
        #expect(overlap.instant(in: berlin).rfc3339 == "2026-10-25T00:30:00Z")
    }

    @Test func findsThePeriodContainingAnInstant() {
        let calendar = BillingCalendar(anchor: instant("2026-01-31T00:00:00Z"), interval: .month, timeZone: "UTC")
        #expect(calendar.period(containing: instant("2026-01-31T00:00:00Z")).index == 0)
        #expect(calendar.period(containing: instant("2026-02-27T23:59:59.999999Z")).index == 0)
        #expect(calendar.period(containing: instant("2026-02-28T00:00:00Z")).index == 1)
        #expect(calendar.period(containing: instant("2030-07-30T12:00:00Z")).start.rfc3339 == "2030-06-30T00:00:00Z")
        #expect(calendar.period(containing: instant("2030-07-31T00:00:00Z")).start.rfc3339 == "2030-07-31T00:00:00Z")
        for index in 0..<120 {
            let period = calendar.period(index)
            #expect(calendar.period(containing: period.start).index == index)
            #expect(calendar.period(containing: period.end.adding(microseconds: -1)).index == index)
        }
    }
}

@Suite struct RenewalMathTests {
    func plan(_ code: String, price: Int128 = 100_000_000, credits: Int = 1000, expiry: Plan.CreditExpiry = .periodEnd, rollover: Plan.Rollover = .none) -> Plan {
        Plan(code: code, name: code, price: Money(micros: price, currency: .usd), interval: .month, creditsPerPeriod: Credits(credits),
             creditExpiry: expiry, rollover: rollover, overageAllowed: false, overageRate: nil, minPurchaseCredits: nil,
             creditPrice: nil, purchasedCreditsExpireAfterDays: nil, operationRates: [:])
    }

    let calendar = BillingCalendar(anchor: try! Instant(rfc3339: "2026-01-31T00:00:00Z"), interval: .month, timeZone: "UTC")
    let a = UUID()
    let b = UUID()

    @Test func rolloverPolicies() {
        #expect(plan("p", rollover: .none).carried(unused: Credits(400)) == .zero)
        #expect(plan("p", rollover: .all).carried(unused: Credits(400)) == Credits(400))
        #expect(plan("p", rollover: .capped(Credits(1000))).carried(unused: Credits(400)) == Credits(400))
        #expect(plan("p", rollover: .capped(Credits(1000))).carried(unused: Credits(1500)) == Credits(1000))
    }

    @Test func aCappedRolloverNeverExceedsTheCapOverAHundredRenewals() {
        let capped = plan("p", credits: 700, rollover: .capped(Credits(1000)))
        var rollover = Credits.zero
        for index in 0..<100 {
            // Spend a different share every period, sometimes nothing.
            let spent = Credits(index % 3 == 0 ? 0 : index % 700)
            let unused = max(.zero, rollover + Credits(700) - spent)
            let renewal = Renewal.plan(ending: calendar.period(index), endingCredits: [PlanCredits(bucketID: a, remaining: unused)],
                                       outgoing: capped, incoming: capped, nextPeriod: calendar.period(index + 1), canceling: false)
            #expect(renewal.carried <= Credits(1000))
            #expect(renewal.carried + renewal.expiring.map(\.credits).sum() == unused)
            rollover = renewal.carried
        }
    }

    @Test func aRenewalCarriesInBurnOrderAndExpiresTheRestBucketByBucket() {
        let renewal = Renewal.plan(ending: calendar.period(0),
                                   endingCredits: [PlanCredits(bucketID: a, remaining: Credits(300)), PlanCredits(bucketID: b, remaining: Credits(500))],
                                   outgoing: plan("p", rollover: .capped(Credits(600))), incoming: plan("q", credits: 2000),
                                   nextPeriod: calendar.period(1), canceling: false)
        #expect(renewal.carried == Credits(600))
        #expect(renewal.carriedFrom == [.init(bucketID: a, credits: Credits(300)), .init(bucketID: b, credits: Credits(300))])
        #expect(renewal.expiring == [.init(bucketID: b, credits: Credits(200))])
        #expect(renewal.allocation == Credits(2000))
        #expect(renewal.allocationExpiresAt == calendar.period(1).end)
        #expect(renewal.charge?.micros == 100_000_000)
    }

    @Test func aCancellationExpiresEverythingAndChargesNothing() {
        let renewal = Renewal.plan(ending: calendar.period(0), endingCredits: [PlanCredits(bucketID: a, remaining: Credits(300))],
                                   outgoing: plan("p", rollover: .all), incoming: plan("p"), nextPeriod: nil, canceling: true)
        #expect(renewal.carried == .zero)
        #expect(renewal.expiring == [.init(bucketID: a, credits: Credits(300))])
        #expect(renewal.charge == nil)
        #expect(renewal.allocation == .zero)
    }

    @Test func freePlansChargeNothingAndDaysPoliciesExpireByDays() {
        let free = plan("free", price: 0, credits: 50, expiry: .days(30))
        let renewal = Renewal.plan(ending: calendar.period(0), endingCredits: [], outgoing: free, incoming: free,
                                   nextPeriod: calendar.period(1), canceling: false)
        #expect(renewal.charge == nil)
        #expect(renewal.allocationExpiresAt == calendar.period(0).end.adding(days: 30))
    }

    @Test func anImmediateChangeCarriesPlanCreditsIntoTheNewTermUnlessTheNewPlanIsFree() {
        let now = try! Instant(rfc3339: "2026-05-08T10:00:00Z")
        let reanchored = BillingCalendar(anchor: now, interval: .month, timeZone: "UTC")
        let change = PlanChange.immediate(to: plan("basic", price: 100_000_000, credits: 1700), at: now,
                                          remainingPlanCredits: [PlanCredits(bucketID: a, remaining: Credits(400))], calendar: reanchored)
        #expect(change.carried == Credits(400))
        #expect(change.carriedExpiresAt?.rfc3339 == "2026-06-08T10:00:00Z")
        #expect(change.allocation == Credits(1700))
        #expect(change.charge?.amountText == "100.00")
        #expect(change.newPeriod.end.rfc3339 == "2026-06-08T10:00:00Z")
        let toFree = PlanChange.immediate(to: plan("free", price: 0, credits: 50), at: now,
                                          remainingPlanCredits: [PlanCredits(bucketID: a, remaining: Credits(400))], calendar: reanchored)
        #expect(toFree.carried == .zero)
        #expect(toFree.charge == nil)
    }
}

@Suite struct WebhookRetryTests {
    @Test func backsOffExponentiallyAndRetriesForAtLeastThreeDays() {
        let first = try! Instant(rfc3339: "2026-01-01T00:00:00Z")
        var now = first
        var attempt = 1
        var delays: [Int64] = []
        while let next = WebhookRetry.nextAttempt(after: attempt, firstAttemptAt: first, now: now) {
            delays.append(next.microseconds(since: now) / 1_000_000)
            now = next
            attempt += 1
        }
        #expect(Array(delays.prefix(6)) == [30, 60, 120, 240, 480, 960])
        #expect(delays.max() == WebhookRetry.longestDelaySeconds)
        #expect(now.microseconds(since: first) >= 3 * 86_400 * 1_000_000)
        #expect(now.microseconds(since: first) < 3 * 86_400 * 1_000_000 + 6 * 3600 * 1_000_000)
        #expect(attempt > 15)
    }
}
