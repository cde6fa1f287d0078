import Foundation
import Logging
import TallyCore

/// The answers of one organisation's spends in a transaction, as they are decided.
struct SpendSlots {
    enum Slot {
        case pending
        case answered(StoredResponse)
        /// A spend without an idempotency key that is refused: its error, stored nowhere.
        case refused(TallyError)
        /// Same key as an earlier spend of the batch: its answer, or a conflict.
        case sameAs(Int)
        case conflict
        /// Priced with a context that has changed since: to be priced again, stored nowhere.
        case termsChanged
    }

    var slots: [Slot]
    /// Each key's first spend, which claims it.
    var owners: [String: Int] = [:]

    init(count: Int) {
        slots = Array(repeating: .pending, count: count)
    }

    mutating func assignOwners(_ spends: [PendingSpend]) {
        for (index, pending) in spends.enumerated() {
            guard let claim = pending.claim else { continue }
            if let owner = owners[claim.key] {
                slots[index] = spends[owner].claim!.requestHash == claim.requestHash ? .sameAs(owner) : .conflict
            } else {
                owners[claim.key] = index
            }
        }
    }

    /// Whether the spend has no answer yet: pending, or waiting for its key's first spend.
    func isUnanswered(_ index: Int) -> Bool {
        switch slots[index] {
        case .pending, .sameAs: true
        default: false
        }
    }

    func answers() -> [Result<StoredResponse, any Error>] {
        slots.map { slot in
            switch slot {
            case .answered(let response): return .success(response)
            case .refused(let error): return .failure(error)
            case .sameAs(let owner):
                if case .termsChanged = slots[owner] { return .failure(SpendTermsChanged()) }
                guard case .answered(let response) = slots[owner] else { return .failure(TallyError.idempotencyConflict) }
                return .success(StoredResponse(status: response.status, body: response.body, replayed: true))
            case .conflict: return .failure(TallyError.idempotencyConflict)
            case .termsChanged: return .failure(SpendTermsChanged())
            case .pending: preconditionFailure("every spend is answered")
            }
        }
    }
}

/// Plans one organisation's spends, in arrival order, against its running balance; what only
/// some spends need (expired holds, overage, an automatic top-up) it asks the database for on
/// the transaction's connection.
struct OrgSpendPlanner {
    let orgID: UUID
    let now: Instant
    let mayFreeExpiredHolds: Bool
    var balance: SpendableBalance
    /// What only some batches need: top-ups (automatic), events.
    var extras: LedgerWrite

    init(orgID: UUID, now: Instant, buckets: [CreditBucket], mayFreeExpiredHolds: Bool) {
        self.orgID = orgID
        self.now = now
        self.mayFreeExpiredHolds = mayFreeExpiredHolds
        self.balance = SpendableBalance(buckets: buckets, at: now)
        self.extras = LedgerWrite(orgID: orgID, key: nil)
    }

