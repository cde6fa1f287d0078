import Foundation
import Logging
import PostgresNIO
import TallyCore

/// A priced spend, ready for the ledger.
public struct SpendRequest: Sendable {
    public var credits: Credits
    public var usage: UsageDetails

    public init(credits: Credits, usage: UsageDetails) {
        self.credits = credits
        self.usage = usage
    }
}

/// What a spend did.
public struct SpendOutcome: Sendable, Equatable {
    public let entryID: UUID
    public let credits: Credits
    public let overageCredits: Credits
    public let availableAfter: Credits
    public let drawn: [BurnDownPlan.Draw]
    public let createdAt: Instant
}

/// Consumption: spends credits atomically, exactly once, never below zero.
public struct ConsumptionStore: Sendable {
    let database: Database
    let reservations: ReservationStore

    /// Thrown inside the spend transaction when it is short of credits but expired holds of the
    /// organisation still keep some: the transaction rolls back, the holds are freed in their
    /// own transaction, and the spend is tried once more.
    struct ExpiredHoldsPending: Error {}

    /// Spends `spend.credits` now. `terms` say what the organisation allows beyond its credits
    /// (overage at the plan's rate, up to a cap) and whether a low balance buys a pack.
    public func consume(
        orgID: UUID, at now: Instant, _ spend: SpendRequest, terms: SpendTerms = .strict, claim: IdempotencyClaim?,
        render: ResponseRenderer<SpendOutcome>
    ) async throws -> StoredResponse {
        do {
            return try await attempt(orgID: orgID, at: now, spend, terms: terms, claim: claim, render: render, mayFreeExpiredHolds: true)
        } catch is ExpiredHoldsPending {
            try await reservations.releaseExpired(.org(orgID), at: now)
            return try await attempt(orgID: orgID, at: now, spend, terms: terms, claim: claim, render: render, mayFreeExpiredHolds: false)
        }
    }

    private func attempt(
        orgID: UUID, at now: Instant, _ spend: SpendRequest, terms: SpendTerms, claim: IdempotencyClaim?,
        render: ResponseRenderer<SpendOutcome>, mayFreeExpiredHolds: Bool
    ) async throws -> StoredResponse {
        let logger = database.logger
        return try await database.idempotentTransaction(orgID: orgID, claim: claim, at: now, render: render) { connection in
            let buckets = try await BucketQueries.lockSpendable(orgID: orgID, at: now, on: connection, logger: logger)
            var balance = SpendableBalance(buckets: buckets, at: now)
            let plan: BurnDownPlan
            do {
                plan = spend.credits.isZero ? .nothing : try balance.spend(spend.credits)
            } catch {
                if mayFreeExpiredHolds, try await ReservationStore.hasExpiredHolds(orgID: orgID, at: now, on: connection, logger: logger) {
                    throw ExpiredHoldsPending()
                }
                guard let overage = terms.overage, let period = terms.period else { throw error }
                let incurred = try await PeriodBilling.lockOverageIncurred(period, orgID: orgID, on: connection, logger: logger)
                try OverageRules.check(needed: spend.credits - balance.available, incurred: incurred, cap: overage.capCredits)
                plan = try balance.spend(spend.credits, allowOverage: true)
            }
            let entryID = UUID.v7(at: now)
            var invoiceID: UUID?
            if plan.overage.isPositive, let overage = terms.overage, let period = terms.period {
                invoiceID = try await PeriodBilling.accumulateOverage(plan.overage, rate: overage.rate, period: period, orgID: orgID,
                                                                     at: now, on: connection, logger: logger)
            }
            var write = LedgerWrite(orgID: orgID)
            write.add(.init(id: entryID, type: .usage, overageCredits: plan.overage, usage: spend.usage, invoiceID: invoiceID, createdAt: now),
                      postings: plan.draws.map { ($0.bucketID, -$0.credits) })
            let availableBefore = balance.available + plan.covered
            var availableAfter = balance.available
            UsageAccounting.spend(spend.credits, overage: plan.overage, at: now, terms: terms, availableBefore: availableBefore,
                                  availableAfter: availableAfter, orgID: orgID, into: &write)
            if let autoTopUp = terms.autoTopUp,
               let bought = try await PurchaseStore.autoTopUp(autoTopUp, availableAfter: availableAfter, orgID: orgID, triggeredBy: entryID,
                                                             at: now, into: &write, on: connection, logger: logger) {
                availableAfter += bought.credits
            }
            let outcome = SpendOutcome(entryID: entryID, credits: spend.credits, overageCredits: plan.overage,
                                       availableAfter: availableAfter, drawn: plan.draws, createdAt: now)
            return (outcome, write)
        }
    }
}
