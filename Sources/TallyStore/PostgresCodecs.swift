import NIOCore
import PostgresNIO
import TallyCore

/// Exact binary codecs between PostgreSQL's `numeric` / `timestamptz` and Tally's fixed-point
/// types. PostgresNIO's own Date and Decimal codecs pass through floating point, which Tally's
/// amounts and expiry instants must never do.
enum NumericCodec {
    private static let signPositive: UInt16 = 0x0000
    private static let signNegative: UInt16 = 0x4000

    /// Writes `units * 10^-scale` as a binary numeric with display scale `scale`.
    static func encode(units: Int128, scale: Int, into buffer: inout ByteBuffer) {
        var magnitude = units.magnitude
        let fractionGroups = (scale + 3) / 4
        // Shift so that the value is an integer count of 10^-(4 * fractionGroups).
        for _ in scale..<(fractionGroups * 4) { magnitude *= 10 }
        var groups: [Int16] = []  // least significant first
        while magnitude > 0 {
            groups.append(Int16(magnitude % 10_000))
            magnitude /= 10_000
        }
        // groups[i] has weight i - fractionGroups. Drop zero groups at both ends.
        var lowest = 0
        while lowest < groups.count, groups[lowest] == 0 { lowest += 1 }
        let digits = groups.count > lowest ? Array(groups[lowest...].reversed()) : []
        let weight = digits.isEmpty ? 0 : groups.count - 1 - fractionGroups
        buffer.writeInteger(Int16(digits.count))
        buffer.writeInteger(Int16(weight))
        buffer.writeInteger(units < 0 ? signNegative : signPositive)
        buffer.writeInteger(Int16(scale))
        for digit in digits { buffer.writeInteger(digit) }
    }

    /// Reads a binary numeric as a count of 10^-scale; refuses values that need more places.
    static func decode(from buffer: inout ByteBuffer, scale: Int) throws -> Int128 {
        guard let count = buffer.readInteger(as: Int16.self),
              let weight = buffer.readInteger(as: Int16.self),
              let sign = buffer.readInteger(as: UInt16.self),
              buffer.readInteger(as: Int16.self) != nil,
              sign == signPositive || sign == signNegative else {
            throw PostgresDecodingError.Code.failure
        }
        var value: Int128 = 0
        for index in 0..<Int(count) {
            guard let digit = buffer.readInteger(as: Int16.self) else { throw PostgresDecodingError.Code.failure }
            // This digit is worth digit * 10^(4 * (weight - index)) units of 10^0, i.e.
            // digit * 10^(4 * (weight - index) + scale) units of 10^-scale.
            let exponent = 4 * (Int(weight) - index) + scale
            if exponent >= 0 {
                // 10^34 * 9999 still fits in an Int128 (about 1.7 * 10^38).
                guard exponent <= 34 else { throw PostgresDecodingError.Code.failure }
                let (sum, overflow) = value.addingReportingOverflow(Int128(digit) * pow10(exponent))
                guard !overflow else { throw PostgresDecodingError.Code.failure }
                value = sum
            } else {
                let divisor = pow10(-exponent)
                guard Int128(digit) % divisor == 0 else { throw PostgresDecodingError.Code.failure }
                value += Int128(digit) / divisor
            }
        }
        return sign == signNegative ? -value : value
    }

    private static func pow10(_ exponent: Int) -> Int128 {
        var result: Int128 = 1
        for _ in 0..<exponent { result *= 10 }
        return result
    }
}

extension Credits: PostgresNonThrowingEncodable, PostgresDecodable, PostgresArrayEncodable, PostgresArrayDecodable {
    public static var psqlType: PostgresDataType { .numeric }
    public static var psqlFormat: PostgresFormat { .binary }
    public static var psqlArrayType: PostgresDataType { .numericArray }

