import Foundation
import Logging
import PostgresNIO
import TallyCore

public struct MonthUsage: Sendable, Equatable {
    public let month: CalendarMonth
    public let creditsUsed: Credits
    public let transactions: Int64
    public let current: Bool
}

/// One operation's usage in one month.
public struct OperationUsage: Sendable, Equatable {
    public let operation: String?
    public let creditsUsed: Credits
    public let transactions: Int64
}

/// Reports over usage: the monthly summary (from the maintained rollup) and exports (keyset
/// pages of the usage index, so that an export of any size holds one page at a time).
public struct ReportStore: Sendable {
    let database: Database
    public static let exportPageSize = 1000

    /// The current month and the `months - 1` before it, newest first, in the organisation's time
    /// zone; months without usage are listed with zeros.
    public func monthlySummary(orgID: UUID, timezone: String, at now: Instant, months: Int) async throws -> [MonthUsage] {
        let current = CalendarMonth(containing: now, in: timezone)
        let oldest = current.minus(months - 1)
        let rows = try await database.pool.query("""
            SELECT month, credits_used, transactions FROM usage_months
            WHERE org_id = \(orgID) AND month >= \(oldest) AND month <= \(current)
            """, logger: database.logger).collect()
        var found: [CalendarMonth: (Credits, Int64)] = [:]
        for row in rows {
            let (month, credits, transactions) = try row.decode((CalendarMonth, Credits, Int64).self)
            found[month] = (credits, transactions)
        }
        return (0..<months).map { offset in
            let month = current.minus(offset)
            let (credits, transactions) = found[month] ?? (.zero, 0)
            return MonthUsage(month: month, creditsUsed: credits, transactions: transactions, current: offset == 0)
        }
    }

    /// Usage per operation in each month from `oldest` through `newest` (seed 004 "features
    /// used"), net of reversals in the month of the usage they reverse, as the rollup counts it.
    /// Read from the ledger: a report for a handful of months, not a per-spend path. Raw-credit
    /// spends have no operation (nil).
    public func operationUsage(orgID: UUID, timezone: String, oldest: CalendarMonth, newest: CalendarMonth) async throws -> [CalendarMonth: [OperationUsage]] {
        let rows = try await database.pool.query("""
            WITH bounds AS (
                SELECT (\(oldest)::date::timestamp AT TIME ZONE \(timezone)) AS low,
                       ((\(newest)::date + interval '1 month')::timestamp AT TIME ZONE \(timezone)) AS high
            )
            SELECT month, operation, sum(credits_used), sum(transactions)::bigint FROM (
                SELECT date_trunc('month', u.created_at AT TIME ZONE \(timezone))::date AS month, u.operation,
                       -u.credits + u.overage_credits AS credits_used, 1 AS transactions
                FROM ledger_entries u, bounds
                WHERE u.org_id = \(orgID) AND u.type = 'usage' AND u.created_at >= bounds.low AND u.created_at < bounds.high
                UNION ALL
                SELECT date_trunc('month', u.created_at AT TIME ZONE \(timezone))::date, u.operation,
                       -(r.credits - r.overage_credits), 0
                FROM ledger_entries r
                JOIN ledger_entries u ON u.org_id = r.org_id AND u.entry_id = r.related_entry_id, bounds
                WHERE r.org_id = \(orgID) AND r.type = 'reversal' AND u.created_at >= bounds.low AND u.created_at < bounds.high
            ) AS usage
            GROUP BY month, operation
            ORDER BY month, sum(credits_used) DESC, operation NULLS LAST
            """, logger: database.logger).collect()
        var months: [CalendarMonth: [OperationUsage]] = [:]
        for row in rows {
            let (month, operation, credits, transactions) = try row.decode((CalendarMonth, String?, Credits, Int64).self)
            months[month, default: []].append(OperationUsage(operation: operation, creditsUsed: credits, transactions: transactions))
        }
        return months
    }

    /// Where an export page ends: the next page starts after it.
    public struct ExportCursor: Sendable {
        public let createdAt: Instant
        public let sequence: Int64

        public init(createdAt: Instant, sequence: Int64) {
            self.createdAt = createdAt
            self.sequence = sequence
        }
    }

    /// One page of usage entries in `[from, to)`, oldest first.
    public func usagePage(orgID: UUID, from: Instant?, to: Instant?, after cursor: ExportCursor?) async throws -> [LedgerEntry] {
        let rows = try await database.pool.query("""
            SELECT entry_id, seq, type, credits, overage_credits, operation, quantity, params::text, event_id, event_name,
                   actor, metadata::text, reason, related_entry_id, reservation_id, created_at, api_key_id, api_key_prefix
            FROM ledger_entries
            WHERE org_id = \(orgID) AND type = 'usage'
              AND (\(from)::timestamptz IS NULL OR created_at >= \(from))
              AND (\(to)::timestamptz IS NULL OR created_at < \(to))
              AND (\(cursor?.createdAt)::timestamptz IS NULL OR (created_at, seq) > (\(cursor?.createdAt), \(cursor?.sequence)))
            ORDER BY created_at, seq
            LIMIT \(Self.exportPageSize)
            """, logger: database.logger).collect()
        return try rows.map(LedgerQueries.decodeEntry)
    }
}
