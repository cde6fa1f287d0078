import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyJSON

/// What every spend (and, negatively, every reversal) updates beside its entry, in the same
/// statement: the monthly rollup, the period's counters, the period's alert thresholds, and the
/// low-balance event.
enum UsageAccounting {
    /// Spends of `credits` (of which `overage` uncovered), counted in the month and the period.
    static func spend(_ credits: Credits, overage: Credits, transactions: Int = 1, at time: Instant, terms: SpendTerms,
                      availableBefore: Credits, availableAfter: Credits, orgID: UUID, into write: inout LedgerWrite) {
        let month = CalendarMonth(containing: time, in: terms.timezone)
        write.with { sql in
            """
            INSERT INTO usage_months (org_id, month, credits_used, transactions)
            VALUES (\(sql.bind(orgID)), \(sql.bind(month)), \(sql.bind(credits)), \(sql.bind(transactions)))
            ON CONFLICT (org_id, month) DO UPDATE SET credits_used = usage_months.credits_used + EXCLUDED.credits_used,
                                                      transactions = usage_months.transactions + EXCLUDED.transactions
            """
        }
        if let period = terms.period {
            countAndAlert(credits, overage: overage, period: period, thresholds: terms.alertThresholdsPercent, at: time, orgID: orgID, into: &write)
        }
        if LowBalanceRule.crossed(threshold: terms.lowBalanceCredits, before: availableBefore, after: availableAfter), let low = terms.lowBalanceCredits {
            write.emit(.balanceLow, data: .object([("available", .text(availableAfter)), ("threshold", .text(low))]), at: time)
        }
    }

    /// The period's counters, and every alert threshold the spend crosses: fired at most once per
    /// period (a unique row per threshold), so spends crossing together fire it once between them.
    private static func countAndAlert(_ credits: Credits, overage: Credits, period: LivePeriod, thresholds: [Int], at time: Instant,
                                      orgID: UUID, into write: inout LedgerWrite) {
        write.with(name: "counted") { sql in
            """
            UPDATE usage_periods SET used_credits = used_credits + \(sql.bind(credits)), overage_credits = overage_credits + \(sql.bind(overage))
            WHERE org_id = \(sql.bind(orgID)) AND period_start = \(sql.bind(period.start))
            RETURNING allocation, used_credits
            """
        }
        guard !thresholds.isEmpty else { return }
        write.with(name: "crossed") { sql in
            """
            SELECT t.percent, gen_random_uuid() AS event_id, c.used_credits, c.allocation
            FROM counted c CROSS JOIN unnest(\(sql.bind(thresholds))::integer[]) AS t (percent)
            WHERE c.allocation > 0
              AND (c.used_credits - \(sql.bind(credits))) * 100 < c.allocation * t.percent
              AND c.used_credits * 100 >= c.allocation * t.percent
            """
        }
        write.with(name: "fired") { sql in
            """
            INSERT INTO alert_firings (org_id, period_start, percent, event_id, fired_at)
            SELECT \(sql.bind(orgID)), \(sql.bind(period.start)), percent, event_id, \(sql.bind(time)) FROM crossed
            ON CONFLICT DO NOTHING RETURNING percent, event_id
            """
        }
        write.with { sql in
            let org = sql.bind(orgID)
            return """
                INSERT INTO events (org_id, event_id, type, data, created_at)
                SELECT \(org), f.event_id, 'usage.threshold_reached',
                       jsonb_build_object('percent', f.percent, 'used', c.used_credits::text, 'allocation', c.allocation::text,
                                          'period_start', \(sql.bind(period.start.rfc3339))::text, 'period_end', \(sql.bind(period.end.rfc3339))::text),
                       \(sql.bind(time))
                FROM fired f JOIN crossed c ON c.percent = f.percent
                """
        }
        write.with { sql in
            let org = sql.bind(orgID)
            return """
                INSERT INTO webhook_deliveries (\(EventOutbox.deliveryColumns))
                SELECT \(org), gen_random_uuid(), f.event_id, e.endpoint_id, 'pending', \(sql.bind(time))
                FROM fired f JOIN webhook_endpoints e
                  ON e.active AND (e.org_id = \(org) OR e.org_id IS NULL) AND ('usage.threshold_reached' = ANY(e.events) OR '*' = ANY(e.events))
                """
        }
    }

    /// A reversal gives back `credits` (of which `overage` from the draft invoice) of usage made
    /// at `usedAt`: the month and the period of that usage are reduced.
    static func reverse(_ credits: Credits, overage: Credits, usedAt: Instant, timezone: String, orgID: UUID, into write: inout LedgerWrite) {
        let month = CalendarMonth(containing: usedAt, in: timezone)
        write.with { sql in
            """
            UPDATE usage_months SET credits_used = credits_used - \(sql.bind(credits))
            WHERE org_id = \(sql.bind(orgID)) AND month = \(sql.bind(month))
            """
        }
        PeriodBilling.count(used: -credits, overage: -overage, at: usedAt, orgID: orgID, into: &write)
    }
}