    public func encode<E: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<E>) {
        NumericCodec.encode(units: units, scale: Credits.scale, into: &byteBuffer)
    }

    public init<D: PostgresJSONDecoder>(from buffer: inout ByteBuffer, type: PostgresDataType, format: PostgresFormat, context: PostgresDecodingContext<D>) throws {
        guard type == .numeric, format == .binary else { throw PostgresDecodingError.Code.typeMismatch }
        self.init(units: try NumericCodec.decode(from: &buffer, scale: Credits.scale))
    }
}

/// A money amount column (`numeric(20,6)`): the currency lives in its own column.
struct MoneyMicros: PostgresNonThrowingEncodable, PostgresDecodable, PostgresArrayEncodable, PostgresArrayDecodable, Sendable {
    static var psqlType: PostgresDataType { .numeric }
    static var psqlFormat: PostgresFormat { .binary }
    static var psqlArrayType: PostgresDataType { .numericArray }

    let money: Money  // two words, never a bare Int128 (see `Credits`); the currency is a placeholder

    var micros: Int128 { money.micros }
    var isPositive: Bool { money.isPositive }
    /// The amount with all six places, for messages.
    var text: String { DecimalText.format(money.micros, scale: Money.scale) }
    init(_ micros: Int128) { self.money = Money(micros: micros, currency: .usd) }
    init(_ money: Money) { self.money = money }

    func encode<E: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<E>) {
        NumericCodec.encode(units: micros, scale: Money.scale, into: &byteBuffer)
    }

    init<D: PostgresJSONDecoder>(from buffer: inout ByteBuffer, type: PostgresDataType, format: PostgresFormat, context: PostgresDecodingContext<D>) throws {
        guard type == .numeric, format == .binary else { throw PostgresDecodingError.Code.typeMismatch }
        self.init(try NumericCodec.decode(from: &buffer, scale: Money.scale))
    }

    func money(_ currency: Currency) -> Money { Money(micros: micros, currency: currency) }
}

extension Instant: PostgresNonThrowingEncodable, PostgresDecodable, PostgresArrayEncodable, PostgresArrayDecodable {
    /// PostgreSQL counts microseconds from 2000-01-01T00:00:00Z.
    static let postgresEpochOffsetMicroseconds: Int64 = 946_684_800 * 1_000_000

    public static var psqlType: PostgresDataType { .timestamptz }
    public static var psqlFormat: PostgresFormat { .binary }
    public static var psqlArrayType: PostgresDataType { .timestamptzArray }

    public func encode<E: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<E>) {
        byteBuffer.writeInteger(microsecondsSinceEpoch - Self.postgresEpochOffsetMicroseconds)
    }

    public init<D: PostgresJSONDecoder>(from buffer: inout ByteBuffer, type: PostgresDataType, format: PostgresFormat, context: PostgresDecodingContext<D>) throws {
        guard type == .timestamptz, format == .binary, let micros = buffer.readInteger(as: Int64.self) else {
            throw PostgresDecodingError.Code.typeMismatch
        }
        self.init(microsecondsSinceEpoch: micros + Self.postgresEpochOffsetMicroseconds)
    }
}

extension CalendarMonth: PostgresNonThrowingEncodable, PostgresDecodable, PostgresArrayEncodable {
    /// PostgreSQL counts `date` in days from 2000-01-01.
    static let postgresEpochOffsetDays: Int64 = 10_957

    public static var psqlType: PostgresDataType { .date }
    public static var psqlArrayType: PostgresDataType { .dateArray }
    public static var psqlFormat: PostgresFormat { .binary }

    public func encode<E: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<E>) {
        byteBuffer.writeInteger(Int32(firstDayDaysSinceEpoch - Self.postgresEpochOffsetDays))
    }

    public init<D: PostgresJSONDecoder>(from buffer: inout ByteBuffer, type: PostgresDataType, format: PostgresFormat, context: PostgresDecodingContext<D>) throws {
        guard type == .date, format == .binary, let days = buffer.readInteger(as: Int32.self) else {
            throw PostgresDecodingError.Code.typeMismatch
        }
        let (year, month, _) = CivilDate.fromDaysSinceEpoch(Int64(days) + Self.postgresEpochOffsetDays)
        self.init(year: year, month: month)
    }
}
