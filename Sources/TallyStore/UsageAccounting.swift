import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyJSON

/// What a settled hold (and, negatively, a reversal) updates beside its entry: the monthly rollup,
/// the period's counters and, for usage, the period's alert thresholds.
enum UsageAccounting {
    /// A settled hold's usage, counted in its month and its period with the alert thresholds it
    /// crosses: by the very statement plain spends write theirs with (one rollup and nothing else),
    /// so the threshold rule exists once. Held credits left the balance when they were held: the
    /// balance, and so the low-balance rule, is not touched here.
    static func countCapture(_ credits: Credits, at time: Instant, terms: SpendTerms, orgID: UUID,
                             on connection: DatabaseConnection, logger: Logger) async throws {
        var write = SpendWriteStatement()
        write.rollups.append(.init(orgID: orgID, now: time, credits: credits, overage: .zero, transactions: 1, terms: terms))
        _ = try await connection.execute(write, logger: logger)
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
