import Foundation
import TallyCore
import TallyJSON

// The catalog's JSON shapes as the API takes them (POST/PUT of plans, operations and credit
// packs) and as catalog files hold them (`tally catalog load`, `serve --load-catalog`).

/// A decimal as written: a JSON string, or a JSON number read as its exact literal text. It is
/// written as a string.
public struct DecimalLiteral: JSONNumberLiteralDecodable, Encodable, Sendable {
    public let text: String

    public init(_ text: String) {
        self.text = text
    }

    public init(from decoder: any Decoder) throws {
        text = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}

/// `{"amount": "9.90", "currency": "USD"}`.
public struct MoneyDTO: Codable, Sendable {
    let amount: DecimalLiteral
    let currency: String

    public init(_ money: Money) {
        amount = DecimalLiteral(money.amountText)
        currency = money.currency.code
    }

    /// Prices take the currency's minor unit at most; per-credit rates six places.
    public func money(field: String, maximumDecimalPlaces: Int? = nil) throws(TallyError) -> Money {
        guard let currency = Currency.named(currency) else {
            throw TallyError.validation("\(field).currency '\(self.currency)' is not a supported ISO 4217 code.", field: "\(field).currency")
        }
        return try Self.parse(amount.text, currency: currency, places: maximumDecimalPlaces ?? currency.minorUnitDigits, field: "\(field).amount")
    }

    public static func parse(_ text: String, currency: Currency, places: Int, field: String) throws(TallyError) -> Money {
        do {
            return try Money(parsing: text, currency: currency, maximumDecimalPlaces: places)
        } catch {
            throw TallyError.validation("\(field) \(error.explanation).", field: field)
        }
    }
}

/// A plan as it is written to the API. Its parts are the response's parts too (`PlanResponse`):
/// each maps its part of a `Plan` both ways.
public struct PlanBody: Decodable {
    /// `{"policy": "period_end" | "never" | "days", "days": 30}`.
    public struct Expiry: Codable, Sendable {
        let policy: String
        let days: Int?

        public init(_ expiry: Plan.CreditExpiry) {
            policy = expiry.policy
            days = expiry.days
        }

        func expiry() throws(TallyError) -> Plan.CreditExpiry {
            if let expiry = Plan.CreditExpiry(policy: policy, days: days) { return expiry }
            if policy == "days" { throw TallyError.validation("credit_expiry.days is required with policy days.", field: "credit_expiry.days") }
            throw TallyError.validation("credit_expiry.policy must be period_end, days or never (days only with days).", field: "credit_expiry.policy")
        }
    }

    /// `"none"`, `"all"`, or `{"policy": "capped", "max_credits": "1000"}` (always an object when written).
    public struct Rollover: Codable, Sendable {
        let policy: String
        let maxCredits: Credits?

        public init(_ rollover: Plan.Rollover) {
            policy = rollover.policy
            maxCredits = rollover.maxCredits
        }

        public init(from decoder: any Decoder) throws {
            if let word = try? decoder.singleValueContainer().decode(String.self) {
                policy = word
                maxCredits = nil
                return
            }
            let container = try decoder.container(keyedBy: CodingKeys.self)
            policy = try container.decode(String.self, forKey: .policy)
            maxCredits = try container.decodeIfPresent(Credits.self, forKey: .maxCredits)
        }

        func rollover() throws(TallyError) -> Plan.Rollover {
            if let rollover = Plan.Rollover(policy: policy, maxCredits: maxCredits) { return rollover }
            if policy == "capped" { throw TallyError.validation("rollover.max_credits is required with policy capped.", field: "rollover.max_credits") }
            throw TallyError.validation("rollover.policy must be none, all or capped (max_credits only with capped).", field: "rollover.policy")
        }
    }

    /// `{"allowed": true, "rate_per_credit": "0.012"}`: the rate in the plan's currency.
    public struct Overage: Codable, Sendable {
        let allowed: Bool
        let ratePerCredit: DecimalLiteral?

        public init(_ plan: Plan) {
            allowed = plan.overageAllowed
            ratePerCredit = plan.overageRate.map { DecimalLiteral($0.amountText) }
        }
    }

