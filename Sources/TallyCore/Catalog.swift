/// A subscription plan. Plans are immutable once an organisation uses one: a price change is a
/// new plan code. A free plan (price 0) and a pay-as-you-go plan (no allocation, purchases only)
/// are ordinary plans.
public struct Plan: Sendable, Equatable {
    public enum Interval: String, Sendable, Codable { case month, year }

    public enum CreditExpiry: Sendable, Equatable {
        /// Plan credits expire when their period ends.
        case periodEnd
        /// Plan credits expire this many days after they are granted.
        case days(Int)
        case never
    }

    public enum Rollover: Sendable, Equatable {
        case none
        case all
        /// At most this many unused plan credits carry into the next period.
        case capped(Credits)
    }

    public let code: String
    public let name: String
    public let price: Money
    public let interval: Interval
    public let creditsPerPeriod: Credits
    public let creditExpiry: CreditExpiry
    public let rollover: Rollover
    public let overageAllowed: Bool
    /// The price of one overage credit (six decimal places at most).
    public let overageRate: Money?
    /// The least a purchase of raw credits may buy (pay-as-you-go: 1,000).
    public let minPurchaseCredits: Credits?
    /// The price of one credit bought outright on this plan; nil when the plan sells no raw credits.
    public let creditPrice: Money?
    /// Days after purchase that credits bought at `creditPrice` expire; nil never.
    public let purchasedCreditsExpireAfterDays: Int?
    /// Per-plan prices of operations, replacing the operations' base cost.
    public let operationRates: [String: Credits]

    public init(code: String, name: String, price: Money, interval: Interval, creditsPerPeriod: Credits,
                creditExpiry: CreditExpiry, rollover: Rollover, overageAllowed: Bool, overageRate: Money?,
                minPurchaseCredits: Credits?, creditPrice: Money?, purchasedCreditsExpireAfterDays: Int?,
                operationRates: [String: Credits]) {
        self.code = code
        self.name = name
        self.price = price
        self.interval = interval
        self.creditsPerPeriod = creditsPerPeriod
        self.creditExpiry = creditExpiry
        self.rollover = rollover
        self.overageAllowed = overageAllowed
        self.overageRate = overageRate
        self.minPurchaseCredits = minPurchaseCredits
        self.creditPrice = creditPrice
        self.purchasedCreditsExpireAfterDays = purchasedCreditsExpireAfterDays
        self.operationRates = operationRates
    }

    public var isFree: Bool { price.isZero }

    /// Price / credits per period to 4 places ($250 / 4,570 = 0.0547); on a pay-as-you-go plan
    /// (no allocation) the per-credit price it sells at; nil when it has neither.
    public var costPerCredit: Money? {
        Plan.costPerCredit(price: price, creditsPerPeriod: creditsPerPeriod, creditPrice: creditPrice)
    }

    /// The one rule for what a credit costs on a plan, shared by the catalog and an organisation's live period.
    public static func costPerCredit(price: Money, creditsPerPeriod: Credits, creditPrice: Money?) -> Money? {
        price.perCredit(of: creditsPerPeriod, decimalPlaces: 4, .halfAwayFromZero) ?? creditPrice
    }

