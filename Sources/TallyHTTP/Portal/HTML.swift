import Foundation
import TallyCore

/// A piece of HTML. Text interpolated into it is escaped; only other `HTML` values go in as
/// they are, so a page cannot forget to escape what an organisation or a client wrote.
struct HTML: ExpressibleByStringInterpolation, Sendable {
    let text: String

    init(stringLiteral value: String) { text = value }
    init(_ html: HTML) { text = html.text }
    init(stringInterpolation: Interpolation) { text = stringInterpolation.text }
    private init(raw: String) { text = raw }

    static let empty = HTML(raw: "")

    struct Interpolation: StringInterpolationProtocol {
        var text = ""

        init(literalCapacity: Int, interpolationCount: Int) {
            text.reserveCapacity(literalCapacity + interpolationCount * 16)
        }

        mutating func appendLiteral(_ literal: String) { text += literal }
        mutating func appendInterpolation(_ value: String) { text += HTML.escape(value) }
        mutating func appendInterpolation(_ value: String?) { if let value { text += HTML.escape(value) } }
        mutating func appendInterpolation(_ value: Int) { text += String(value) }
        mutating func appendInterpolation(_ value: Int64) { text += String(value) }
        mutating func appendInterpolation(_ html: HTML) { text += html.text }
        mutating func appendInterpolation(_ list: [HTML]) { for html in list { text += html.text } }
    }

    /// `&`, `<`, `>`, `"` and `'` as entities: safe in text and in quoted attributes.
    static func escape(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for character in value.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// Joins pieces (`[HTML].joined()` for lists built with map).
    static func join(_ pieces: [HTML], separator: String = "") -> HTML {
        HTML(raw: pieces.map(\.text).joined(separator: separator))
    }
}

/// `application/x-www-form-urlencoded` (a form's body or a query string): `+` is a space, `%XX`
/// a byte of UTF-8. A name given twice keeps its first value.
struct FormFields: Sendable {
    private(set) var values: [String: String] = [:]

    init(_ encoded: String) {
        for pair in encoded.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.decode(parts[0])
            let value = parts.count > 1 ? Self.decode(parts[1]) : ""
            if values[name] == nil { values[name] = value }
        }
    }

    subscript(_ name: String) -> String? {
        guard let value = values[name] else { return nil }
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty ? nil : trimmed
    }

    private static func decode(_ part: Substring) -> String {
        let spaced = part.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }

    /// URL query encoding of one value (for links the pages build).
    static func encode(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }
}

/// How the portal shows numbers, money and dates to people.
enum Display {
    /// Credits with thousands separators, exact: "4,570", "-1.3", "137.6".
    static func credits(_ value: Credits) -> String {
        grouped(value.description)
    }

    /// "$250.00", "€9.90", or "12.50 CHF" for currencies without a symbol here.
    static func money(_ value: Money) -> String {
        let amount = value.amountText
        let negative = amount.hasPrefix("-")
        let digits = grouped(negative ? String(amount.dropFirst()) : amount)
        let sign = negative ? "-" : ""
        switch value.currency.code {
        case "USD": return "\(sign)$\(digits)"
        case "EUR": return "\(sign)€\(digits)"
        case "GBP": return "\(sign)£\(digits)"
        default: return "\(sign)\(digits) \(value.currency.code)"
        }
    }

    private static func grouped(_ decimal: String) -> String {
        let negative = decimal.hasPrefix("-")
        let unsigned = negative ? decimal.dropFirst() : Substring(decimal)
        let parts = unsigned.split(separator: ".", maxSplits: 1)
        let whole = Array(parts.first ?? "0")
        var out = ""
        for (index, digit) in whole.enumerated() {
            if index > 0, (whole.count - index) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        if parts.count > 1 { out += "." + parts[1] }
        return (negative ? "-" : "") + out
    }

    /// "3 Dec 2026, 14:05" in the organisation's time zone.
    static func dateTime(_ instant: Instant, timezone: String) -> String {
        let c = components(instant, timezone: timezone)
        return "\(c.day ?? 1) \(monthName(c.month ?? 1)) \(c.year ?? 1970), \(twoDigits(c.hour ?? 0)):\(twoDigits(c.minute ?? 0))"
    }

    /// "3 Dec 2026" in the organisation's time zone.
    static func date(_ instant: Instant, timezone: String) -> String {
        let c = components(instant, timezone: timezone)
        return "\(c.day ?? 1) \(monthName(c.month ?? 1)) \(c.year ?? 1970)"
    }

    /// "November 2026" for "2026-11".
    static func month(_ yearMonth: String) -> String {
        let parts = yearMonth.split(separator: "-")
        guard parts.count == 2, let month = Int(parts[1]), (1...12).contains(month) else { return yearMonth }
        return "\(fullMonthNames[month - 1]) \(parts[0])"
    }

    private static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    private static let fullMonthNames = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                                         "October", "November", "December"]

    private static func monthName(_ month: Int) -> String { monthNames[max(0, min(11, month - 1))] }
    private static func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }

    private static func components(_ instant: Instant, timezone: String) -> DateComponents {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: timezone) ?? TimeZone(identifier: "UTC")!
        // Display only: seconds as a Double are exact far beyond any date shown here.
        let date = Date(timeIntervalSince1970: TimeInterval(instant.secondsSinceEpoch))
        return calendar.dateComponents([.year, .month, .day, .hour, .minute], from: date)
    }
}
