/// An exact amount of credits with four decimal places ("1.3", "4.1", "137.6").
///
/// Stored as a count of ten-thousandths so that every sum, difference and comparison is
/// exact integer arithmetic. Encoded in JSON as a decimal string.
public struct Credits: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let scale = 4
    public static let unitsPerCredit: Int64 = 10_000
    /// The largest amount accepted from a client: a trillion credits. Sums of many such amounts
    /// still fit in the Int64 representation (about 9.2 * 10^14 credits).
    public static let inputMaximum = Credits(units: 1_000_000_000_000 * unitsPerCredit)
    public static let zero = Credits(units: 0)

    /// Ten-thousandths of a credit.
    public let units: Int64

    public init(units: Int64) {
        self.units = units
    }

    public init(_ wholeCredits: Int) {
        self.units = Int64(wholeCredits) * Self.unitsPerCredit
    }

    /// Parses exact decimal text; see `DecimalText.parse`.
    public init(parsing text: some StringProtocol) throws(DecimalText.ParseError) {
        self.units = try DecimalText.parse(text, scale: Self.scale)
    }

    /// Canonical text: trailing zeros trimmed ("137.6", "130", "0").
    public var description: String {
        DecimalText.format(units, scale: Self.scale)
    }

    public var isZero: Bool { units == 0 }
    public var isPositive: Bool { units > 0 }
    public var isNegative: Bool { units < 0 }

    public static func < (lhs: Credits, rhs: Credits) -> Bool { lhs.units < rhs.units }
    public static func + (lhs: Credits, rhs: Credits) -> Credits { Credits(units: lhs.units + rhs.units) }
    public static func - (lhs: Credits, rhs: Credits) -> Credits { Credits(units: lhs.units - rhs.units) }
    public static prefix func - (value: Credits) -> Credits { Credits(units: -value.units) }
    public static func += (lhs: inout Credits, rhs: Credits) { lhs = lhs + rhs }
    public static func -= (lhs: inout Credits, rhs: Credits) { lhs = lhs - rhs }

    /// `self * quantity`, or nil when the product does not fit.
    public func multiplied(by quantity: Int) -> Credits? {
        let (product, overflow) = units.multipliedReportingOverflow(by: Int64(quantity))
        return overflow ? nil : Credits(units: product)
    }

    /// How many whole times `self` fits into `budget` (0 when self is not positive).
    public func wholeTimes(in budget: Credits) -> Int64 {
        guard units > 0, budget.units > 0 else { return 0 }
        return budget.units / units
    }
}

extension Credits: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try Credits(parsing: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.explanation)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension DecimalText.ParseError {
    public var explanation: String {
        switch self {
        case .notANumber: "is not a decimal number"
        case .tooManyDecimalPlaces(let maximum): "has more than \(maximum) decimal places"
        case .outOfRange: "is out of range"
        }
    }
}

extension Sequence where Element == Credits {
    public func sum() -> Credits { reduce(.zero, +) }
}
