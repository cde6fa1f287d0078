import struct Foundation.UUID

/// An organisation's subscription to a plan and where it stands in its periods.
public struct Subscription: Sendable, Equatable {
    public enum Status: String, Sendable, Codable { case active, canceled }

    public let id: UUID
    public let orgID: UUID
    public let planCode: String
    public let status: Status
    /// Periods are counted from this instant (the start, or the last immediate plan change).
    public let anchor: Instant
    public let period: BillingPeriod
    public let cancelAtPeriodEnd: Bool
    /// A plan change applied by the next renewal.
    public let scheduledPlanCode: String?
    public let createdAt: Instant
    public let canceledAt: Instant?

    public init(id: UUID, orgID: UUID, planCode: String, status: Status, anchor: Instant, period: BillingPeriod,
                cancelAtPeriodEnd: Bool, scheduledPlanCode: String?, createdAt: Instant, canceledAt: Instant?) {
        self.id = id
        self.orgID = orgID
        self.planCode = planCode
        self.status = status
        self.anchor = anchor
        self.period = period
        self.cancelAtPeriodEnd = cancelAtPeriodEnd
        self.scheduledPlanCode = scheduledPlanCode
        self.createdAt = createdAt
        self.canceledAt = canceledAt
    }
}

extension Plan {
    /// When plan credits granted at `grantedAt` for a period ending at `periodEnd` expire.
    public func creditsExpiry(grantedAt: Instant, periodEnd: Instant) -> Instant? {
        switch creditExpiry {
        case .periodEnd: periodEnd
        case .days(let days): grantedAt.adding(days: days)
        case .never: nil
        }
    }

    /// How much of `unused` plan credits this plan carries into the next period.
    public func carried(unused: Credits) -> Credits {
        switch rollover {
        case .none: .zero
        case .all: unused
        case .capped(let maximum): min(unused, maximum)
        }
    }
}

/// Plan credits still in a bucket, as a renewal or a plan change sees them.
public struct PlanCredits: Sendable, Equatable {
    public let bucketID: UUID
    public let remaining: Credits

    public init(bucketID: UUID, remaining: Credits) {
        self.bucketID = bucketID
        self.remaining = remaining
    }
}

/// What a renewal at the end of a period does.
public struct RenewalPlan: Sendable, Equatable {
    /// Plan credits carried into a new `rollover` bucket, and which buckets give them.
    public let carried: Credits
    public let carriedFrom: [BurnDownPlan.Draw]
    /// What expires, bucket by bucket (one `expiry` entry each).
    public let expiring: [BurnDownPlan.Draw]
    public let rolloverExpiresAt: Instant?
    public let allocation: Credits
    public let allocationExpiresAt: Instant?
    /// The new period's charge: nil for a free plan or when the subscription ends.
    public let charge: Money?
    public let nextPeriod: BillingPeriod?
}

public enum Renewal {
    /// Renewing at the end of `period`: the outgoing plan's rollover decides what carries over of
    /// the credits ending with the period (in burn-down order); the rest expires; the incoming
    /// plan grants its allocation and charges its price. A cancellation grants and charges nothing
    /// and carries nothing.
    public static func plan(
        ending period: BillingPeriod, endingCredits: [PlanCredits], outgoing: Plan, incoming: Plan,
        nextPeriod: BillingPeriod?, canceling: Bool
    ) -> RenewalPlan {
        let unused = endingCredits.map(\.remaining).sum()
        let carried = canceling ? .zero : outgoing.carried(unused: unused)
        var toCarry = carried
        var carriedFrom: [BurnDownPlan.Draw] = []
        var expiring: [BurnDownPlan.Draw] = []
        for credits in endingCredits where credits.remaining.isPositive {
            let take = min(toCarry, credits.remaining)
            toCarry -= take
            if take.isPositive { carriedFrom.append(.init(bucketID: credits.bucketID, credits: take)) }
            let rest = credits.remaining - take
            if rest.isPositive { expiring.append(.init(bucketID: credits.bucketID, credits: rest)) }
        }
        let boundary = period.end
        guard !canceling, let nextPeriod else {
            return RenewalPlan(carried: .zero, carriedFrom: [], expiring: expiring, rolloverExpiresAt: nil, allocation: .zero,
                               allocationExpiresAt: nil, charge: nil, nextPeriod: nil)
        }
        let expiry = incoming.creditsExpiry(grantedAt: boundary, periodEnd: nextPeriod.end)
        return RenewalPlan(carried: carried, carriedFrom: carriedFrom, expiring: expiring, rolloverExpiresAt: expiry,
                           allocation: incoming.creditsPerPeriod, allocationExpiresAt: expiry,
                           charge: incoming.isFree ? nil : incoming.price, nextPeriod: nextPeriod)
    }
}

/// What an immediate plan change does.
public struct PlanChangePlan: Sendable, Equatable {
    /// Remaining plan credits moved into the new term (a `rollover` bucket), and from where.
    public let carried: Credits
    public let carriedFrom: [BurnDownPlan.Draw]
    public let carriedExpiresAt: Instant?
    public let allocation: Credits
    public let allocationExpiresAt: Instant?
    public let charge: Money?
    public let newPeriod: BillingPeriod
}

public enum PlanChange {
    /// An immediate change at `now` (seed 001): the new plan starts now and the cycle re-anchors
    /// on now; remaining plan credits carry into the new term and expire with it; the new plan is
    /// charged now. A change to a free plan instead leaves the existing credits where they are,
    /// usable until the end of the current cycle.
    public static func immediate(
        to plan: Plan, at now: Instant, remainingPlanCredits: [PlanCredits], calendar: BillingCalendar
    ) -> PlanChangePlan {
        precondition(calendar.anchor == now, "an immediate change re-anchors the cycle on now")
        let period = calendar.period(0)
        let expiry = plan.creditsExpiry(grantedAt: now, periodEnd: period.end)
        let carriedFrom = plan.isFree ? [] : remainingPlanCredits.filter(\.remaining.isPositive).map {
            BurnDownPlan.Draw(bucketID: $0.bucketID, credits: $0.remaining)
        }
        return PlanChangePlan(carried: carriedFrom.map(\.credits).sum(), carriedFrom: carriedFrom, carriedExpiresAt: expiry,
                              allocation: plan.creditsPerPeriod, allocationExpiresAt: expiry,
                              charge: plan.isFree ? nil : plan.price, newPeriod: period)
    }
}
