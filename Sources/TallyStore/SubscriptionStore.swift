import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyJSON

/// Subscriptions: starting, changing, cancelling and renewing an organisation's plan.
public struct SubscriptionStore: Sendable {
    let database: Database
    let catalog: CatalogStore

    static let columns = """
        s.subscription_id, s.org_id, s.plan_code, s.status, s.anchor_at, s.period_index, s.current_period_start,
        s.current_period_end, s.cancel_at_period_end, s.scheduled_plan_code, s.created_at, s.canceled_at
        """

    static func decode(_ row: PostgresRow) throws -> Subscription {
        let c = row.makeRandomAccess()
        return Subscription(
            id: try c[0].decode(UUID.self), orgID: try c[1].decode(UUID.self), planCode: try c[2].decode(String.self),
            status: try StoredValue.decode(Subscription.Status.self, try c[3].decode(String.self), column: "subscriptions.status"), anchor: try c[4].decode(Instant.self),
            period: BillingPeriod(index: try c[5].decode(Int.self), start: try c[6].decode(Instant.self), end: try c[7].decode(Instant.self)),
            cancelAtPeriodEnd: try c[8].decode(Bool.self), scheduledPlanCode: try c[9].decode(String?.self),
            createdAt: try c[10].decode(Instant.self), canceledAt: try c[11].decode(Instant?.self)
        )
    }

    public struct Started: Sendable {
        public let subscription: Subscription
        public let plan: Plan
        public let invoice: Invoice?
    }

    /// Starts a subscription at `startAt` (default now; never in the future): grants the first
    /// period's credits, issues its invoice and sets the period. A start in the past is caught up.
    /// Exactly once per idempotency key: a retry replays the first answer (not `subscription_exists`).
    public func subscribe(orgID: UUID, planCode: String, startAt: Instant?, at now: Instant,
                          claim: IdempotencyClaim? = nil, render: @escaping ResponseRenderer<Started>) async throws -> StoredResponse {
        guard let plan = try await catalog.plan(planCode) else {
            throw TallyError.validation("There is no plan '\(planCode)'.", field: "plan")
        }
        let start = startAt ?? now
        guard start <= now else { throw TallyError.validation("start_at must not be in the future.", field: "start_at") }
        guard start >= now.adding(days: -366) else { throw TallyError.validation("start_at may be at most a year in the past.", field: "start_at") }
        let (answer, value) = try await database.idempotentWork(orgID: orgID, claim: claim, at: now, render: render) { connection in
            let timezone = try await Self.timezone(orgID: orgID, on: connection, logger: database.logger)
            let period = BillingCalendar(anchor: start, interval: plan.interval, timeZone: timezone).period(0)
            let subscription = Subscription(id: .v7(at: start), orgID: orgID, planCode: plan.code, status: .active, anchor: start,
                                            period: period, cancelAtPeriodEnd: false, scheduledPlanCode: nil, createdAt: start, canceledAt: nil)
            do {
                try await connection.query("""
                    INSERT INTO subscriptions (org_id, subscription_id, plan_code, status, anchor_at, period_index, current_period_start,
                        current_period_end, created_at, changed_at, changed_by_key_id, changed_by_key_prefix)
                    VALUES (\(orgID), \(subscription.id), \(plan.code), 'active', \(start), 0, \(period.start), \(period.end), \(start),
                            \(now), \(KeyStamp.current?.id), \(KeyStamp.current?.prefix))
                    """, logger: database.logger)
            } catch let error as PSQLError where error.sqlState == SQLState.uniqueViolation {
                throw TallyError.conflict("subscription_exists", "The organisation already has a live subscription; change or cancel it.")
            }
            var write = LedgerWrite(orgID: orgID)
            if plan.creditsPerPeriod.isPositive {
                write.grant(.planAllocation, credits: plan.creditsPerPeriod, effectiveAt: start,
                            expiresAt: plan.creditsExpiry(grantedAt: start, periodEnd: period.end), at: start,
                            reason: "\(plan.name): first period", subscriptionID: subscription.id, periodStart: period.start)
            }
            PeriodBilling.openPeriod(period, subscriptionID: subscription.id, allocation: plan.creditsPerPeriod, orgID: orgID, into: &write)
            write.emit(.subscriptionChanged, data: Self.changed("started", subscriptionID: subscription.id, from: nil, to: plan.code, effectiveAt: start), at: start)
            try await write.execute(on: connection, logger: database.logger)
            let invoice = try await Self.charge(plan, for: subscription.id, period: period, orgID: orgID, at: start, on: connection, logger: database.logger)
            return Started(subscription: subscription, plan: plan, invoice: invoice)
        }
        // A start in the past: the periods since are renewed in their own transactions, and the
        // answer (kept under the key too) shows the period the subscription is in now.
        guard let started = value, started.subscription.period.end <= now else { return answer }
        try await catchUp(orgID: orgID, until: now)
        let caughtUp = Started(subscription: try await current(orgID: orgID) ?? started.subscription, plan: started.plan, invoice: started.invoice)
        let (status, bytes) = try render(.success(caughtUp))
        if let claim {
            try await database.pool.withConnection { connection in
                try await database.record(claim, orgID: orgID, status: status, bytes: bytes, on: connection)
            }
        }
        return StoredResponse(status: status, body: bytes, replayed: false)
    }

