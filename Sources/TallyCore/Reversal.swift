import struct Foundation.UUID

/// What a usage entry took, as a reversal needs to know it.
public struct SpentCredits: Sendable, Equatable {
    /// What each bucket gave, in the order the burn-down drew it.
    public let draws: [BurnDownPlan.Draw]
    /// Credits no bucket covered and that were billed as overage.
    public let overage: Credits

    public init(draws: [BurnDownPlan.Draw], overage: Credits) {
        self.draws = draws
        self.overage = overage
    }

    public var total: Credits { draws.map(\.credits).sum() + overage }
}

/// How much of a reversal goes where.
public struct ReversalPlan: Sendable, Equatable {
    /// Credits returned to the buckets they came from (those not expired).
    public let returns: [BurnDownPlan.Draw]
    /// Credits whose bucket has expired, and overage already invoiced: they come back as a new
    /// `refund` bucket.
    public let refund: Credits
    /// Overage credits taken back off the usage's draft overage invoice.
    public let overage: Credits

    public var total: Credits { returns.map(\.credits).sum() + refund + overage }
}

/// Reversal of usage: whole or partial, never more than was spent across all reversals.
///
/// A reversal undoes the spend last-in first-out: first the overage (the part the customer
/// would pay extra for), then the draws from the last bucket drawn back to the first. Because the
/// order is fixed, the amount already reversed says exactly which credits went back already.
public enum Reversal {
    public static func plan(
        spent: SpentCredits, alreadyReversed: Credits, requested: Credits?, overageInvoiced: Bool = false, isExpired: (UUID) -> Bool
    ) throws(TallyError) -> ReversalPlan {
        let reversible = spent.total - alreadyReversed
        guard reversible.isPositive else {
            throw TallyError.conflict("already_reversed", "This usage has already been reversed in full.")
        }
        let amount = requested ?? reversible
        guard amount.isPositive else {
            throw TallyError.validation("credits must be positive.", field: "credits")
        }
        guard amount <= reversible else {
            throw TallyError(.conflict, code: "reversal_exceeds_usage",
                             detail: "Only \(reversible) of this usage's \(spent.total) credits are left to reverse.",
                             extras: ["reversible": reversible.description])
        }
        // The spend's parts in reversal order.
        var parts: [(bucketID: UUID?, credits: Credits)] = []
        if spent.overage.isPositive { parts.append((nil, spent.overage)) }
        for draw in spent.draws.reversed() { parts.append((draw.bucketID, draw.credits)) }

        var skip = alreadyReversed
        var outstanding = amount
        var returns: [BurnDownPlan.Draw] = []
        var refund = Credits.zero
        var overage = Credits.zero
        for part in parts where outstanding.isPositive {
            var available = part.credits
            let skipped = min(skip, available)
            skip -= skipped
            available -= skipped
            let take = min(available, outstanding)
            guard take.isPositive else { continue }
            outstanding -= take
            switch part.bucketID {
            case nil where overageInvoiced: refund += take
            case nil: overage += take
            case let bucketID? where isExpired(bucketID): refund += take
            case let bucketID?: returns.append(.init(bucketID: bucketID, credits: take))
            }
        }
        let plan = ReversalPlan(returns: returns, refund: refund, overage: overage)
        precondition(plan.total == amount, "a reversal plan accounts for every credit reversed")
        return plan
    }
}

/// Settling a hold: what a commit consumes and what it gives back.
public enum HoldSettlement {
    /// Captures `credits` from the hold's draws in the order they were drawn; the rest is released.
    public static func capture(
        _ credits: Credits, from draws: [BurnDownPlan.Draw]
    ) -> (captured: [BurnDownPlan.Draw], released: [BurnDownPlan.Draw]) {
        var outstanding = credits
        var captured: [BurnDownPlan.Draw] = []
        var released: [BurnDownPlan.Draw] = []
        for draw in draws {
            let take = min(outstanding, draw.credits)
            outstanding -= take
            if take.isPositive { captured.append(.init(bucketID: draw.bucketID, credits: take)) }
            let rest = draw.credits - take
            if rest.isPositive { released.append(.init(bucketID: draw.bucketID, credits: rest)) }
        }
        precondition(!outstanding.isPositive, "a commit captures at most what was held")
        return (captured, released)
    }
}
