import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyJSON

extension SubscriptionStore {
    /// A subscription by its key.
    typealias Key = (orgID: UUID, subscriptionID: UUID)

    /// Renews every subscription of `selection` whose period ended by `until`, each caught up
    /// period by period in order. Returns the number of periods renewed.
    ///
    /// Exactly once per period: each renewal locks the subscription row and only acts while its
    /// period has ended, and the database refuses a second allocation or charge for one period.
    /// Concurrent runners skip rows another holds; a late run writes what an on-time run would,
    /// because every entry is dated at the period boundary, not at the time the job runs.
    /// Subscriptions renew in batches, one transaction each: a few prepared statements carry a
    /// whole batch, which is what makes a hundred thousand renewals a matter of seconds.
    @discardableResult
    /// `progress` hears the running count of renewed periods after every round of `limit`.
    public func renewDue(_ selection: OrgSelection, until: Instant, limit: Int = 2000, batchSize: Int = 100,
                         concurrency: Int = 4, progress: (@Sendable (Int) -> Void)? = nil) async throws -> Int {
        let plans = PlanCache()
        var renewed = 0
        while true {
            var sql = BoundSQL()
            let statement = """
                SELECT s.org_id, s.subscription_id FROM subscriptions s JOIN orgs o ON o.org_id = s.org_id
                WHERE s.status = 'active' AND s.current_period_end <= \(sql.bind(until)) AND \(selection.condition(&sql))
                ORDER BY s.current_period_end LIMIT \(sql.bind(limit))
                """
            let rows = try await database.pool.query(sql.query(statement), logger: database.logger).collect()
            let due: [Key] = try rows.map { try $0.decode((UUID, UUID).self) }
            let batches = stride(from: 0, to: due.count, by: batchSize).map { Array(due[$0..<min($0 + batchSize, due.count)]) }
            // Batches renew independently, several at once; each takes its subscriptions through
            // their periods in order, one period per transaction.
            let progressed = try await withThrowingTaskGroup(of: Int.self) { group in
                var next = batches.makeIterator()
                func addNext() -> Bool {
                    guard let batch = next.next() else { return false }
                    group.addTask {
                        var periods = 0
                        var keys = batch
                        while !keys.isEmpty {
                            let renewed = try await renewPeriod(of: keys, until: until, waiting: false, plans: plans)
                            periods += renewed.count
                            keys = renewed.filter { $0.nextEnd <= until }.map(\.key)
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
            progress?(renewed)
            if rows.count < limit || progressed == 0 { return renewed }
        }
    }

    /// How many subscriptions of `selection` are due by `until` (what `tally jobs run` shows progress against).
    public func countDue(_ selection: OrgSelection, until: Instant) async throws -> Int {
        var sql = BoundSQL()
        let statement = """
            SELECT count(*) FROM subscriptions s JOIN orgs o ON o.org_id = s.org_id
            WHERE s.status = 'active' AND s.current_period_end <= \(sql.bind(until)) AND \(selection.condition(&sql))
            """
        return try await database.pool.query(sql.query(statement), logger: database.logger).collect().first?.decode(Int.self) ?? 0
    }

    /// Catches one organisation up before a request is served (waits for a renewal in progress).
    public func catchUp(orgID: UUID, until: Instant) async throws {
        guard let subscription = try await current(orgID: orgID), subscription.status == .active else { return }
        let plans = PlanCache()
        let key: Key = (orgID, subscription.id)
        while let renewed = try await renewPeriod(of: [key], until: until, waiting: true, plans: plans).first, renewed.nextEnd <= until {}
    }

    /// Renews, in one transaction, the next period of each of `keys` whose period has ended by
    /// `until`, skipping any another transaction holds (unless `waiting`). Returns those renewed
    /// with the end of their new period (`distantFuture` for one that ended).
    func renewPeriod(of keys: [Key], until: Instant, waiting: Bool, plans: PlanCache) async throws -> [(key: Key, nextEnd: Instant)] {
        let logger = database.logger
        return try await database.transaction { connection in
            if waiting {
                // Wait for a renewal in progress; the batch's own SKIP LOCKED skips none of ours.
                for key in keys {
                    try await connection.query("""
                        SELECT 1 FROM subscriptions WHERE org_id = \(key.orgID) AND subscription_id = \(key.subscriptionID) FOR UPDATE
                        """, logger: logger)
                }
            }
            var due: [DueRenewal] = []
            let locked = LockDueSubscriptionsStatement(orgIDs: keys.map(\.orgID), subscriptionIDs: keys.map(\.subscriptionID), until: until)
            for try await row in try await connection.execute(locked, logger: logger) {
                let subscription = try Self.decode(row)
                let timezone = try row.makeRandomAccess()[12].decode(String.self)
                guard let outgoing = try await plans.plan(subscription.planCode, on: connection, logger: logger),
                      let incoming = try await plans.plan(subscription.scheduledPlanCode ?? subscription.planCode, on: connection, logger: logger) else {
                    throw TallyError(.unavailable, code: "plan_missing", detail: "A subscribed plan is missing from the catalog.")
                }
                due.append(DueRenewal(subscription: subscription, timezone: timezone, outgoing: outgoing, incoming: incoming))
            }
            guard !due.isEmpty else { return [] }
            try await Self.lockEndingCredits(&due, on: connection, logger: logger)
            let renewals = due.map { $0.plan() }
            var numbers = try await Self.reserveInvoiceNumbers(for: due, renewals, on: connection, logger: logger)

            var batch = RenewalBatch()
            for (item, renewal) in zip(due, renewals) { batch.add(item, renewal, numbers: &numbers) }
            let moved = try await connection.execute(batch.ledger, logger: logger).reduce(0) { $0 + $1 }
            // Every bucket the renewals moved exists: a mismatch rolls the batch back (see LedgerWriteMismatch).
            try LedgerWriteMismatch.check(moved: moved, planned: batch.ledger.rows.moves.count)
            for try await _ in try await connection.execute(batch.changes, logger: logger) {}
            logger.debug("subscriptions renewed", metadata: ["count": "\(due.count)"])
            return zip(due, renewals).map { item, renewal in
                ((item.subscription.orgID, item.subscription.id), renewal.nextPeriod?.end ?? .distantFuture)
            }
        }
    }

    /// Locks the plan credits ending with each period, and each period's overage draft.
    private static func lockEndingCredits(_ due: inout [DueRenewal], on connection: DatabaseConnection, logger: Logger) async throws {
        var index: [UUID: Int] = [:]
        for (position, item) in due.enumerated() { index[item.subscription.id] = position }
        let credits = LockPlanCreditsStatement(orgIDs: due.map(\.subscription.orgID), subscriptionIDs: due.map(\.subscription.id),
                                               endingAt: due.map { $0.canceling ? nil : $0.boundary })
        for try await (_, subscriptionID, bucketID, remaining, grantedAt) in try await connection.execute(credits, logger: logger) {
            guard let position = index[subscriptionID] else { continue }
            due[position].endingCredits.append(PlanCredits(bucketID: bucketID, remaining: remaining))
            due[position].earliestGrant = min(due[position].earliestGrant ?? grantedAt, grantedAt)
        }
        let drafts = LockOverageDraftsStatement(orgIDs: due.map(\.subscription.orgID), subscriptionIDs: due.map(\.subscription.id),
                                                periodStarts: due.map(\.subscription.period.start))
        for try await (_, subscriptionID, invoiceID, total, currencyCode) in try await connection.execute(drafts, logger: logger) {
            guard let position = index[subscriptionID] else { continue }
            let currency = try StoredValue.currency(currencyCode, column: "invoices.currency")
            due[position].overageDraft = (invoiceID, total.money(currency))
        }
    }

    /// Takes each organisation's invoice numbers for the batch in one statement (organisations
    /// in a fixed order, so that concurrent batches queue rather than deadlock).
    private static func reserveInvoiceNumbers(for due: [DueRenewal], _ renewals: [RenewalPlan], on connection: DatabaseConnection,
                                              logger: Logger) async throws -> ReservedInvoiceNumbers {
        var counts: [UUID: Int64] = [:]
        for (item, renewal) in zip(due, renewals) {
            let count = item.invoicesNumbered(renewal)
            if count > 0 { counts[item.subscription.orgID, default: 0] += count }
        }
        guard !counts.isEmpty else { return ReservedInvoiceNumbers(last: [], counts: [:]) }
        let orgIDs = counts.keys.sorted { $0.uuidString < $1.uuidString }
        let reserve = ReserveInvoiceNumbersStatement(orgIDs: orgIDs, counts: orgIDs.map { counts[$0]! })
        var last: [(orgID: UUID, lastNumber: Int64)] = []
        for try await (orgID, lastNumber) in try await connection.execute(reserve, logger: logger) { last.append((orgID, lastNumber)) }
        return ReservedInvoiceNumbers(last: last, counts: counts)
    }
}

/// Plans read once per renewal run: a plan in use never changes, so one read serves every
/// subscription renewed on it. A miss is read on the caller's own connection: a transaction
/// never waits for a second connection from the pool, which concurrent renewals would exhaust.
actor PlanCache {
    private var plans: [String: Plan] = [:]

    func plan(_ code: String, on connection: DatabaseConnection, logger: Logger) async throws -> Plan? {
        if let plan = plans[code] { return plan }
        let rows = try await connection.query("SELECT \(unescaped: PlanRows.columns) FROM plans WHERE code = \(code)", logger: logger).collect()
        let plan = try rows.first.map(PlanRows.decode)
        plans[code] = plan
        return plan
    }
}