    public func validate() throws(TallyError) {
        try CatalogRules.code(code)
        try CatalogRules.name(name)
        guard !price.isNegative else { throw TallyError.validation("price must not be negative.", field: "price.amount") }
        guard !creditsPerPeriod.isNegative, creditsPerPeriod <= Credits.inputMaximum else {
            throw TallyError.validation("credits_per_period must be between 0 and \(Credits.inputMaximum).", field: "credits_per_period")
        }
        if case .days(let days) = creditExpiry, !(1...3660).contains(days) {
            throw TallyError.validation("credit_expiry.days must be between 1 and 3660.", field: "credit_expiry.days")
        }
        if case .capped(let maximum) = rollover, !maximum.isPositive {
            throw TallyError.validation("rollover.max_credits must be positive.", field: "rollover.max_credits")
        }
        if overageAllowed, overageRate == nil {
            throw TallyError.validation("overage.rate_per_credit is required when overage is allowed.", field: "overage.rate_per_credit")
        }
        // A rate given with overage off is kept for later: it must be valid all the same.
        if let overageRate {
            guard overageRate.isPositive else {
                throw TallyError.validation("overage.rate_per_credit must be positive.", field: "overage.rate_per_credit")
            }
            guard overageRate.currency == price.currency else { throw TallyError.currencyMismatch(price.currency, overageRate.currency) }
        }
        if let minPurchaseCredits, !minPurchaseCredits.isPositive {
            throw TallyError.validation("min_purchase_credits must be positive.", field: "min_purchase_credits")
        }
        if let creditPrice {
            guard creditPrice.micros > 0 else { throw TallyError.validation("credit_price must be positive.", field: "credit_price.amount") }
            guard creditPrice.currency == price.currency else { throw TallyError.currencyMismatch(price.currency, creditPrice.currency) }
        }
        if let days = purchasedCreditsExpireAfterDays, !(1...3660).contains(days) {
            throw TallyError.validation("purchased_credits_expire_after_days must be between 1 and 3660.", field: "purchased_credits_expire_after_days")
        }
        for (operation, rate) in operationRates {
            try CatalogRules.code(operation, field: "operation_rates")
            guard !rate.isNegative, rate <= OperationDefinition.creditsMaximum else {
                throw TallyError.validation("operation_rates.\(operation) must be between 0 and \(OperationDefinition.creditsMaximum).", field: "operation_rates.\(operation)")
            }
        }
    }
}

/// The policies as the API and the database name them (`credit_expiry`, `credit_expiry_days`).
extension Plan.CreditExpiry {
    public var policy: String {
        switch self {
        case .periodEnd: "period_end"
        case .days: "days"
        case .never: "never"
        }
    }

    public var days: Int? { if case .days(let days) = self { days } else { nil } }

    /// nil when the policy is unknown or the days do not go with it.
    public init?(policy: String, days: Int?) {
        switch (policy, days) {
        case ("period_end", nil): self = .periodEnd
        case ("days", let days?): self = .days(days)
        case ("never", nil): self = .never
        default: return nil
        }
    }
}

/// The policies as the API and the database name them (`rollover`, `rollover_max_credits`).
extension Plan.Rollover {
    public var policy: String {
        switch self {
        case .none: "none"
        case .all: "all"
        case .capped: "capped"
        }
    }

    public var maxCredits: Credits? { if case .capped(let maximum) = self { maximum } else { nil } }

    /// nil when the policy is unknown or the maximum does not go with it.
    public init?(policy: String, maxCredits: Credits?) {
        switch (policy, maxCredits) {
        case ("none", nil): self = .none
        case ("all", nil): self = .all
        case ("capped", let maximum?): self = .capped(maximum)
        default: return nil
        }
    }
}

/// A pack of credits sold at a price, expiring some days after purchase (or never).
public struct CreditPack: Sendable, Equatable {
    public let code: String
    public let name: String
    public let credits: Credits
    public let price: Money
    public let expiresAfterDays: Int?

    public init(code: String, name: String, credits: Credits, price: Money, expiresAfterDays: Int?) {
        self.code = code
        self.name = name
        self.credits = credits
        self.price = price
        self.expiresAfterDays = expiresAfterDays
    }

    public func validate() throws(TallyError) {
        try CatalogRules.code(code)
        try CatalogRules.name(name)
        guard credits.isPositive, credits <= Credits.inputMaximum else {
            throw TallyError.validation("credits must be positive.", field: "credits")
        }
        guard !price.isNegative else { throw TallyError.validation("price must not be negative.", field: "price.amount") }
        if let days = expiresAfterDays, !(1...3660).contains(days) {
            throw TallyError.validation("expires_after_days must be between 1 and 3660.", field: "expires_after_days")
        }
    }
}

public enum CatalogRules {
    public static let codeLengthMaximum = 64

    /// Codes are what integrations type: lower-case letters, digits, `_` and `-`.
    public static func code(_ code: String, field: String = "code") throws(TallyError) {
        let allowed = code.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F || $0 == 0x2D }
        guard !code.isEmpty, code.utf8.count <= codeLengthMaximum, allowed else {
            throw TallyError.validation("\(field) '\(code)' must be 1 to \(codeLengthMaximum) of a-z, 0-9, _ and -.", field: field)
        }
    }

    public static func name(_ name: String) throws(TallyError) {
        guard !name.isEmpty, name.unicodeScalars.count <= 200 else { throw TallyError.validation("name must be 1 to 200 characters.", field: "name") }
    }
}