    /// The live subscription, else the most recent one.
    public func current(orgID: UUID) async throws -> Subscription? {
        let rows = try await database.pool.query("""
            SELECT \(unescaped: Self.columns) FROM subscriptions s WHERE s.org_id = \(orgID)
            ORDER BY (s.status = 'active') DESC, s.created_at DESC LIMIT 1
            """, logger: database.logger).collect()
        return try rows.first.map(Self.decode)
    }

    /// The per-plan operation rates of the organisation's live plan (none without one).
    public func planRates(orgID: UUID) async throws -> [String: Credits] {
        let rows = try await database.pool.query("""
            SELECT p.operation_rates::text FROM subscriptions s JOIN plans p ON p.code = s.plan_code
            WHERE s.org_id = \(orgID) AND s.status = 'active'
            """, logger: database.logger).collect()
        guard let row = rows.first, case .object(let members) = try JSONParser.parse(Array(try row.decode(String.self).utf8)) else { return [:] }
        var rates: [String: Credits] = [:]
        for (code, value) in members { rates[code] = try CatalogJSON.credits(value) }
        return rates
    }

    /// Cancels at the end of the period (credits usable until then), or now (plan credits
    /// expire now). Purchased and granted credits stay either way. Exactly once per idempotency key.
    public func cancel(orgID: UUID, atPeriodEnd: Bool, at now: Instant,
                       claim: IdempotencyClaim? = nil, render: ResponseRenderer<Subscription>) async throws -> StoredResponse {
        try await database.idempotentWork(orgID: orgID, claim: claim, at: now, render: render) { connection in
            let subscription = try await Self.lockLive(orgID: orgID, on: connection, logger: database.logger)
            if atPeriodEnd {
                try await EventOutbox.emit(.subscriptionChanged, data: Self.changed("cancel_scheduled", subscriptionID: subscription.id,
                                                                                    from: subscription.planCode, to: subscription.planCode,
                                                                                    effectiveAt: subscription.period.end),
                                           orgID: orgID, at: now, on: connection, logger: database.logger)
                let rows = try await connection.query("""
                    UPDATE subscriptions s SET cancel_at_period_end = true, scheduled_plan_code = NULL,
                        changed_at = \(now), changed_by_key_id = \(KeyStamp.current?.id), changed_by_key_prefix = \(KeyStamp.current?.prefix)
                    WHERE s.org_id = \(orgID) AND s.subscription_id = \(subscription.id) RETURNING \(unescaped: Self.columns)
                    """, logger: database.logger).collect()
                return try Self.decode(rows[0])
            }
            var write = LedgerWrite(orgID: orgID)
            let credits = try await Self.lockPlanCredits(orgID: orgID, subscriptionID: subscription.id, endingAt: nil, on: connection, logger: database.logger).credits
            Self.expire(credits, at: now, reason: "subscription canceled", into: &write)
            write.emit(.subscriptionChanged, data: Self.changed("canceled", subscriptionID: subscription.id, from: subscription.planCode,
                                                                to: subscription.planCode, effectiveAt: now), at: now)
            try await write.execute(on: connection, logger: database.logger)
            try await PeriodBilling.finalizeOverage(subscriptionID: subscription.id, periodStart: subscription.period.start, orgID: orgID,
                                                    at: now, on: connection, logger: database.logger)
            let rows = try await connection.query("""
                UPDATE subscriptions s SET status = 'canceled', canceled_at = \(now), cancel_at_period_end = false, scheduled_plan_code = NULL,
                    changed_at = \(now), changed_by_key_id = \(KeyStamp.current?.id), changed_by_key_prefix = \(KeyStamp.current?.prefix)
                WHERE s.org_id = \(orgID) AND s.subscription_id = \(subscription.id) RETURNING \(unescaped: Self.columns)
                """, logger: database.logger).collect()
            return try Self.decode(rows[0])
        }.0
    }

