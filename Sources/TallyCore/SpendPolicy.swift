/// The rules of one spend, decided in the core: given what its transaction has learned so far,
/// what the spend needs next. The store answers each step (a query, a purchase) and asks again,
/// until the spend is planned or refused; it decides nothing itself.
public enum SpendStep: Sendable, Equatable {
    /// Write this plan.
    case spend(BurnDownPlan)
    /// Short of credits: do expired holds still keep some? Answer in `SpendDecision.expiredHolds`.
    case checkExpiredHolds
    /// Short, and expired holds keep credits: free them (in a transaction of their own) and start again.
    case freeExpiredHolds
    /// Short, no overage, and the organisation buys a pack when low: buy it (once per batch) and
    /// add its bucket to the balance, then ask again.
    case buyTopUp(SpendTerms.AutoTopUp)
    /// Short, and overage allowed: the period's overage so far (locked), in `SpendDecision.overageIncurred`.
    case readOverageIncurred(LivePeriod)
    case refuse(TallyError)
}

/// One spend being decided.
public struct SpendDecision: Sendable {
    public let credits: Credits
    public let terms: SpendTerms
    /// False once this organisation's expired holds were freed for this batch: not again.
    public let mayFreeExpiredHolds: Bool
    public var expiredHolds: Bool?
    /// The batch has tried its one automatic top-up (bought or not).
    public var topUpTried: Bool
    /// The period's overage before this spend, earlier spends of the batch included.
    public var overageIncurred: Credits?

    public init(credits: Credits, terms: SpendTerms, mayFreeExpiredHolds: Bool, topUpTried: Bool) {
        self.credits = credits
        self.terms = terms
        self.mayFreeExpiredHolds = mayFreeExpiredHolds
        self.topUpTried = topUpTried
    }

    /// The next step against `balance`; `.spend` has taken the plan's credits from it.
    public func next(_ balance: inout SpendableBalance) -> SpendStep {
        guard credits.isPositive else { return .spend(.nothing) }
        let shortfall: TallyError
        do {
            return .spend(try balance.spend(credits))
        } catch {
            shortfall = error
        }
        if mayFreeExpiredHolds {
            guard let expiredHolds else { return .checkExpiredHolds }
            if expiredHolds { return .freeExpiredHolds }
        }
        // Auto top-up saves the spend it would refuse (with overage there is nothing to save).
        if terms.overage == nil, !topUpTried, let autoTopUp = terms.autoTopUp { return .buyTopUp(autoTopUp) }
        guard let overage = terms.overage, let period = terms.period else { return .refuse(shortfall) }
        guard let incurred = overageIncurred else { return .readOverageIncurred(period) }
        do {
            try OverageRules.check(needed: credits - balance.available, incurred: incurred, cap: overage.capCredits)
            return .spend(try balance.spend(credits, allowOverage: true))
        } catch {
            return .refuse(error)
        }
    }
}

/// `balance.low`: a spend that takes the balance from at or above the threshold to below it.
public enum LowBalanceRule {
    public static func crossed(threshold: Credits?, before: Credits, after: Credits) -> Bool {
        guard let threshold else { return false }
        return before >= threshold && after < threshold
    }
}