    mutating func plan(_ spends: [PendingSpend], slots: inout SpendSlots, into write: inout SpendWriteStatement,
                       on connection: DatabaseConnection, logger: Logger) async throws {
        let availableBefore = balance.available
        var overageInBatch = Credits.zero
        var lastTerms: SpendTerms?
        var toppedUp = false
        var credits = Credits.zero, overage = Credits.zero, transactions = 0
        for index in spends.indices {
            guard case .pending = slots.slots[index] else { continue }
            let pending = spends[index]
            let result: Result<SpendOutcome, TallyError>
            let entryID = UUID.v7(at: now)
            do {
                // The rules are the core's (`SpendDecision`); here each step is answered.
                var decision = SpendDecision(credits: pending.spend.credits, terms: pending.terms,
                                             mayFreeExpiredHolds: mayFreeExpiredHolds, topUpTried: toppedUp)
                var plan = BurnDownPlan.nothing
                decide: while true {
                    switch decision.next(&balance) {
                    case .spend(let decided):
                        plan = decided
                        break decide
                    case .checkExpiredHolds:
                        decision.expiredHolds = try await ReservationStore.hasExpiredHolds(orgID: orgID, at: now, on: connection, logger: logger)
                    case .freeExpiredHolds:
                        throw ApplySpends.ExpiredHoldsPending(orgID: orgID, now: now)
                    case .buyTopUp(let autoTopUp):
                        decision.topUpTried = true
                        if let bought = try await PurchaseStore.autoTopUp(autoTopUp, cause: .shortfall, orgID: orgID, triggeredBy: entryID,
                                                                         at: now, into: &extras, on: connection, logger: logger) {
                            toppedUp = true
                            balance.add(Self.bucket(of: bought, at: now), at: now)
                        }
                    case .readOverageIncurred(let period):
                        decision.overageIncurred = try await PeriodBilling.lockOverageIncurred(period, orgID: orgID, on: connection, logger: logger)
                            + overageInBatch
                    case .refuse(let error):
                        throw error
                    }
                }
                var invoiceID: UUID?
                if plan.overage.isPositive, let terms = pending.terms.overage, let period = pending.terms.period {
                    invoiceID = try await PeriodBilling.accumulateOverage(plan.overage, rate: terms.rate, period: period, orgID: orgID,
                                                                         at: now, on: connection, logger: logger)
                    overageInBatch += plan.overage
                }
                // The entry's credits are its postings' sum (the covered part), its overage beside them.
                write.rows.entries.append(.init(orgID: orgID, id: entryID, type: .usage, overage: plan.overage, usage: pending.spend.usage,
                                                invoiceID: invoiceID, at: now, key: pending.spend.usage.key))
                write.rows.postings += plan.draws.map { .init(orgID: orgID, entryID: entryID, bucketID: $0.bucketID, credits: -$0.credits) }
                credits += pending.spend.credits
                overage += plan.overage
                transactions += 1
                lastTerms = pending.terms
                if !toppedUp, let autoTopUp = pending.terms.autoTopUp,
                   let bought = try await PurchaseStore.autoTopUp(autoTopUp, cause: .balance(balance.available), orgID: orgID, triggeredBy: entryID,
                                                                 at: now, into: &extras, on: connection, logger: logger) {
                    toppedUp = true
                    balance.add(Self.bucket(of: bought, at: now), at: now)
                }
                result = .success(SpendOutcome(entryID: entryID, credits: pending.spend.credits, overageCredits: plan.overage,
                                               availableAfter: balance.available, drawn: plan.draws, createdAt: now))
            } catch let error as TallyError {
                guard pending.claim != nil else {
                    slots.slots[index] = .refused(error)
                    continue
                }
                result = .failure(error)
            }
            let (status, body) = try pending.render(result)
            slots.slots[index] = .answered(StoredResponse(status: status, body: body, replayed: false))
            if let claim = pending.claim { write.answers.append((orgID, claim.key, status, body)) }
        }
        guard let terms = lastTerms else { return }
        write.rollups.append(.init(orgID: orgID, now: now, credits: credits, overage: overage, transactions: transactions, terms: terms))
        if LowBalanceRule.crossed(threshold: terms.lowBalanceCredits, before: availableBefore, after: balance.available), let low = terms.lowBalanceCredits {
            extras.emit(.balanceLow, data: .object([("available", .text(balance.available)), ("threshold", .text(low))]), at: now)
        }
    }

    /// The bucket a top-up bought, as the running balance of the batch sees it.
    private static func bucket(of bought: PurchaseOutcome, at now: Instant) -> CreditBucket {
        CreditBucket(id: bought.bucketID, source: .purchase, granted: bought.credits, remaining: bought.credits,
                     priority: BucketSource.purchase.defaultPriority, effectiveAt: now, expiresAt: bought.expiresAt, grantedAt: now)
    }
}
