/// Exact conversion between decimal text ("137.6", "-4.1000") and scaled integers.
///
/// Credits and money never pass through a binary float: text is read digit by digit into an
/// integer count of the smallest unit (10^-scale), and written back the same way.
public enum DecimalText {
    public enum ParseError: Error, Equatable, Sendable {
        case notANumber
        case tooManyDecimalPlaces(maximum: Int)
        case outOfRange
    }

    /// Parses `text` as a decimal with at most `scale` significant decimal places.
    ///
    /// Accepted: an optional leading `-`, one or more digits, optionally `.` and one or more digits.
    /// Trailing zeros past `scale` are accepted because they do not change the value ("4.10000").
    /// Rejected: exponents, `+`, whitespace, "NaN", "Infinity", ".5", "5.".
    public static func parse(_ text: some StringProtocol, scale: Int) throws(ParseError) -> Int64 {
        var utf8 = Array(text.utf8)
        var negative = false
        if utf8.first == UInt8(ascii: "-") {
            negative = true
            utf8.removeFirst()
        }
        guard !utf8.isEmpty else { throw .notANumber }
        var integerDigits: ArraySlice<UInt8> = utf8[...]
        var fractionDigits: ArraySlice<UInt8> = []
        if let dot = utf8.firstIndex(of: UInt8(ascii: ".")) {
            integerDigits = utf8[..<dot]
            fractionDigits = utf8[(dot + 1)...]
            guard !fractionDigits.isEmpty else { throw .notANumber }
        }
        guard !integerDigits.isEmpty else { throw .notANumber }
        for byte in integerDigits where !isDigit(byte) { throw .notANumber }
        for byte in fractionDigits where !isDigit(byte) { throw .notANumber }
        if fractionDigits.count > scale {
            let beyond = fractionDigits.dropFirst(scale)
            guard beyond.allSatisfy({ $0 == UInt8(ascii: "0") }) else {
                throw .tooManyDecimalPlaces(maximum: scale)
            }
            fractionDigits = fractionDigits.prefix(scale)
        }
        var value: Int64 = 0
        for byte in integerDigits {
            value = try appendDigit(value, byte)
        }
        for index in 0..<scale {
            let byte = index < fractionDigits.count ? fractionDigits[fractionDigits.startIndex + index] : UInt8(ascii: "0")
            value = try appendDigit(value, byte)
        }
        return negative ? -value : value
    }

    /// Formats a scaled integer, trimming trailing fraction zeros but keeping at least
    /// `minimumFractionDigits` of them: (1376000, 4) -> "137.6"; (1300000, 4) -> "130".
    public static func format(_ scaled: Int64, scale: Int, minimumFractionDigits: Int = 0) -> String {
        format(Int128(scaled), scale: scale, minimumFractionDigits: minimumFractionDigits)
    }

    public static func format(_ scaled: Int128, scale: Int, minimumFractionDigits: Int = 0) -> String {
        let negative = scaled < 0
        let magnitude = scaled.magnitude
        let divisor = UInt128(powerOfTen(scale))
        let integerPart = magnitude / divisor
        var fraction = String(magnitude % divisor)
        fraction = String(repeating: "0", count: scale - fraction.count) + fraction
        while fraction.count > minimumFractionDigits, fraction.last == "0" {
            fraction.removeLast()
        }
        var result = negative ? "-" : ""
        result += String(integerPart)
        if !fraction.isEmpty {
            result += "." + fraction
        }
        return result
    }

    public static func powerOfTen(_ exponent: Int) -> Int64 {
        precondition(exponent >= 0 && exponent <= 18, "10^\(exponent) does not fit in Int64")
        var result: Int64 = 1
        for _ in 0..<exponent { result *= 10 }
        return result
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private static func appendDigit(_ value: Int64, _ byte: UInt8) throws(ParseError) -> Int64 {
        let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
        let (sum, overflow2) = shifted.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
        guard !overflow1, !overflow2 else { throw .outOfRange }
        return sum
    }
}

/// Rounding rules, always named at the call site.
public enum RoundingRule: Sendable {
    /// Half away from zero: 0.005 -> 0.01, -0.005 -> -0.01. For positive amounts this is
    /// the "round half up" of the pricing rules.
    case halfAwayFromZero
    /// Toward zero: used where a remainder must never be over-counted.
    case towardZero
}

extension RoundingRule {
    /// Divides `numerator` by a positive `denominator` with this rule.
    public func divide(_ numerator: Int128, by denominator: Int128) -> Int128 {
        precondition(denominator > 0, "rounding divides by a positive denominator only")
        let quotient = numerator / denominator
        let remainder = numerator % denominator
        switch self {
        case .towardZero:
            return quotient
        case .halfAwayFromZero:
            if remainder.magnitude * 2 >= denominator.magnitude {
                return numerator < 0 ? quotient - 1 : quotient + 1
            }
            return quotient
        }
    }
}
