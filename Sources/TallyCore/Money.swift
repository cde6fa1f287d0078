/// An ISO 4217 currency and the number of decimal places of its minor unit.
public struct Currency: Hashable, Sendable, CustomStringConvertible {
    public let code: String
    public let minorUnitDigits: Int

    public var description: String { code }

    /// The currencies Tally bills in. A code outside this table is refused rather than guessed,
    /// because a wrong minor unit would round every invoice line wrongly.
    public static func named(_ code: String) -> Currency? {
        guard let digits = minorUnitDigitsByCode[code] else { return nil }
        return Currency(code: code, minorUnitDigits: digits)
    }

    public static let usd = Currency(code: "USD", minorUnitDigits: 2)

    private static let minorUnitDigitsByCode: [String: Int] = [
        "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "CAD": 2, "AUD": 2, "NZD": 2, "SEK": 2, "NOK": 2,
        "DKK": 2, "PLN": 2, "CZK": 2, "HUF": 2, "RON": 2, "BGN": 2, "INR": 2, "BRL": 2, "MXN": 2,
        "ZAR": 2, "SGD": 2, "HKD": 2, "CNY": 2, "TRY": 2, "ILS": 2, "AED": 2, "SAR": 2,
        "JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0,
        "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3, "TND": 3,
    ]
}

/// An exact amount of money: millionths of the currency's major unit, so that per-credit rates
/// keep six decimal places ("0.054704") while invoice lines round to the minor unit ("0.41").
///
/// The count is 128 bits wide (two 64-bit words, for the reason given on `Credits`): accepted
/// amounts are at most a trillion major units (10^18 micros) and credits at most 10^20 units, so
/// even `priceOf` (a product of the two) cannot overflow.
public struct Money: Hashable, Sendable, CustomStringConvertible {
    public static let scale = 6
    public static let microsPerUnit: Int128 = 1_000_000
    /// The largest amount accepted from a client: a trillion of the currency's major unit.
    public static let inputMaximumMicros: Int128 = 1_000_000_000_000 * microsPerUnit

    private let high: Int64
    private let low: UInt64
    public let currency: Currency

    public var micros: Int128 { Int128(high) << 64 | Int128(low) }

    public init(micros: Int128, currency: Currency) {
        self.high = Int64(truncatingIfNeeded: micros >> 64)
        self.low = UInt64(truncatingIfNeeded: micros)
        self.currency = currency
    }

    public static func zero(_ currency: Currency) -> Money { Money(micros: 0, currency: currency) }

    /// Parses an amount with at most `maximumDecimalPlaces` (the minor unit for prices, six for rates).
    public init(parsing text: some StringProtocol, currency: Currency, maximumDecimalPlaces: Int) throws(DecimalText.ParseError) {
        precondition(maximumDecimalPlaces <= Self.scale)
        let exact = Int128(try DecimalText.parse(text, scale: maximumDecimalPlaces))
        let micros = exact * Int128(DecimalText.powerOfTen(Self.scale - maximumDecimalPlaces))
        guard micros.magnitude <= Self.inputMaximumMicros.magnitude else { throw .outOfRange }
        self.init(micros: micros, currency: currency)
    }

    /// The amount as text with at least the currency's minor-unit digits: "250.00", "0.0547", "0.41".
    public var amountText: String {
        DecimalText.format(micros, scale: Self.scale, minimumFractionDigits: currency.minorUnitDigits)
    }

    public var description: String { "\(amountText) \(currency.code)" }

    public var isNegative: Bool { micros < 0 }
    public var isPositive: Bool { micros > 0 }
    public var isZero: Bool { micros == 0 }

    /// Rounds to the currency's minor unit with an explicit rule.
    public func roundedToMinorUnit(_ rule: RoundingRule) -> Money {
        let step = Int128(DecimalText.powerOfTen(Self.scale - currency.minorUnitDigits))
        return Money(micros: rule.divide(micros, by: step) * step, currency: currency)
    }

    /// Rounds to `decimalPlaces` (at most six) with an explicit rule.
    public func rounded(toDecimalPlaces decimalPlaces: Int, _ rule: RoundingRule) -> Money {
        let step = Int128(DecimalText.powerOfTen(Self.scale - decimalPlaces))
        return Money(micros: rule.divide(micros, by: step) * step, currency: currency)
    }

    /// Adds amounts of one currency; amounts in different currencies never mix.
    public func adding(_ other: Money) throws(TallyError) -> Money {
        guard other.currency == currency else {
            throw TallyError.currencyMismatch(currency, other.currency)
        }
        return Money(micros: micros + other.micros, currency: currency)
    }

    /// The exact price of `credits` at this per-credit rate, rounded to the minor unit.
    /// The exact product has 10 decimal places (4 of credits, 6 of the rate) before rounding.
    public func priceOf(_ credits: Credits, _ rule: RoundingRule) -> Money {
        let exact = credits.units * micros    // scale 10
        let step = Int128(Credits.unitsPerCredit) * Int128(DecimalText.powerOfTen(Self.scale - currency.minorUnitDigits))
        let minorUnits = rule.divide(exact, by: step)
        let micros = minorUnits * Int128(DecimalText.powerOfTen(Self.scale - currency.minorUnitDigits))
        return Money(micros: micros, currency: currency)
    }

    /// The exact price of `credits` at this per-credit rate, rounded to `decimalPlaces` (at most
    /// six): what a quote shows as the worth of credits (seed 001: 4.1 x 0.0547 = 0.2243).
    public func priceOf(_ credits: Credits, decimalPlaces: Int, _ rule: RoundingRule) -> Money {
        let unit = Int128(DecimalText.powerOfTen(Self.scale - min(decimalPlaces, Self.scale)))
        let places = rule.divide(credits.units * micros, by: Credits.unitsPerCredit * unit)
        return Money(micros: places * unit, currency: currency)
    }

    /// Price divided by a number of credits, to `decimalPlaces`: the value of one credit.
    /// $250 / 4,570 credits to 4 places = 0.0547.
    public func perCredit(of credits: Credits, decimalPlaces: Int, _ rule: RoundingRule) -> Money? {
        guard credits.isPositive else { return nil }
        // micros / (units / 10^4) = micros * 10^4 / units, then to `decimalPlaces`.
        let step = Int128(DecimalText.powerOfTen(Self.scale - decimalPlaces))
        let numerator = micros * Credits.unitsPerCredit
        let quotient = rule.divide(numerator, by: credits.units * step)
        return Money(micros: quotient * step, currency: currency)
    }
}
