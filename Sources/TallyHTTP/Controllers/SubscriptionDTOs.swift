import Foundation
import TallyCatalog
import TallyCore
import TallyStore

struct SubscribeBody: Decodable {
    let plan: String
    let startAt: Instant?
}

struct ChangeBody: Decodable {
    let plan: String
    let effective: String?
    let preview: Bool?
}

struct CancelBody: Decodable {
    let atPeriodEnd: Bool?
}

struct ScheduledChangeDTO: Encodable {
    let plan: String
    let effectiveAt: Instant
}

struct SubscriptionResponse: Encodable {
    let id: UUID
    let plan: String
    let planName: String?
    let status: Subscription.Status
    let price: MoneyDTO?
    let creditsPerPeriod: Credits?
    let currentPeriodStart: Instant
    let currentPeriodEnd: Instant
    let anchorAt: Instant
    let cancelAtPeriodEnd: Bool
    let scheduledChange: ScheduledChangeDTO?
    let costPerCredit: MoneyDTO?
    /// The current period's usage (live subscriptions).
    let usage: PeriodUsageDTO?
    let createdAt: Instant
    let canceledAt: Instant?

    init(_ subscription: Subscription, plan: Plan?, usage: PeriodUsage? = nil) {
        self.usage = usage.map(PeriodUsageDTO.init)
        id = subscription.id
        self.plan = subscription.planCode
        planName = plan?.name
        status = subscription.status
        price = plan.map { MoneyDTO($0.price) }
        creditsPerPeriod = plan?.creditsPerPeriod
        currentPeriodStart = subscription.period.start
        currentPeriodEnd = subscription.period.end
        anchorAt = subscription.anchor
        cancelAtPeriodEnd = subscription.cancelAtPeriodEnd
        scheduledChange = subscription.scheduledPlanCode.map { ScheduledChangeDTO(plan: $0, effectiveAt: subscription.period.end) }
        costPerCredit = plan?.costPerCredit.map(MoneyDTO.init)
        createdAt = subscription.createdAt
        canceledAt = subscription.canceledAt
    }
}

struct ChangeResponse: Encodable {
    let effective: String
    let preview: Bool
    let plan: String
    let effectiveAt: Instant
    let charge: MoneyDTO?
    let creditsCarried: Credits
    let creditsGranted: Credits
    let periodStart: Instant
    let periodEnd: Instant
    let invoiceID: UUID?
    let subscription: SubscriptionResponse

    init(_ outcome: PlanChangeOutcome, plan: Plan?) {
        effective = outcome.effective.rawValue
        preview = outcome.preview
        self.plan = outcome.plan
        effectiveAt = outcome.effectiveAt
        charge = outcome.charge.map(MoneyDTO.init)
        creditsCarried = outcome.creditsCarried
        creditsGranted = outcome.creditsGranted
        periodStart = outcome.periodStart
        periodEnd = outcome.periodEnd
        invoiceID = outcome.invoiceID
        subscription = SubscriptionResponse(outcome.subscription, plan: plan)
    }
}

struct InvoiceLineDTO: Encodable {
    let description: String
    let quantity: Credits
    let unitPrice: MoneyDTO
    let amount: MoneyDTO
}

struct InvoiceResponse: Encodable {
    let id: UUID
    let number: Int64?
    let kind: Invoice.Kind
    let status: Invoice.Status
    let lines: [InvoiceLineDTO]
    let total: MoneyDTO
    let periodStart: Instant?
    let periodEnd: Instant?
    let subscriptionID: UUID?
    let issuedAt: Instant?
    let paidAt: Instant?
    let paymentReference: String?
    let voidedAt: Instant?
    let createdAt: Instant

    init(_ invoice: Invoice) {
        id = invoice.id
        number = invoice.number
        kind = invoice.kind
        status = invoice.status
        lines = invoice.lines.map {
            InvoiceLineDTO(description: $0.description, quantity: $0.quantity, unitPrice: MoneyDTO($0.unitPrice), amount: MoneyDTO($0.amount))
        }
        total = MoneyDTO(invoice.total)
        periodStart = invoice.periodStart
        periodEnd = invoice.periodEnd
        subscriptionID = invoice.subscriptionID
        issuedAt = invoice.issuedAt
        paidAt = invoice.paidAt
        paymentReference = invoice.paymentReference
        voidedAt = invoice.voidedAt
        createdAt = invoice.createdAt
    }
}

struct TestClockBody: Decodable {
    let frozenTime: Instant
}

struct AdvanceBody: Decodable {
    let to: Instant
}

struct TestClockResponse: Encodable {
    let id: UUID
    let frozenTime: Instant
    let createdAt: Instant

    init(_ clock: TestClock) {
        id = clock.id
        frozenTime = clock.frozenTime
        createdAt = clock.createdAt
    }
}