    // MARK: Shared pieces

    static func timezone(orgID: UUID, on connection: DatabaseConnection, logger: Logger) async throws -> String {
        let rows = try await connection.query("SELECT timezone FROM orgs WHERE org_id = \(orgID)", logger: logger).collect()
        guard let row = rows.first else { throw TallyError.notFound("The organisation") }
        return try row.decode(String.self)
    }

    /// Locks the live subscription (before any bucket: subscription, then buckets, then invoices).
    static func lockLive(orgID: UUID, on connection: DatabaseConnection, logger: Logger) async throws -> Subscription {
        let rows = try await connection.query("""
            SELECT \(unescaped: columns) FROM subscriptions s WHERE s.org_id = \(orgID) AND s.status = 'active' FOR UPDATE
            """, logger: logger).collect()
        guard let row = rows.first else {
            throw TallyError.conflict("no_subscription", "The organisation has no live subscription.")
        }
        return try decode(row)
    }

    /// The subscription's plan credits with anything left, locked in burn-down order: those that
    /// end at `endingAt` (the period's end), or all of them (a cancellation); with the earliest
    /// grant among them, which credits carried forward keep (so that they burn first).
    static func lockPlanCredits(orgID: UUID, subscriptionID: UUID, endingAt: Instant?, spendableAt: Instant? = nil,
                                on connection: DatabaseConnection, logger: Logger) async throws -> (credits: [PlanCredits], earliestGrant: Instant?) {
        let rows = try await connection.query("""
            SELECT bucket_id, remaining, granted_at FROM credit_buckets
            WHERE org_id = \(orgID) AND subscription_id = \(subscriptionID) AND remaining > 0
              AND (\(endingAt)::timestamptz IS NULL OR expires_at = \(endingAt))
              AND (\(spendableAt)::timestamptz IS NULL OR ((expires_at IS NULL OR expires_at > \(spendableAt)) AND effective_at <= \(spendableAt)))
            ORDER BY \(unescaped: BucketQueries.burnOrder)
            FOR UPDATE
            """, logger: logger).collect()
        var credits: [PlanCredits] = []
        var earliest: Instant?
        for row in rows {
            let (id, remaining, grantedAt) = try row.decode((UUID, Credits, Instant).self)
            credits.append(PlanCredits(bucketID: id, remaining: remaining))
            earliest = min(earliest ?? grantedAt, grantedAt)
        }
        return (credits, earliest)
    }

