import Foundation
import Logging
import PostgresNIO
import TallyCore

/// Reading and locking buckets. Any set of buckets is locked in burn-down order, the one order
/// every transaction uses, so that two transactions can never wait on each other's buckets.
enum BucketQueries {
    /// The most buckets one spend plans over; an organisation with more spendable buckets spends
    /// from the first ones in burn-down order.
    static let spendableBucketsMaximum = 1000

    static let columns = "bucket_id, source, granted, remaining, priority, effective_at, expires_at, granted_at"
    static let burnOrder = "priority, expires_at NULLS LAST, granted_at, bucket_id"

    static func decode(_ rows: [PostgresRow]) throws -> [CreditBucket] {
        try rows.map { row in
            let (id, source, granted, remaining, priority, effectiveAt, expiresAt, grantedAt) =
                try row.decode((UUID, String, Credits, Credits, Int, Instant, Instant?, Instant).self)
            return CreditBucket(id: id, source: try StoredValue.decode(BucketSource.self, source, column: "credit_buckets.source"), granted: granted, remaining: remaining,
                                priority: priority, effectiveAt: effectiveAt, expiresAt: expiresAt, grantedAt: grantedAt)
        }
    }

    /// Locks the organisation's spendable buckets at `now`, in burn-down order.
    /// Refuses a grant or purchase that would take the organisation past `Credits.balanceMaximum`.
    static func checkRoom(for credits: Credits, orgID: UUID, on connection: DatabaseConnection, logger: Logger) async throws {
        let rows = try await connection.query("""
            SELECT coalesce(sum(remaining), 0) FROM credit_buckets WHERE org_id = \(orgID) AND remaining > 0
            """, logger: logger).collect()
        let held = try rows.first?.decode(Credits.self) ?? .zero
        guard held + credits <= Credits.balanceMaximum else {
            throw TallyError(.unprocessable, code: "balance_limit_exceeded",
                             detail: "An organisation holds at most \(Credits.balanceMaximum) credits; it holds \(held).", field: "credits")
        }
    }

    static func lockSpendable(orgID: UUID, at now: Instant, on connection: DatabaseConnection, logger: Logger) async throws -> [CreditBucket] {
        let rows = try await connection.query("""
            SELECT \(unescaped: columns) FROM credit_buckets
            WHERE org_id = \(orgID) AND remaining > 0 AND effective_at <= \(now) AND (expires_at IS NULL OR expires_at > \(now))
            ORDER BY \(unescaped: burnOrder)
            LIMIT \(spendableBucketsMaximum)
            FOR UPDATE
            """, logger: logger).collect()
        return try decode(rows)
    }

    /// Locks the given buckets, whatever their state, in burn-down order.
    static func lock(orgID: UUID, ids: [UUID], on connection: DatabaseConnection, logger: Logger) async throws -> [CreditBucket] {
        guard !ids.isEmpty else { return [] }
        let rows = try await connection.query("""
            SELECT \(unescaped: columns) FROM credit_buckets
            WHERE org_id = \(orgID) AND bucket_id = ANY(\(ids))
            ORDER BY \(unescaped: burnOrder)
            FOR UPDATE
            """, logger: logger).collect()
        return try decode(rows)
    }

    /// The organisation's spendable buckets at `now`, without locking: what balance reads show.
    static func spendable(orgID: UUID, at now: Instant, on pool: DatabasePool, logger: Logger) async throws -> [CreditBucket] {
        let rows = try await pool.query("""
            SELECT \(unescaped: columns) FROM credit_buckets
            WHERE org_id = \(orgID) AND remaining > 0 AND effective_at <= \(now) AND (expires_at IS NULL OR expires_at > \(now))
            ORDER BY \(unescaped: burnOrder)
            LIMIT \(spendableBucketsMaximum)
            """, logger: logger).collect()
        return try decode(rows)
    }

    /// What an entry took from each bucket (its negative postings), in burn-down order: the
    /// order the spend drew them, because the order's keys never change.
    static func draws(ofEntry entryID: UUID, orgID: UUID, on connection: DatabaseConnection, logger: Logger) async throws -> [BurnDownPlan.Draw] {
        let rows = try await connection.query("""
            SELECT p.bucket_id, -p.credits FROM ledger_postings p
            JOIN credit_buckets b ON b.org_id = p.org_id AND b.bucket_id = p.bucket_id
            WHERE p.org_id = \(orgID) AND p.entry_id = \(entryID) AND p.credits < 0
            ORDER BY b.priority, b.expires_at NULLS LAST, b.granted_at, b.bucket_id
            """, logger: logger).collect()
        return try rows.map { row in
            let (bucketID, credits) = try row.decode((UUID, Credits).self)
            return BurnDownPlan.Draw(bucketID: bucketID, credits: credits)
        }
    }
}
