import Foundation
import TallyCore
import TallyJSON

/// A subscription locked for renewal, with what its renewal reads.
struct DueRenewal {
    let subscription: Subscription
    let timezone: String
    let outgoing: Plan
    let incoming: Plan
    /// The plan credits that end with the period, locked, in burn-down order.
    var endingCredits: [PlanCredits] = []
    var earliestGrant: Instant?
    /// The ending period's overage draft, if one was opened.
    var overageDraft: (id: UUID, total: Money)?

    var canceling: Bool { subscription.cancelAtPeriodEnd }
    var boundary: Instant { subscription.period.end }
    /// The same interval keeps the anchor; a new interval starts a new cycle at the boundary.
    var keepsAnchor: Bool { incoming.interval == outgoing.interval }
    var anchor: Instant { keepsAnchor ? subscription.anchor : boundary }

    var nextPeriod: BillingPeriod? {
        guard !canceling else { return nil }
        let calendar = BillingCalendar(anchor: anchor, interval: incoming.interval, timeZone: timezone)
        return calendar.period(keepsAnchor ? subscription.period.index + 1 : 0)
    }

    func plan() -> RenewalPlan {
        Renewal.plan(ending: subscription.period, endingCredits: endingCredits, outgoing: outgoing, incoming: incoming,
                     nextPeriod: nextPeriod, canceling: canceling)
    }

    /// Invoice numbers the renewal takes: the ended period's overage, then the new period's charge.
    func invoicesNumbered(_ renewal: RenewalPlan) -> Int64 {
        (overageDraft.map { $0.total.isPositive } == true ? 1 : 0) + (renewal.charge == nil ? 0 : 1)
    }
}

/// Invoice numbers reserved for a batch: each organisation's block, handed out in order.
struct ReservedInvoiceNumbers {
    private var next: [UUID: Int64] = [:]

    init(last: [(orgID: UUID, lastNumber: Int64)], counts: [UUID: Int64]) {
        for (orgID, lastNumber) in last { next[orgID] = lastNumber - (counts[orgID] ?? 0) + 1 }
    }

    mutating func take(for orgID: UUID) -> Int64 {
        guard let number = next[orgID] else { preconditionFailure("no invoice number reserved for \(orgID)") }
        next[orgID] = number + 1
        return number
    }
}

/// The rows a batch of renewals writes: everything one renewal wrote on its own, in the same
/// order, with every entry dated at its period boundary.
struct RenewalBatch {
    var ledger = LedgerBatchStatement()
    var changes = RenewalWriteStatement()

