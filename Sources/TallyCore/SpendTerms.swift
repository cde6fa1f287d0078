import struct Foundation.UUID

/// The live subscription period a spend counts against.
public struct LivePeriod: Sendable, Equatable {
    public let subscriptionID: UUID
    public let planCode: String
    public let planName: String
    public let start: Instant
    public let end: Instant
    public let allocation: Credits
    /// The plan's overage rate when the plan allows overage.
    public let overageRate: Money?
    /// Plan price / credits per period, 4 places (nil without an allocation).
    public let costPerCredit: Money?

    public init(subscriptionID: UUID, planCode: String, planName: String, start: Instant, end: Instant, allocation: Credits,
                overageRate: Money?, costPerCredit: Money? = nil) {
        self.subscriptionID = subscriptionID
        self.planCode = planCode
        self.planName = planName
        self.start = start
        self.end = end
        self.allocation = allocation
        self.overageRate = overageRate
        self.costPerCredit = costPerCredit
    }
}

/// A period's usage as the balance and subscription views show it.
public struct PeriodUsage: Sendable, Equatable {
    public let start: Instant
    public let end: Instant
    public let allocation: Credits
    /// Credits spent in the period (from any bucket, overage included), net of reversals.
    public let used: Credits
    public let overage: Credits

    public init(start: Instant, end: Instant, allocation: Credits, used: Credits, overage: Credits) {
        self.start = start
        self.end = end
        self.allocation = allocation
        self.used = used
        self.overage = overage
    }

    /// used / allocation in percent, to 2 places, rounded half up; nil without an allocation.
    public var usedPercent: String? {
        guard allocation.isPositive else { return nil }
        let hundredths = RoundingRule.halfAwayFromZero.divide(Int128(used.units) * 10_000, by: Int128(allocation.units))
        return DecimalText.format(Int64(hundredths), scale: 2)
    }
}

/// What a spend may do beyond the credits, decided from the plan and the organisation's settings.
public struct SpendTerms: Sendable, Equatable {
    public struct Overage: Sendable, Equatable {
        public let rate: Money
        public let capCredits: Credits?
    }

    public struct AutoTopUp: Sendable, Equatable {
        public let thresholdCredits: Credits
        public let packCode: String

        public init(thresholdCredits: Credits, packCode: String) {
            self.thresholdCredits = thresholdCredits
            self.packCode = packCode
        }
    }

    public let period: LivePeriod?
    /// Nil: a spend the credits do not cover is refused (402).
    public let overage: Overage?

    /// What `uncovered` credits would cost at the plan's overage rate (rounded to the currency's
    /// minor unit, half away from zero); nil when overage is not allowed.
    public func overagePrice(of uncovered: Credits) -> Money? {
        overage.map { $0.rate.priceOf(uncovered, .halfAwayFromZero) }
    }
    public let autoTopUp: AutoTopUp?
    /// The organisation's time zone: usage is summed per calendar month in it.
    public let timezone: String
    public let alertThresholdsPercent: [Int]
    /// `balance.low` fires when a spend leaves the balance below this.
    public let lowBalanceCredits: Credits?

    public init(period: LivePeriod?, settings: OrgSettings, timezone: String = "UTC") {
        self.period = period
        self.timezone = timezone
        self.alertThresholdsPercent = settings.alertThresholdsPercent
        self.lowBalanceCredits = settings.lowBalanceCredits ?? period.flatMap(Self.defaultLowBalance)
        if let period, let rate = period.overageRate, !settings.overageProtection {
            self.overage = Overage(rate: rate, capCredits: settings.overageCapCredits)
        } else {
            self.overage = nil
        }
        if settings.autoTopUp.enabled, let threshold = settings.autoTopUp.thresholdCredits, let pack = settings.autoTopUp.packCode {
            self.autoTopUp = AutoTopUp(thresholdCredits: threshold, packCode: pack)
        } else {
            self.autoTopUp = nil
        }
    }

    public static let strict = SpendTerms(period: nil, settings: .defaults)

    /// `balance.low` by default: below 10% of the period's allocation (none without one).
    static func defaultLowBalance(_ period: LivePeriod) -> Credits? {
        guard period.allocation.isPositive else { return nil }
        return Credits(units: period.allocation.units * Int128(OrgSettings.defaultLowBalancePercent) / 100)
    }
}

public enum OverageRules {
    /// Overage within the period's cap is allowed; beyond it the spend is refused with 402
    /// `overage_cap_reached`.
    public static func check(needed: Credits, incurred: Credits, cap: Credits?) throws(TallyError) {
        guard let cap, incurred + needed > cap else { return }
        throw TallyError(
            .paymentRequired, code: "overage_cap_reached",
            detail: "This needs \(needed) overage credits; the period has used \(incurred) of its \(cap)-credit overage cap.",
            extras: ["overage_required": needed.description, "overage_used": incurred.description, "overage_cap": cap.description]
        )
    }

    /// The overage line of a period's invoice, recomputed exactly from the period's total.
    public static func line(credits: Credits, rate: Money) -> InvoiceLine {
        InvoiceLine(description: "Overage: credits used beyond the plan's allocation", quantity: credits, unitPrice: rate)
    }
}
