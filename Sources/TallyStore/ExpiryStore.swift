import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyJSON

/// The expiry job: an `expiry` entry for every bucket past its `expires_at` with credits left,
/// dated at its expiry. Balances never count expired credits whether or not this has run; the
/// entry makes the ledger say so.
public struct ExpiryStore: Sendable {
    let database: Database

    /// Expires due buckets of `selection` up to `until`; returns how many. Buckets that a pending
    /// renewal will roll over (plan credits ending with a period not yet renewed) are the
    /// renewal's to settle, so that rollover always sees them.
    @discardableResult
    public func expireDue(_ selection: OrgSelection, until: Instant, limit: Int = 500) async throws -> Int {
        var expired = 0
        while true {
            let count: Int = try await database.transaction { connection in
                var sql = BoundSQL()
                let statement = """
                    SELECT b.org_id, b.bucket_id, b.remaining, b.expires_at, b.source FROM credit_buckets b JOIN orgs o ON o.org_id = b.org_id
                    WHERE b.remaining > 0 AND b.expires_at <= \(sql.bind(until)) AND \(selection.condition(&sql))
                      AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.org_id = b.org_id AND s.subscription_id = b.subscription_id
                                      AND s.status = 'active' AND s.current_period_end <= b.expires_at)
                    ORDER BY b.expires_at, b.bucket_id LIMIT \(sql.bind(limit))
                    FOR UPDATE OF b SKIP LOCKED
                    """
                let rows = try await connection.query(sql.query(statement), logger: database.logger).collect()
                var writes: [UUID: LedgerWrite] = [:]
                for row in rows {
                    let (orgID, bucketID, remaining, expiresAt, source) = try row.decode((UUID, UUID, Credits, Instant, String).self)
                    var write = writes[orgID] ?? LedgerWrite(orgID: orgID, key: nil)
                    write.add(.init(id: .v7(at: expiresAt), type: .expiry, reason: "credits expired", createdAt: expiresAt),
                              postings: [(bucketID, -remaining)])
                    write.emit(.creditsExpired, data: .object([("bucket_id", .id(bucketID)), ("source", .string(source)),
                                                               ("credits", .text(remaining)), ("expired_at", .string(expiresAt.rfc3339))]), at: expiresAt)
                    writes[orgID] = write
                }
                for write in writes.values { try await write.execute(on: connection, logger: database.logger) }
                return rows.count
            }
            expired += count
            if count < limit { return expired }
        }
    }

    /// `credits.expiring` for every bucket of `selection` with credits left that expires within
    /// its organisation's `expiry_warning_days` of `now`, once per bucket (the warning row and
    /// the event commit together; a second runner's insert finds the row and emits nothing).
    @discardableResult
    public func warnExpiring(_ selection: OrgSelection, at now: Instant, limit: Int = 500) async throws -> Int {
        var warned = 0
        while true {
            let count: Int = try await database.transaction { connection in
                var sql = BoundSQL()
                let time = sql.bind(now)
                let statement = """
                    WITH due AS (
                        SELECT b.org_id, b.bucket_id, b.remaining, b.expires_at, b.source
                        FROM credit_buckets b JOIN orgs o ON o.org_id = b.org_id
                        WHERE b.remaining > 0 AND b.expires_at > \(time) AND o.expiry_warning_days > 0
                          AND b.expires_at <= \(time) + make_interval(days => o.expiry_warning_days)
                          AND \(selection.condition(&sql))
                          AND NOT EXISTS (SELECT 1 FROM bucket_expiry_warnings w WHERE w.org_id = b.org_id AND w.bucket_id = b.bucket_id)
                        ORDER BY b.expires_at, b.bucket_id LIMIT \(sql.bind(limit))
                    ), warned AS (
                        INSERT INTO bucket_expiry_warnings (org_id, bucket_id, warned_at)
                        SELECT org_id, bucket_id, \(time) FROM due
                        ON CONFLICT DO NOTHING
                        RETURNING org_id, bucket_id
                    )
                    SELECT d.org_id, d.bucket_id, d.remaining, d.expires_at, d.source
                    FROM due d JOIN warned w ON w.org_id = d.org_id AND w.bucket_id = d.bucket_id
                    """
                let rows = try await connection.query(sql.query(statement), logger: database.logger).collect()
                for row in rows {
                    let (orgID, bucketID, remaining, expiresAt, source) = try row.decode((UUID, UUID, Credits, Instant, String).self)
                    try await EventOutbox.emit(.creditsExpiring, data: .object([("bucket_id", .id(bucketID)), ("source", .string(source)),
                                                                                ("credits", .text(remaining)), ("expires_at", .string(expiresAt.rfc3339))]),
                                               orgID: orgID, at: now, on: connection, logger: database.logger)
                }
                return rows.count
            }
            warned += count
            if count < limit { return warned }
        }
    }

    /// The earliest moment at or before `until` when something falls due for `selection`: a
    /// period end, a bucket expiry, an expiry warning or a hold expiry. Test clocks advance
    /// through these in order.
    public func nextDue(_ selection: OrgSelection, until: Instant) async throws -> Instant? {
        var sql = BoundSQL()
        let limit = sql.bind(until)
        let renewals = selection.condition(&sql)
        let expiries = selection.condition(&sql)
        let holds = selection.condition(&sql)
        let warnings = selection.condition(&sql)
        let statement = """
            SELECT min(due) FROM (
                SELECT min(s.current_period_end) AS due FROM subscriptions s JOIN orgs o ON o.org_id = s.org_id
                WHERE s.status = 'active' AND s.current_period_end <= \(limit) AND \(renewals)
                UNION ALL
                SELECT min(b.expires_at) FROM credit_buckets b JOIN orgs o ON o.org_id = b.org_id
                WHERE b.remaining > 0 AND b.expires_at <= \(limit) AND \(expiries)
                  AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.org_id = b.org_id AND s.subscription_id = b.subscription_id
                                  AND s.status = 'active' AND s.current_period_end <= b.expires_at)
                UNION ALL
                SELECT min(r.expires_at) FROM reservations r JOIN orgs o ON o.org_id = r.org_id
                WHERE r.status = 'active' AND r.expires_at <= \(limit) AND \(holds)
                UNION ALL
                SELECT min(warn_at) FROM (
                    SELECT greatest(b.expires_at - make_interval(days => o.expiry_warning_days), b.granted_at) AS warn_at, b.expires_at
                    FROM credit_buckets b JOIN orgs o ON o.org_id = b.org_id
                    WHERE b.remaining > 0 AND o.expiry_warning_days > 0 AND \(warnings)
                      AND NOT EXISTS (SELECT 1 FROM bucket_expiry_warnings w WHERE w.org_id = b.org_id AND w.bucket_id = b.bucket_id)
                ) AS warnings WHERE warn_at <= \(limit) AND warn_at < expires_at
            ) AS due_times
            """
        let rows = try await database.pool.query(sql.query(statement), logger: database.logger).collect()
        return try rows.first?.decode(Instant?.self)
    }
}
