import Foundation
import Logging
import PostgresNIO
import TallyCore

/// The cron's share of auto top-up: organisations whose balance fell below their threshold with
/// no spend to notice it (credits expired, a hold taken) get their pack. Each organisation in its
/// own transaction, under the same hourly claim as a spend's top-up: a failure is recorded with an
/// `auto_topup.failed` event and not tried again before the hour has passed, so nothing loops.
extension PurchaseStore {
    @discardableResult
    public func topUpDue(_ selection: OrgSelection, at now: Instant, limit: Int = 500) async throws -> Int {
        var sql = BoundSQL()
        let time = sql.bind(now)
        let statement = """
            SELECT o.org_id, o.auto_topup_threshold, o.auto_topup_pack, coalesce(b.available, 0)
            FROM orgs o
            LEFT JOIN LATERAL (
                SELECT sum(b.remaining) AS available FROM credit_buckets b
                WHERE b.org_id = o.org_id AND b.remaining > 0 AND b.effective_at <= \(time)
                  AND (b.expires_at IS NULL OR b.expires_at > \(time))
            ) b ON true
            WHERE o.auto_topup_enabled AND o.auto_topup_threshold IS NOT NULL AND o.auto_topup_pack IS NOT NULL
              AND (o.last_auto_topup_at IS NULL OR o.last_auto_topup_at <= \(sql.bind(now.adding(seconds: -Self.autoTopUpIntervalSeconds))))
              AND \(selection.condition(&sql))
              AND coalesce(b.available, 0) < o.auto_topup_threshold
            ORDER BY o.org_id LIMIT \(sql.bind(limit))
            """
        let rows = try await database.pool.query(sql.query(statement), logger: database.logger)
        var bought = 0
        for row in rows {
            let (orgID, threshold, pack, available) = try row.decode((UUID, Credits, String, Credits).self)
            let terms = SpendTerms.AutoTopUp(thresholdCredits: threshold, packCode: pack)
            let outcome = try await database.transaction { connection in
                var write = LedgerWrite(orgID: orgID, key: nil)
                let outcome = try await Self.autoTopUp(terms, cause: .balance(available), orgID: orgID, triggeredBy: nil, at: now,
                                                       into: &write, on: connection, logger: database.logger)
                try await write.execute(on: connection, logger: database.logger)
                return outcome
            }
            if outcome != nil { bought += 1 }
        }
        return bought
    }
}