    let code: String
    let name: String
    let price: MoneyDTO
    let interval: Plan.Interval
    let rollover: Rollover?
    let overage: Overage?
    let creditsPerPeriod: Credits
    let creditExpiry: Expiry?
    let minPurchaseCredits: Credits?
    let creditPrice: MoneyDTO?
    let purchasedCreditsExpireAfterDays: Int?
    let operationRates: [String: Credits]?

    public func plan() throws(TallyError) -> Plan {
        let price = try self.price.money(field: "price")
        let expiry = try creditExpiry?.expiry() ?? .periodEnd
        let rollover = try self.rollover?.rollover() ?? .none
        var overageRate: Money?
        if let rate = overage?.ratePerCredit {
            overageRate = try MoneyDTO.parse(rate.text, currency: price.currency, places: Money.scale, field: "overage.rate_per_credit")
        }
        let creditPrice = try self.creditPrice?.money(field: "credit_price", maximumDecimalPlaces: Money.scale)
        let plan = Plan(code: code, name: name, price: price, interval: interval, creditsPerPeriod: creditsPerPeriod,
                        creditExpiry: expiry, rollover: rollover, overageAllowed: overage?.allowed ?? false, overageRate: overageRate,
                        minPurchaseCredits: minPurchaseCredits, creditPrice: creditPrice,
                        purchasedCreditsExpireAfterDays: purchasedCreditsExpireAfterDays, operationRates: operationRates ?? [:])
        try plan.validate()
        return plan
    }
}

public struct OperationBody: Codable {
    struct Tier: Codable {
        let param: String
        let value: DecimalLiteral
        let credits: Credits
    }

    struct Multiplier: Codable {
        let param: String
        let value: DecimalLiteral
        let factor: DecimalLiteral
    }

    struct Addon: Codable {
        let param: String
        let credits: Credits
    }

    let code: String
    let name: String
    let credits: Credits?
    let tiers: [Tier]?
    let multipliers: [Multiplier]?
    let addons: [Addon]?
    let components: [String]?
    let freeQuantityPerRequest: Int?

    public init(_ operation: OperationDefinition) {
        code = operation.code
        name = operation.name
        credits = operation.credits
        tiers = operation.tiers.map { Tier(param: $0.param, value: DecimalLiteral($0.value), credits: $0.credits) }
        multipliers = operation.multipliers.map { Multiplier(param: $0.param, value: DecimalLiteral($0.value), factor: DecimalLiteral($0.factor.description)) }
        addons = operation.addons.map { Addon(param: $0.param, credits: $0.credits) }
        components = operation.components
        freeQuantityPerRequest = operation.freeQuantityPerRequest
    }

    public func definition() throws(TallyError) -> OperationDefinition {
        var parsedMultipliers: [OperationDefinition.Multiplier] = []
        for (index, multiplier) in (multipliers ?? []).enumerated() {
            do {
                parsedMultipliers.append(.init(param: multiplier.param, value: multiplier.value.text, factor: try Factor(parsing: multiplier.factor.text)))
            } catch {
                throw TallyError.validation("multipliers[\(index)].factor \(error.explanation).", field: "multipliers[\(index)].factor")
            }
        }
        return OperationDefinition(
            code: code, name: name, credits: credits,
            tiers: (tiers ?? []).map { .init(param: $0.param, value: $0.value.text, credits: $0.credits) },
            multipliers: parsedMultipliers,
            addons: (addons ?? []).map { .init(param: $0.param, credits: $0.credits) },
            components: components ?? [], freeQuantityPerRequest: freeQuantityPerRequest ?? 0
        )
    }
}

public struct PackBody: Decodable {
    let code: String
    let name: String?
    let credits: Credits
    let price: MoneyDTO
    let expiresAfterDays: Int?

    public func pack() throws(TallyError) -> CreditPack {
        let pack = CreditPack(code: code, name: name ?? code, credits: credits, price: try price.money(field: "price"), expiresAfterDays: expiresAfterDays)
        try pack.validate()
        return pack
    }
}

/// The demo catalog file and `tally catalog load`: the same shapes as the API.
struct CatalogDocument: Decodable {
    let plans: [PlanBody]?
    let operations: [OperationBody]?
    let creditPacks: [PackBody]?
}
