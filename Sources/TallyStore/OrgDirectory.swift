import Foundation
import Logging
import PostgresNIO
import TallyCore

/// A change to an organisation's own fields: absent members stay; `external_id: null` clears it.
public struct OrganisationPatch: Sendable {
    public var name: String?
    public var externalID: SettingsPatch.Field<String> = .unchanged
    public var timezone: String?

    public init(name: String? = nil, externalID: SettingsPatch.Field<String> = .unchanged, timezone: String? = nil) {
        self.name = name
        self.externalID = externalID
        self.timezone = timezone
    }
}

/// Finding organisations by the integrator's own id, listing them, and changing their fields.
extension OrgStore {
    /// Organisations in creation order (ids are time-ordered), optionally only the one with
    /// `externalID` (an unknown one is an empty page).
    public func list(externalID: String?, limit: Int, after cursor: UUID?) async throws -> Page<Organisation> {
        let rows = try await database.pool.query("""
            SELECT org_id, name, external_id, timezone, test_clock_id, created_at FROM orgs
            WHERE (\(externalID)::text IS NULL OR external_id = \(externalID))
              AND (\(cursor)::uuid IS NULL OR org_id > \(cursor))
            ORDER BY org_id LIMIT \(limit + 1)
            """, logger: database.logger).collect()
        var orgs = try rows.map { row in
            let (id, name, externalID, timezone, clockID, createdAt) = try row.decode((UUID, String, String?, String, UUID?, Instant).self)
            return Organisation(id: id, name: name, externalID: externalID, timezone: timezone, testClockID: clockID, createdAt: createdAt)
        }
        let hasMore = orgs.count > limit
        if hasMore { orgs.removeLast() }
        return Page(items: orgs, nextCursor: hasMore ? orgs.last?.id.idString : nil)
    }

    /// Applies `patch`; nil when there is no such organisation. A new time zone re-sums the
    /// organisation's monthly usage rollup (its months are calendar months in that zone) in the
    /// same transaction, so the summary never mixes two zones.
    public func update(_ id: UUID, _ patch: OrganisationPatch) async throws -> Organisation? {
        if let timezone = patch.timezone { try Organisation.validateTimezone(timezone) }
        let (externalIDSet, externalID): (Bool, String?) = switch patch.externalID {
        case .unchanged: (false, nil)
        case .cleared: (true, nil)
        case .set(let value): (true, value)
        }
        do {
            return try await database.transaction { connection in
                let rows = try await connection.query("""
                    UPDATE orgs SET name = coalesce(\(patch.name), name),
                                    external_id = CASE WHEN \(externalIDSet) THEN \(externalID) ELSE external_id END,
                                    timezone = coalesce(\(patch.timezone), timezone)
                    WHERE org_id = \(id)
                    RETURNING org_id, name, external_id, timezone, test_clock_id, created_at,
                              (SELECT timezone FROM orgs WHERE org_id = \(id)) AS old_timezone
                    """, logger: database.logger).collect()
                guard let row = rows.first else { return nil }
                let (orgID, name, externalID, timezone, clockID, createdAt, oldTimezone) =
                    try row.decode((UUID, String, String?, String, UUID?, Instant, String).self)
                if timezone != oldTimezone {
                    try await resumUsageMonths(orgID: orgID, on: connection)
                }
                return Organisation(id: orgID, name: name, externalID: externalID, timezone: timezone, testClockID: clockID, createdAt: createdAt)
            }
        } catch let error as PSQLError where error.sqlState == SQLState.uniqueViolation {
            throw TallyError.conflict("external_id_taken", "Another organisation already has external_id '\(externalID ?? "")'.")
        } catch let error as PSQLError where error.sqlState == "22023" {
            // A zone Foundation knows and PostgreSQL's zone database does not: nothing was changed.
            throw TallyError.validation("'\(patch.timezone ?? "")' is not a time zone the database knows.", field: "timezone")
        }
    }

    /// The monthly usage rollup of one organisation, summed again from its ledger (as migration
    /// 0006 first did for all).
    private func resumUsageMonths(orgID: UUID, on connection: DatabaseConnection) async throws {
        try await connection.query("DELETE FROM usage_months WHERE org_id = \(orgID)", logger: database.logger)
        try await connection.query("""
            INSERT INTO usage_months (org_id, month, credits_used, transactions)
            SELECT \(orgID), month, sum(credits_used), sum(transactions) FROM (
                SELECT date_trunc('month', u.created_at AT TIME ZONE o.timezone)::date AS month,
                       -u.credits + u.overage_credits AS credits_used, 1 AS transactions
                FROM ledger_entries u JOIN orgs o ON o.org_id = u.org_id
                WHERE u.org_id = \(orgID) AND u.type = 'usage'
                UNION ALL
                SELECT date_trunc('month', u.created_at AT TIME ZONE o.timezone)::date,
                       -(r.credits - r.overage_credits), 0
                FROM ledger_entries r
                JOIN ledger_entries u ON u.org_id = r.org_id AND u.entry_id = r.related_entry_id
                JOIN orgs o ON o.org_id = r.org_id
                WHERE r.org_id = \(orgID) AND r.type = 'reversal'
            ) AS usage GROUP BY month
            """, logger: database.logger)
    }
}
