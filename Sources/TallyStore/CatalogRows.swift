import Foundation
import Logging
import PostgresNIO
import TallyCore
import TallyJSON

/// Row mapping of `plans`.
enum PlanRows {
    static let columns = """
        code, name, price, currency, billing_interval, credits_per_period, credit_expiry, credit_expiry_days, rollover,
        rollover_max_credits, overage_allowed, overage_rate, min_purchase_credits, credit_price,
        purchased_credits_expire_after_days, operation_rates::text
        """

    static func insert(_ plan: Plan, at now: Instant) -> PostgresQuery {
        let rates = JSONValue.object(plan.operationRates.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value.description)) })
        let ratesText = String(decoding: rates.serialized(), as: UTF8.self)
        return """
            INSERT INTO plans (code, name, price, currency, billing_interval, credits_per_period, credit_expiry, credit_expiry_days,
                rollover, rollover_max_credits, overage_allowed, overage_rate, min_purchase_credits, credit_price,
                purchased_credits_expire_after_days, operation_rates, created_at, updated_at)
            VALUES (\(plan.code), \(plan.name), \(MoneyMicros(plan.price)), \(plan.price.currency.code), \(plan.interval.rawValue),
                \(plan.creditsPerPeriod), \(plan.creditExpiry.policy), \(plan.creditExpiry.days), \(plan.rollover.policy),
                \(plan.rollover.maxCredits), \(plan.overageAllowed),
                \(plan.overageRate.map(MoneyMicros.init)), \(plan.minPurchaseCredits), \(plan.creditPrice.map(MoneyMicros.init)),
                \(plan.purchasedCreditsExpireAfterDays), \(ratesText)::jsonb, \(now), \(now))
            """
    }

    static func decode(_ row: PostgresRow) throws -> Plan {
        let c = row.makeRandomAccess()
        let currency = try StoredValue.currency(try c[3].decode(String.self), column: "plans.currency")
        let expiryPolicy = try c[6].decode(String.self)
        guard let expiry = Plan.CreditExpiry(policy: expiryPolicy, days: try c[7].decode(Int?.self)) else {
            throw UnknownStoredValue(column: "plans.credit_expiry", value: expiryPolicy)
        }
        let rolloverPolicy = try c[8].decode(String.self)
        guard let rollover = Plan.Rollover(policy: rolloverPolicy, maxCredits: try c[9].decode(Credits?.self)) else {
            throw UnknownStoredValue(column: "plans.rollover", value: rolloverPolicy)
        }
        var rates: [String: Credits] = [:]
        if case .object(let members) = try JSONParser.parse(Array(try c[15].decode(String.self).utf8)) {
            for (key, value) in members { rates[key] = try CatalogJSON.credits(value) }
        }
        return Plan(
            code: try c[0].decode(String.self), name: try c[1].decode(String.self),
            price: try c[2].decode(MoneyMicros.self).money(currency),
            interval: try StoredValue.decode(Plan.Interval.self, try c[4].decode(String.self), column: "plans.interval"),
            creditsPerPeriod: try c[5].decode(Credits.self), creditExpiry: expiry, rollover: rollover,
            overageAllowed: try c[10].decode(Bool.self), overageRate: try c[11].decode(MoneyMicros?.self)?.money(currency),
            minPurchaseCredits: try c[12].decode(Credits?.self), creditPrice: try c[13].decode(MoneyMicros?.self)?.money(currency),
            purchasedCreditsExpireAfterDays: try c[14].decode(Int?.self), operationRates: rates
        )
    }

    /// A plan is in use once any organisation has subscribed to it (or is scheduled to move to it).
    static func isInUse(_ code: String, on connection: DatabaseConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.query("""
            SELECT EXISTS (SELECT 1 FROM subscriptions WHERE plan_code = \(code) OR scheduled_plan_code = \(code))
            """, logger: logger).collect()
        return try rows[0].decode(Bool.self)
    }
}

/// Row mapping of `operations`.
enum OperationRows {
    static let columns = "code, name, credits, tiers::text, multipliers::text, addons::text, components, free_quantity_per_request"

    /// The pricing rules are stored as the core writes them (`Codable`): a field added to a rule
    /// needs no mapping here.
    static func insert(_ operation: OperationDefinition, at now: Instant) throws -> PostgresQuery {
        """
        INSERT INTO operations (code, name, credits, tiers, multipliers, addons, components, free_quantity_per_request, created_at, updated_at)
        VALUES (\(operation.code), \(operation.name), \(operation.credits), \(try text(operation.tiers))::jsonb,
                \(try text(operation.multipliers))::jsonb, \(try text(operation.addons))::jsonb, \(operation.components),
                \(operation.freeQuantityPerRequest), \(now), \(now))
        """
    }

    private static func text<Rules: Encodable>(_ rules: Rules) throws -> String {
        String(decoding: try TallyJSONEncoder.encode(rules), as: UTF8.self)
    }

    private static func rules<Rules: Decodable>(_ type: Rules.Type, _ text: String, column: String) throws -> Rules {
        do {
            return try StrictJSONDecoder.decode(type, from: try JSONParser.parse(Array(text.utf8)))
        } catch {
            throw UnknownStoredValue(column: "operations.\(column)", value: text)
        }
    }

    static func decode(_ row: PostgresRow) throws -> OperationDefinition {
        let (code, name, credits, tiersText, multipliersText, addonsText, components, free) =
            try row.decode((String, String, Credits?, String, String, String, [String], Int).self)
        return OperationDefinition(
            code: code, name: name, credits: credits,
            tiers: try rules([OperationDefinition.Tier].self, tiersText, column: "tiers"),
            multipliers: try rules([OperationDefinition.Multiplier].self, multipliersText, column: "multipliers"),
            addons: try rules([OperationDefinition.Addon].self, addonsText, column: "addons"),
            components: components, freeQuantityPerRequest: free
        )
    }
}

/// Row mapping of `credit_packs`.
enum PackRows {
    static let columns = "code, name, credits, price, currency, expires_after_days"

    static func decode(_ row: PostgresRow) throws -> CreditPack {
        let (code, name, credits, price, currencyCode, days) = try row.decode((String, String, Credits, MoneyMicros, String, Int?).self)
        let currency = try StoredValue.currency(currencyCode, column: "credit_packs.currency")
        return CreditPack(code: code, name: name, credits: credits, price: price.money(currency), expiresAfterDays: days)
    }
}
