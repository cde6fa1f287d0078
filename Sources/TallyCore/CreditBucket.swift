import struct Foundation.UUID

/// Where a bucket's credits came from. The source sets the default burn-down priority.
public enum BucketSource: String, Sendable, CaseIterable, Codable {
    case planAllocation = "plan_allocation"
    case rollover
    case purchase
    case freeCredits = "free_credits"
    case promotional
    case adminGrant = "admin_grant"
    case refund

    /// Lower burns first: free and promotional credits before plan credits before paid-for ones,
    /// so that what the customer paid for separately lasts longest.
    public var defaultPriority: Int {
        switch self {
        case .freeCredits, .promotional, .adminGrant: 10
        case .planAllocation, .rollover: 20
        case .purchase, .refund: 30
        }
    }

    /// A subscription's credits (its allocations and what rolled over): they end with its period,
    /// and all at once when it is canceled now.
    public var isPlanCredit: Bool { self == .planAllocation || self == .rollover }

    /// Sources a caller may grant directly through `POST .../grants`.
    public static let grantable: [BucketSource] = [.freeCredits, .promotional, .adminGrant, .refund]
}

/// One grant of credits with its own expiry and priority. Spending draws from buckets in the
/// burn-down order; a bucket's `remaining` always equals its `granted` plus its ledger postings.
public struct CreditBucket: Sendable, Equatable {
    public let id: UUID
    public let source: BucketSource
    public let granted: Credits
    public var remaining: Credits
    public let priority: Int
    /// Credits become spendable at this instant (a grant may be scheduled ahead).
    public let effectiveAt: Instant
    /// Credits are no longer spendable or counted at this instant; nil never expires.
    public let expiresAt: Instant?
    /// When the grant was made: the third key of the burn-down order.
    public let grantedAt: Instant

    public init(id: UUID, source: BucketSource, granted: Credits, remaining: Credits, priority: Int,
                effectiveAt: Instant, expiresAt: Instant?, grantedAt: Instant) {
        self.id = id
        self.source = source
        self.granted = granted
        self.remaining = remaining
        self.priority = priority
        self.effectiveAt = effectiveAt
        self.expiresAt = expiresAt
        self.grantedAt = grantedAt
    }

    /// Expired exactly at `expiresAt`: a bucket is not spendable from that microsecond on.
    public func isExpired(at now: Instant) -> Bool {
        guard let expiresAt else { return false }
        return expiresAt <= now
    }

    public func isSpendable(at now: Instant) -> Bool {
        remaining.isPositive && effectiveAt <= now && !isExpired(at: now)
    }
}

extension UUID {
    /// Byte-wise order, the same order PostgreSQL gives `uuid` values.
    public static func precedes(_ a: UUID, _ b: UUID) -> Bool {
        withUnsafeBytes(of: a.uuid) { lhs in
            withUnsafeBytes(of: b.uuid) { rhs in
                lhs.lexicographicallyPrecedes(rhs)
            }
        }
    }
}
