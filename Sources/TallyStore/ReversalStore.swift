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
                SELECT type, overage_credits FROM ledger_entries
                WHERE org_id = \(orgID) AND entry_id = \(request.usageEntryID) FOR UPDATE
                """, logger: logger).collect()
            guard let row = rows.first, let (type, overage) = try? row.decode((String, Credits).self), type == LedgerEntryType.usage.rawValue else {
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
            let plan = try Reversal.plan(spent: SpentCredits(draws: draws, overage: overage), alreadyReversed: alreadyReversed,
                                         requested: request.credits, isExpired: { expired.contains($0) })

            let entryID = UUID.v7(at: now)
            var write = LedgerWrite(orgID: orgID)
            write.add(.init(id: entryID, type: .reversal, overageCredits: -plan.overage, usage: UsageDetails(actor: request.actor),
                            reason: request.reason, relatedEntryID: request.usageEntryID, createdAt: now),
                      postings: plan.returns.map { ($0.bucketID, $0.credits) })
            var refundBucketID: UUID?
            if plan.refund.isPositive {
                let bucketID = UUID.v7(at: now)
                write.createBucket(.init(id: bucketID, source: .refund, credits: plan.refund, priority: BucketSource.refund.defaultPriority,
                                         effectiveAt: now, expiresAt: nil, grantedAt: now, grantEntryID: entryID))
                refundBucketID = bucketID
            }
            let outcome = ReversalOutcome(entryID: entryID, reversedEntryID: request.usageEntryID, credits: plan.total, returned: plan.returns,
                                          refundBucketID: refundBucketID, refundCredits: plan.refund, overageCredits: plan.overage, createdAt: now)
            return (outcome, write)
        }
    }
}
