import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyJSON

extension SubscriptionStore {
    /// Renews every subscription of `selection` whose period ended by `until`, each caught up
    /// period by period in order. Returns the number of periods renewed.
    ///
    /// Exactly once per period: each renewal locks the subscription row and only acts while its
    /// period has ended, and the database refuses a second allocation or charge for one period.
    /// Concurrent runners skip rows another holds; a late run writes what an on-time run would,
    /// because every entry is dated at the period boundary, not at the time the job runs.
    @discardableResult
    public func renewDue(_ selection: OrgSelection, until: Instant, limit: Int = 1000, concurrency: Int = 24) async throws -> Int {
        let plans = PlanCache(catalog: catalog)
        var renewed = 0
        while true {
            var sql = BoundSQL()
            let statement = """
                SELECT s.org_id, s.subscription_id FROM subscriptions s JOIN orgs o ON o.org_id = s.org_id
                WHERE s.status = 'active' AND s.current_period_end <= \(sql.bind(until)) AND \(selection.condition(&sql))
                ORDER BY s.current_period_end LIMIT \(sql.bind(limit))
                """
            let rows = try await database.client.query(sql.query(statement), logger: database.logger).collect()
            let due = try rows.map { try $0.decode((UUID, UUID).self) }
            // Subscriptions renew independently: several at once, each its periods in order.
            let progressed = try await withThrowingTaskGroup(of: Int.self) { group in
                var next = due.makeIterator()
                func addNext() -> Bool {
                    guard let (orgID, subscriptionID) = next.next() else { return false }
                    group.addTask {
                        var periods = 0
                        while let nextEnd = try await renewNextPeriod(orgID: orgID, subscriptionID: subscriptionID, until: until,
                                                                     skipLocked: true, plans: plans) {
                            periods += 1
                            if nextEnd > until { break }
                        }
                        return periods
                    }
                    return true
                }
                for _ in 0..<concurrency where !addNext() { break }
                var total = 0
                while let periods = try await group.next() {
                    total += periods
                    _ = addNext()
                }
                return total
            }
            renewed += progressed
            if rows.count < limit || progressed == 0 { return renewed }
        }
    }

    /// Catches one organisation up before a request is served (waits for a renewal in progress).
    public func catchUp(orgID: UUID, until: Instant) async throws {
        guard let subscription = try await current(orgID: orgID), subscription.status == .active else { return }
        let plans = PlanCache(catalog: catalog)
        while let nextEnd = try await renewNextPeriod(orgID: orgID, subscriptionID: subscription.id, until: until, skipLocked: false, plans: plans),
              nextEnd <= until {}
    }

