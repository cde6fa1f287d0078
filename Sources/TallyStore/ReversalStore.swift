import Foundation
import Logging
import PostgresNIO
import TallyCore

public struct ReversalRequest: Sendable {
    public var usageEntryID: UUID
    /// Nil reverses everything not yet reversed.
    public var credits: Credits?
    public var reason: String?
    public var actor: String

    public init(usageEntryID: UUID, credits: Credits?, reason: String?, actor: String) {
        self.usageEntryID = usageEntryID
        self.credits = credits
        self.reason = reason
        self.actor = actor
    }
}

public struct ReversalOutcome: Sendable, Equatable {
    public let entryID: UUID
    public let reversedEntryID: UUID
    public let credits: Credits
    public let returned: [BurnDownPlan.Draw]
    public let refundBucketID: UUID?
    public let refundCredits: Credits
    public let overageCredits: Credits
    public let createdAt: Instant
}

/// Reversal of usage: credits go back to the buckets they came from, or, for a bucket that has
/// expired since, into a new `refund` bucket. Never more than was spent, across all reversals.
public struct ReversalStore: Sendable {
    let database: Database

    public func reverse(orgID: UUID, at now: Instant, _ request: ReversalRequest, claim: IdempotencyClaim?, render: ResponseRenderer<ReversalOutcome>) async throws -> StoredResponse {
        try await database.idempotentTransaction(orgID: orgID, claim: claim, at: now, render: render) { connection in
            let logger = database.logger
            // Locking the usage entry serialises reversals of the same usage.
            let rows = try await connection.query("""
                SELECT e.type, e.overage_credits, e.created_at, e.invoice_id, i.status, i.subscription_id, i.period_start, i.period_end
                FROM ledger_entries e LEFT JOIN invoices i ON i.org_id = e.org_id AND i.invoice_id = e.invoice_id
                WHERE e.org_id = \(orgID) AND e.entry_id = \(request.usageEntryID) FOR UPDATE OF e
                """, logger: logger).collect()
            guard let row = rows.first, let (type, overage, usedAt, invoiceID, invoiceStatus, subscriptionID, periodStart, periodEnd) =
                    try? row.decode((String, Credits, Instant, UUID?, String?, UUID?, Instant?, Instant?).self),
                  type == LedgerEntryType.usage.rawValue else {
                throw TallyError.notFound("The usage entry")
            }
            let draws = try await BucketQueries.draws(ofEntry: request.usageEntryID, orgID: orgID, on: connection, logger: logger)
            let reversedRows = try await connection.query("""
                SELECT coalesce(sum(credits - overage_credits), 0)::numeric(20,4) FROM ledger_entries
                WHERE org_id = \(orgID) AND related_entry_id = \(request.usageEntryID) AND type = 'reversal'
                """, logger: logger).collect()
            let alreadyReversed = try reversedRows[0].decode(Credits.self)
            let buckets = try await BucketQueries.lock(orgID: orgID, ids: draws.map(\.bucketID), on: connection, logger: logger)
            let expired = Set(buckets.filter { $0.isExpired(at: now) }.map(\.id))
            // Overage still on its draft invoice is taken back off it; once invoiced, it comes back as credits.
            let overageInvoiced = invoiceID != nil && invoiceStatus != Invoice.Status.draft.rawValue
            let plan = try Reversal.plan(spent: SpentCredits(draws: draws, overage: overage), alreadyReversed: alreadyReversed,
                                         requested: request.credits, overageInvoiced: overageInvoiced, isExpired: { expired.contains($0) })
            if plan.overage.isPositive, let subscriptionID, let periodStart, let periodEnd {
                // The same order as a spend's: the period's counters, then its overage invoice.
                try await connection.query("""
                    SELECT 1 FROM usage_periods WHERE org_id = \(orgID) AND period_start = \(periodStart) FOR UPDATE
                    """, logger: logger)
                try await PeriodBilling.adjustOverage(by: -plan.overage, rate: nil, subscriptionID: subscriptionID, periodStart: periodStart,
                                                      periodEnd: periodEnd, orgID: orgID, at: now, on: connection, logger: logger)
            }

            let entryID = UUID.v7(at: now)
            var write = LedgerWrite(orgID: orgID)
            write.add(.init(id: entryID, type: .reversal, overageCredits: -plan.overage, usage: UsageDetails(actor: request.actor),
                            reason: request.reason, relatedEntryID: request.usageEntryID, createdAt: now),
                      postings: plan.returns.map { ($0.bucketID, $0.credits) })
            let timezone = try await SubscriptionStore.timezone(orgID: orgID, on: connection, logger: logger)
            UsageAccounting.reverse(plan.total, overage: plan.overage, usedAt: usedAt, timezone: timezone, orgID: orgID, into: &write)
            var refundBucketID: UUID?
            if plan.refund.isPositive {
                let bucketID = UUID.v7(at: now)
                write.createBucket(.init(orgID: orgID, id: bucketID, source: .refund, credits: plan.refund, priority: BucketSource.refund.defaultPriority,
                                         effectiveAt: now, expiresAt: nil, grantedAt: now, grantEntryID: entryID))
                refundBucketID = bucketID
            }
            let outcome = ReversalOutcome(entryID: entryID, reversedEntryID: request.usageEntryID, credits: plan.total, returned: plan.returns,
                                          refundBucketID: refundBucketID, refundCredits: plan.refund, overageCredits: plan.overage, createdAt: now)
            return (outcome, write)
        }
    }
}
