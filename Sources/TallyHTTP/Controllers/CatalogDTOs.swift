import Foundation
import TallyCatalog
import TallyCore
import TallyJSON

struct PlanResponse: Encodable {
    let code: String
    let name: String
    let price: MoneyDTO
    let interval: Plan.Interval
    let creditsPerPeriod: Credits
    let creditExpiry: PlanBody.Expiry
    let rollover: PlanBody.Rollover
    let overage: PlanBody.Overage
    let minPurchaseCredits: Credits?
    let creditPrice: MoneyDTO?
    let purchasedCreditsExpireAfterDays: Int?
    let operationRates: [String: Credits]
    let costPerCredit: MoneyDTO?

    init(_ plan: Plan) {
        code = plan.code
        name = plan.name
        price = MoneyDTO(plan.price)
        interval = plan.interval
        creditsPerPeriod = plan.creditsPerPeriod
        creditExpiry = PlanBody.Expiry(plan.creditExpiry)
        rollover = PlanBody.Rollover(plan.rollover)
        overage = PlanBody.Overage(plan)
        minPurchaseCredits = plan.minPurchaseCredits
        creditPrice = plan.creditPrice.map(MoneyDTO.init)
        purchasedCreditsExpireAfterDays = plan.purchasedCreditsExpireAfterDays
        operationRates = plan.operationRates
        costPerCredit = plan.costPerCredit.map(MoneyDTO.init)
    }
}

struct PackResponse: Encodable {
    let code: String
    let name: String
    let credits: Credits
    let price: MoneyDTO
    let expiresAfterDays: Int?

    init(_ pack: CreditPack) {
        code = pack.code
        name = pack.name
        credits = pack.credits
        price = MoneyDTO(pack.price)
        expiresAfterDays = pack.expiresAfterDays
    }
}

struct QuoteBody: Decodable {
    let operation: String
    let quantity: Int?
    let params: JSONValue?
}

struct QuoteResponse: Encodable {
    let operation: String
    let quantity: Int
    let unitCredits: Credits
    let billableQuantity: Int
    let credits: Credits
    let available: Credits
    let sufficient: Bool
    let shortfall: Credits
    let maxQuantity: Int
    /// What the covered credits are worth at the period's cost per credit (4 places); null without a plan.
    let cost: MoneyDTO?
    /// The uncovered credits at the plan's overage rate, when the organisation allows overage.
    let overageCost: MoneyDTO?

    init(_ quote: OperationQuote, available: Credits, terms: SpendTerms) {
        operation = quote.operation
        quantity = quote.quantity
        unitCredits = quote.unitCredits
        billableQuantity = quote.billableQuantity
        credits = quote.credits
        self.available = available
        sufficient = available >= quote.credits
        shortfall = max(.zero, quote.credits - available)
        maxQuantity = quote.maxQuantity(available: available)
        let covered = min(quote.credits, max(.zero, available))
        cost = terms.period?.costPerCredit.map { MoneyDTO($0.priceOf(covered, decimalPlaces: 4, .halfAwayFromZero)) }
        let uncovered = shortfall
        overageCost = terms.overagePrice(of: uncovered).map(MoneyDTO.init)
    }
}