    /// Renews one period if it has ended by `until`, returning when the new period ends (the
    /// subscription's end when it was cancelled); nil when there was nothing to do.
    func renewNextPeriod(orgID: UUID, subscriptionID: UUID, until: Instant, skipLocked: Bool, plans: PlanCache) async throws -> Instant? {
        let logger = database.logger
        return try await database.transaction { connection in
            let rows = try await connection.query("""
                SELECT \(unescaped: Self.columns), o.timezone
                FROM subscriptions s JOIN orgs o ON o.org_id = s.org_id
                WHERE s.org_id = \(orgID) AND s.subscription_id = \(subscriptionID)
                  AND s.status = 'active' AND s.current_period_end <= \(until)
                FOR UPDATE OF s \(unescaped: skipLocked ? "SKIP LOCKED" : "")
                """, logger: logger).collect()
            guard let row = rows.first else { return nil }
            let subscription = try Self.decode(row)
            let timezone = try row.makeRandomAccess()[12].decode(String.self)
            let boundary = subscription.period.end
            guard let outgoing = try await plans.plan(subscription.planCode, on: connection, logger: logger),
                  let incoming = try await plans.plan(subscription.scheduledPlanCode ?? subscription.planCode, on: connection, logger: logger) else {
                throw TallyError(.unavailable, code: "plan_missing", detail: "A subscribed plan is missing from the catalog.")
            }
            let canceling = subscription.cancelAtPeriodEnd
            let (ending, earliestGrant) = try await Self.lockPlanCredits(orgID: orgID, subscriptionID: subscriptionID,
                                                                         endingAt: canceling ? nil : boundary, on: connection, logger: logger)
            // The same interval keeps the anchor; a new interval starts a new cycle at the boundary.
            let keepsAnchor = incoming.interval == outgoing.interval
            let anchor = keepsAnchor ? subscription.anchor : boundary
            let nextIndex = keepsAnchor ? subscription.period.index + 1 : 0
            let nextPeriod = canceling ? nil : BillingCalendar(anchor: anchor, interval: incoming.interval, timeZone: timezone).period(nextIndex)
            let renewal = Renewal.plan(ending: subscription.period, endingCredits: ending, outgoing: outgoing, incoming: incoming,
                                       nextPeriod: nextPeriod, canceling: canceling)

            var write = LedgerWrite(orgID: orgID)
            Self.expire(renewal.expiring.map { PlanCredits(bucketID: $0.bucketID, remaining: $0.credits) }, at: boundary,
                        reason: canceling ? "subscription ended" : "plan period ended", into: &write)
            if let nextPeriod {
                _ = Self.carry(renewal.carriedFrom, grantedAt: earliestGrant, subscriptionID: subscriptionID, periodStart: nextPeriod.start,
                               expiresAt: renewal.rolloverExpiresAt, at: boundary, reason: "rollover into the next period", into: &write)
                if renewal.allocation.isPositive {
                    write.grant(.planAllocation, credits: renewal.allocation, effectiveAt: boundary, expiresAt: renewal.allocationExpiresAt,
                                at: boundary, reason: "\(incoming.name): period \(nextPeriod.index + 1)", subscriptionID: subscriptionID,
                                periodStart: nextPeriod.start)
                }
                PeriodBilling.openPeriod(nextPeriod, subscriptionID: subscriptionID, allocation: renewal.allocation, orgID: orgID, into: &write)
                write.emit(.subscriptionRenewed, data: .object([
                    ("subscription_id", .id(subscriptionID)), ("plan", .string(incoming.code)), ("previous_plan", .string(outgoing.code)),
                    ("period_start", .string(nextPeriod.start.rfc3339)), ("period_end", .string(nextPeriod.end.rfc3339)),
                    ("allocation", .text(renewal.allocation)), ("carried", .text(renewal.carried)),
                ]), at: boundary)
                write.with { sql in
                    """
                    UPDATE subscriptions SET plan_code = \(sql.bind(incoming.code)), scheduled_plan_code = NULL, anchor_at = \(sql.bind(anchor)),
                        period_index = \(sql.bind(nextPeriod.index)), current_period_start = \(sql.bind(nextPeriod.start)),
                        current_period_end = \(sql.bind(nextPeriod.end))
                    WHERE org_id = \(sql.bind(orgID)) AND subscription_id = \(sql.bind(subscriptionID))
                    """
                }
            } else {
                write.emit(.subscriptionChanged, data: Self.changed("canceled", subscriptionID: subscriptionID, from: outgoing.code,
                                                                    to: outgoing.code, effectiveAt: boundary), at: boundary)
                write.with { sql in
                    """
                    UPDATE subscriptions SET status = 'canceled', canceled_at = \(sql.bind(boundary)), cancel_at_period_end = false
                    WHERE org_id = \(sql.bind(orgID)) AND subscription_id = \(sql.bind(subscriptionID))
                    """
                }
            }
            try await write.execute(on: connection, logger: logger)
            // The ended period's overage is invoiced first, then the new period's charge.
            try await PeriodBilling.finalizeOverage(subscriptionID: subscriptionID, periodStart: subscription.period.start, orgID: orgID,
                                                    at: boundary, on: connection, logger: logger)
            if let nextPeriod {
                try await Self.charge(incoming, for: subscriptionID, period: nextPeriod, orgID: orgID, at: boundary, on: connection, logger: logger)
            }
            logger.info("subscription renewed", metadata: [
                "org.id": "\(orgID.idString)", "subscription.id": "\(subscriptionID.idString)",
                "period.start": "\(nextPeriod?.start.rfc3339 ?? "ended")",
            ])
            return nextPeriod?.end ?? .distantFuture
        }
    }
}

/// Plans read once per renewal run: a plan in use never changes, so one read serves every
/// subscription renewed on it. A miss is read on the caller's own connection: a transaction
/// never waits for a second connection from the pool, which concurrent renewals would exhaust.
actor PlanCache {
    private var plans: [String: Plan] = [:]

    init(catalog: CatalogStore) {}

    func plan(_ code: String, on connection: PostgresConnection, logger: Logger) async throws -> Plan? {
        if let plan = plans[code] { return plan }
        let rows = try await connection.query("SELECT \(unescaped: PlanRows.columns) FROM plans WHERE code = \(code)", logger: logger).collect()
        let plan = try rows.first.map(PlanRows.decode)
        plans[code] = plan
        return plan
    }
}
