import struct Foundation.UUID

/// Which buckets a spend takes how much from, decided before anything is written.
public struct BurnDownPlan: Sendable, Equatable {
    public struct Draw: Sendable, Equatable {
        public let bucketID: UUID
        public let credits: Credits

        public init(bucketID: UUID, credits: Credits) {
            self.bucketID = bucketID
            self.credits = credits
        }
    }

    public let draws: [Draw]
    /// The part of the spend that no bucket covered, billed as overage. Zero unless overage was allowed.
    public let overage: Credits

    public init(draws: [Draw], overage: Credits) {
        self.draws = draws
        self.overage = overage
    }

    /// A spend of nothing (a free preview): recorded, drawing from no bucket.
    public static let nothing = BurnDownPlan(draws: [], overage: .zero)

    public var covered: Credits { draws.map(\.credits).sum() }
    public var total: Credits { covered + overage }
}

/// The one burn-down order of Tally and the planning of spends against it.
public enum BurnDown {
    /// Lowest priority first; then the earliest expiry, never-expiring last; then the oldest grant;
    /// then the id, so that the order is total and the same in SQL
    /// (`ORDER BY priority, expires_at NULLS LAST, granted_at, id`).
    public static func precedes(_ a: CreditBucket, _ b: CreditBucket) -> Bool {
        if a.priority != b.priority { return a.priority < b.priority }
        switch (a.expiresAt, b.expiresAt) {
        case let (x?, y?) where x != y: return x < y
        case (.some, .none): return true
        case (.none, .some): return false
        default: break
        }
        if a.grantedAt != b.grantedAt { return a.grantedAt < b.grantedAt }
        return UUID.precedes(a.id, b.id)
    }

    /// The buckets that may be spent at `now`, in burn-down order.
    public static func spendable(_ buckets: [CreditBucket], at now: Instant) -> [CreditBucket] {
        buckets.filter { $0.isSpendable(at: now) }.sorted(by: precedes)
    }

    /// Credits available at `now`: expired, not-yet-effective and empty buckets never count.
    public static func available(in buckets: [CreditBucket], at now: Instant) -> Credits {
        buckets.filter { $0.isSpendable(at: now) }.map(\.remaining).sum()
    }

    /// Plans spending `credits` from `buckets` at `now`. Throws `insufficient_credits` unless the
    /// buckets cover it or `allowOverage` lets the uncovered part become overage.
    public static func plan(
        spending credits: Credits, from buckets: [CreditBucket], at now: Instant, allowOverage: Bool = false
    ) throws(TallyError) -> BurnDownPlan {
        var balance = SpendableBalance(buckets: buckets, at: now)
        return try balance.spend(credits, allowOverage: allowOverage)
    }
}

/// The spendable buckets of one organisation while a transaction holds their locks: spends are
/// planned one after another against the running remainders, so that a batch of spends gets
/// exactly the results the same spends would get one by one.
public struct SpendableBalance: Sendable {
    public private(set) var buckets: [CreditBucket]

    public init(buckets: [CreditBucket], at now: Instant) {
        self.buckets = BurnDown.spendable(buckets, at: now)
    }

    public var available: Credits { buckets.map(\.remaining).sum() }

    /// A bucket granted while the balance is held (an auto top-up inside a batch of spends).
    public mutating func add(_ bucket: CreditBucket, at now: Instant) {
        guard bucket.isSpendable(at: now) else { return }
        buckets.append(bucket)
        buckets.sort(by: BurnDown.precedes)
    }

    /// Plans and applies one spend. On `insufficient_credits` nothing changes.
    public mutating func spend(_ credits: Credits, allowOverage: Bool = false) throws(TallyError) -> BurnDownPlan {
        precondition(credits.isPositive, "a spend is positive; callers validate amounts")
        let available = self.available
        if available < credits && !allowOverage {
            throw TallyError.insufficientCredits(required: credits, available: available)
        }
        var outstanding = credits
        var draws: [BurnDownPlan.Draw] = []
        for index in buckets.indices where outstanding.isPositive && buckets[index].remaining.isPositive {
            let take = min(outstanding, buckets[index].remaining)
            buckets[index].remaining -= take
            outstanding -= take
            draws.append(.init(bucketID: buckets[index].id, credits: take))
        }
        let plan = BurnDownPlan(draws: draws, overage: outstanding)
        precondition(plan.total == credits, "a plan accounts for every credit of the spend")
        return plan
    }
}