    mutating func add(_ due: DueRenewal, _ renewal: RenewalPlan, numbers: inout ReservedInvoiceNumbers) {
        let orgID = due.subscription.orgID
        let subscriptionID = due.subscription.id
        let boundary = due.boundary
        let incoming = due.incoming

        for draw in renewal.expiring {
            let entryID = UUID.v7(at: boundary)
            ledger.rows.entries.append(.init(orgID: orgID, id: entryID, type: .expiry,
                                        reason: due.canceling ? "subscription ended" : "plan period ended", at: boundary))
            ledger.rows.postings.append(.init(orgID: orgID, entryID: entryID, bucketID: draw.bucketID, credits: -draw.credits))
            emit(.creditsExpired, orgID: orgID, at: boundary, data: .object([
                ("bucket_id", .id(draw.bucketID)), ("source", .string("plan")), ("credits", .text(draw.credits)),
                ("expired_at", .string(boundary.rfc3339)),
            ]))
        }

        guard let nextPeriod = renewal.nextPeriod else {
            emit(.subscriptionChanged, orgID: orgID, at: boundary,
                 data: SubscriptionStore.changed("canceled", subscriptionID: subscriptionID, from: due.outgoing.code, to: due.outgoing.code,
                                                 effectiveAt: boundary))
            let period = due.subscription.period
            changes.advances.append(.init(orgID: orgID, subscriptionID: subscriptionID, planCode: due.subscription.planCode,
                                          anchor: due.subscription.anchor, index: period.index, start: period.start, end: period.end,
                                          status: .canceled, canceledAt: boundary))
            finalizeOverage(due, numbers: &numbers)
            return
        }

        if renewal.carried.isPositive {
            // The rollover bucket keeps the earliest grant time of the credits it carries: older
            // credits burn first, and the order never ties with the allocation granted now.
            let entryID = UUID.v7(at: boundary)
            let bucketID = UUID.v7(at: boundary)
            ledger.rows.entries.append(.init(orgID: orgID, id: entryID, type: .rollover, reason: "rollover into the next period",
                                        at: boundary))
            for draw in renewal.carriedFrom {
                ledger.rows.postings.append(.init(orgID: orgID, entryID: entryID, bucketID: draw.bucketID, credits: -draw.credits))
            }
            addBucket(.rollover, credits: renewal.carried, expiresAt: renewal.rolloverExpiresAt,
                      grantedAt: min(due.earliestGrant ?? boundary, boundary), entryID: entryID, bucketID: bucketID, due, nextPeriod)
        }
        if renewal.allocation.isPositive {
            let entryID = UUID.v7(at: boundary)
            ledger.rows.entries.append(.init(orgID: orgID, id: entryID, type: LedgerEntryType(grantOf: .planAllocation),
                                        reason: "\(incoming.name): period \(nextPeriod.index + 1)", at: boundary))
            addBucket(.planAllocation, credits: renewal.allocation, expiresAt: renewal.allocationExpiresAt, grantedAt: boundary,
                      entryID: entryID, bucketID: UUID.v7(at: boundary), due, nextPeriod)
        }
        changes.periods.append(.init(orgID: orgID, start: nextPeriod.start, end: nextPeriod.end, subscriptionID: subscriptionID,
                                     allocation: renewal.allocation))
        emit(.subscriptionRenewed, orgID: orgID, at: boundary, data: .object([
            ("subscription_id", .id(subscriptionID)), ("plan", .string(incoming.code)), ("previous_plan", .string(due.outgoing.code)),
            ("period_start", .string(nextPeriod.start.rfc3339)), ("period_end", .string(nextPeriod.end.rfc3339)),
            ("allocation", .text(renewal.allocation)), ("carried", .text(renewal.carried)),
        ]))
        changes.advances.append(.init(orgID: orgID, subscriptionID: subscriptionID, planCode: incoming.code, anchor: due.anchor,
                                      index: nextPeriod.index, start: nextPeriod.start, end: nextPeriod.end, status: .active, canceledAt: nil))
        // The ended period's overage is invoiced first, then the new period's charge.
        finalizeOverage(due, numbers: &numbers)
        if let price = renewal.charge {
            let invoiceID = UUID.v7(at: boundary)
            let number = numbers.take(for: orgID)
            changes.issued.append(.init(orgID: orgID, invoiceID: invoiceID, number: number, price: price, subscriptionID: subscriptionID,
                                        periodStart: nextPeriod.start, periodEnd: nextPeriod.end, at: boundary,
                                        description: SubscriptionStore.invoiceDescription(incoming, period: nextPeriod)))
            emit(.invoiceFinalized, orgID: orgID, at: boundary,
                 data: InvoiceStore.finalizedData(id: invoiceID, number: number, kind: .subscription, total: price))
        }
    }

    /// The ended period's overage draft is numbered and issued, or voided when nothing was billed on it.
    private mutating func finalizeOverage(_ due: DueRenewal, numbers: inout ReservedInvoiceNumbers) {
        guard let draft = due.overageDraft else { return }
        let orgID = due.subscription.orgID
        guard draft.total.isPositive else {
            changes.opened.append(.init(orgID: orgID, invoiceID: draft.id, status: .void, number: nil, issuedAt: nil, voidedAt: due.boundary))
            return
        }
        let number = numbers.take(for: orgID)
        changes.opened.append(.init(orgID: orgID, invoiceID: draft.id, status: .open, number: number, issuedAt: due.boundary, voidedAt: nil))
        emit(.invoiceFinalized, orgID: orgID, at: due.boundary,
             data: InvoiceStore.finalizedData(id: draft.id, number: number, kind: .overage, total: draft.total))
    }

    private mutating func addBucket(_ source: BucketSource, credits: Credits, expiresAt: Instant?, grantedAt: Instant, entryID: UUID,
                                    bucketID: UUID, _ due: DueRenewal, _ period: BillingPeriod) {
        let orgID = due.subscription.orgID
        ledger.rows.newBuckets.append(.init(orgID: orgID, id: bucketID, source: source, credits: credits, priority: source.defaultPriority,
                                    effectiveAt: due.boundary, expiresAt: expiresAt, grantedAt: grantedAt, grantEntryID: entryID,
                                    subscriptionID: due.subscription.id, periodStart: period.start))
        ledger.rows.postings.append(.init(orgID: orgID, entryID: entryID, bucketID: bucketID, credits: credits))
    }

    private mutating func emit(_ type: EventType, orgID: UUID, at time: Instant, data: JSONValue) {
        ledger.events.append(.init(orgID: orgID, id: .v7(at: time), type: type, data: EventOutbox.text(data), at: time))
    }
}