    /// One `expiry` entry per bucket.
    static func expire(_ credits: [PlanCredits], at time: Instant, reason: String, into write: inout LedgerWrite) {
        for bucket in credits where bucket.remaining.isPositive {
            write.add(.init(id: .v7(at: time), type: .expiry, reason: reason, createdAt: time), postings: [(bucket.bucketID, -bucket.remaining)])
            write.emit(.creditsExpired, data: .object([("bucket_id", .id(bucket.bucketID)), ("source", .string("plan")),
                                                       ("credits", .text(bucket.remaining)), ("expired_at", .string(time.rfc3339))]), at: time)
        }
    }

    /// `subscription.changed` data.
    /// The data of `subscription.changed`, with the key that made the change (nil for renewals).
    static func changed(_ change: String, subscriptionID: UUID, from: String?, to: String, effectiveAt: Instant,
                        key: KeyStamp? = KeyStamp.current) -> JSONValue {
        .object([("subscription_id", .id(subscriptionID)), ("change", .string(change)), ("from_plan", from.map(JSONValue.string) ?? .null),
                 ("to_plan", .string(to)), ("effective_at", .string(effectiveAt.rfc3339)),
                 ("api_key_id", .id(key?.id)), ("api_key_prefix", key.map { .string($0.prefix) } ?? .null)])
    }

    /// `SET` members recording who changed the subscription, and when.
    static func changedBy(_ now: Instant, key: KeyStamp? = KeyStamp.current, sql: inout BoundSQL) -> String {
        "changed_at = \(sql.bind(now)), changed_by_key_id = \(sql.bind(key?.id)), changed_by_key_prefix = \(sql.bind(key?.prefix))"
    }

    /// Moves plan credits into a new `rollover` bucket of the subscription (one `rollover` entry).
    /// The bucket keeps the earliest grant time of the credits it carries: older credits burn
    /// first, and the order never falls to a tie with the allocation granted at the same moment.
    static func carry(_ draws: [BurnDownPlan.Draw], grantedAt: Instant?, subscriptionID: UUID, periodStart: Instant, expiresAt: Instant?,
                      at time: Instant, reason: String, into write: inout LedgerWrite) -> UUID? {
        let total = draws.map(\.credits).sum()
        guard total.isPositive else { return nil }
        let entryID = UUID.v7(at: time)
        let bucketID = UUID.v7(at: time)
        write.add(.init(id: entryID, type: .rollover, reason: reason, createdAt: time), postings: draws.map { ($0.bucketID, -$0.credits) })
        write.createBucket(.init(orgID: write.orgID, id: bucketID, source: .rollover, credits: total, priority: BucketSource.rollover.defaultPriority,
                                 effectiveAt: time, expiresAt: expiresAt, grantedAt: min(grantedAt ?? time, time), grantEntryID: entryID,
                                 subscriptionID: subscriptionID, periodStart: periodStart))
        return bucketID
    }

    /// The line of a period's subscription invoice.
    static func invoiceDescription(_ plan: Plan, period: BillingPeriod) -> String {
        "\(plan.name) plan, \(period.start.rfc3339.prefix(10)) to \(period.end.rfc3339.prefix(10))"
    }

    /// The period's subscription invoice: one line, open. Free plans are not invoiced.
    static func charge(_ plan: Plan, for subscriptionID: UUID, period: BillingPeriod, orgID: UUID, at time: Instant,
                       on connection: DatabaseConnection, logger: Logger) async throws -> Invoice? {
        guard !plan.isFree else { return nil }
        let description = invoiceDescription(plan, period: period)
        return try await InvoiceStore.issue(
            NewInvoice(id: .v7(at: time), kind: .subscription, currency: plan.price.currency,
                       lines: [InvoiceLine(description: description, quantity: Credits(1), unitPrice: plan.price)],
                       subscriptionID: subscriptionID, periodStart: period.start, periodEnd: period.end),
            orgID: orgID, status: .open, at: time, on: connection, logger: logger
        )
    }
}
