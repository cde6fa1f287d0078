/// An exact amount of credits with four decimal places ("1.3", "4.1", "137.6").
///
/// Stored as a count of ten-thousandths so that every sum, difference and comparison is
/// exact integer arithmetic. Encoded in JSON as a decimal string.
///
/// The count is 128 bits wide: every amount Tally accepts or stores (at most 10^16 credits, the
/// `numeric(20,4)` columns) has 10^20 units, so sums of even 10^18 of them cannot overflow. No
/// client and no row can make `+` or `-` trap; products are checked (`multiplied(by:)`).
///
/// It is kept as two 64-bit words, not an `Int128` field: Swift 6.3 on Linux miscompiles values
/// holding an `Int128` passed through async functions (swiftlang/swift#91204, #89842; here a
/// segfault in debug builds). Arithmetic widens to `Int128` inside synchronous functions only.
public struct Credits: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let scale = 4
    public static let unitsPerCredit: Int128 = 10_000
    /// The largest amount accepted from a client: a trillion credits.
    public static let inputMaximum = Credits(units: 1_000_000_000_000 * unitsPerCredit)
    /// The most an organisation may hold (the sum of its buckets' remaining credits), and so the
    /// largest bucket: ten trillion credits. Grants and purchases beyond it are refused (422);
    /// the database refuses larger rows too (CHECK constraints of migration 0008).
    public static let balanceMaximum = Credits(units: 10_000_000_000_000 * unitsPerCredit)
    public static let zero = Credits(units: 0)

    private let high: Int64
    private let low: UInt64

    /// Ten-thousandths of a credit.
    public var units: Int128 { Int128(high) << 64 | Int128(low) }

    public init(units: Int128) {
        self.high = Int64(truncatingIfNeeded: units >> 64)
        self.low = UInt64(truncatingIfNeeded: units)
    }

    public init(_ wholeCredits: Int) {
        self.init(units: Int128(wholeCredits) * Self.unitsPerCredit)
    }

    /// Parses exact decimal text; see `DecimalText.parse`.
    public init(parsing text: some StringProtocol) throws(DecimalText.ParseError) {
        self.init(units: Int128(try DecimalText.parse(text, scale: Self.scale)))
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
        let (product, overflow) = units.multipliedReportingOverflow(by: Int128(quantity))
        return overflow ? nil : Credits(units: product)
    }

    /// How many whole times `self` fits into `budget` (0 when self is not positive), at most Int64.max.
    public func wholeTimes(in budget: Credits) -> Int64 {
        guard units > 0, budget.units > 0 else { return 0 }
        return Int64(clamping: budget.units / units)
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
