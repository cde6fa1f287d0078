import struct Foundation.UUID

/// One line of an invoice: `amount = quantity x unit price`, rounded to the currency's minor unit
/// half away from zero.
public struct InvoiceLine: Sendable, Equatable {
    public let description: String
    /// A count (1 subscription) or a number of credits (overage), exact to 4 places.
    public let quantity: Credits
    /// The price of one unit, up to six decimal places (a per-credit rate).
    public let unitPrice: Money
    public let amount: Money

    public init(description: String, quantity: Credits, unitPrice: Money) {
        self.description = description
        self.quantity = quantity
        self.unitPrice = unitPrice
        self.amount = unitPrice.priceOf(quantity, .halfAwayFromZero)
    }

    /// A line read back as stored.
    public init(description: String, quantity: Credits, unitPrice: Money, amount: Money) {
        self.description = description
        self.quantity = quantity
        self.unitPrice = unitPrice
        self.amount = amount
    }
}

public struct Invoice: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable { case subscription, purchase, overage }
    public enum Status: String, Sendable, Codable { case draft, open, paid, void }

    public let id: UUID
    public let number: Int64?
    public let kind: Kind
    public let status: Status
    public let currency: Currency
    public let lines: [InvoiceLine]
    public let total: Money
    public let subscriptionID: UUID?
    public let periodStart: Instant?
    public let periodEnd: Instant?
    public let issuedAt: Instant?
    public let paidAt: Instant?
    public let paymentReference: String?
    public let voidedAt: Instant?
    public let createdAt: Instant

    public init(id: UUID, number: Int64?, kind: Kind, status: Status, currency: Currency, lines: [InvoiceLine], total: Money,
                subscriptionID: UUID?, periodStart: Instant?, periodEnd: Instant?, issuedAt: Instant?, paidAt: Instant?,
                paymentReference: String?, voidedAt: Instant?, createdAt: Instant) {
        self.id = id
        self.number = number
        self.kind = kind
        self.status = status
        self.currency = currency
        self.lines = lines
        self.total = total
        self.subscriptionID = subscriptionID
        self.periodStart = periodStart
        self.periodEnd = periodEnd
        self.issuedAt = issuedAt
        self.paidAt = paidAt
        self.paymentReference = paymentReference
        self.voidedAt = voidedAt
        self.createdAt = createdAt
    }
}

public enum InvoiceMath {
    /// The total is the sum of the rounded lines, never a rounding of the exact sum; lines in
    /// another currency are refused.
    public static func total(of lines: [InvoiceLine], currency: Currency) throws(TallyError) -> Money {
        var total = Money.zero(currency)
        for line in lines {
            guard line.amount.currency == currency else { throw TallyError.currencyMismatch(currency, line.amount.currency) }
            total = try total.adding(line.amount)
        }
        return total
    }
}
