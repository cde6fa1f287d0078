import TallyCore

/// A stored value outside its closed set (a bucket source, an entry type, a policy): corruption,
/// or a row written by a newer migration than this binary knows. Reading it as some default would
/// quietly mis-bill, so the read fails (a 500, logged with the column and value) instead.
public struct UnknownStoredValue: Error, CustomStringConvertible {
    public let column: String
    public let value: String

    public var description: String { "unknown stored \(column) '\(value)'" }
}

enum StoredValue {
    /// The case of `type` stored as `raw`, or `UnknownStoredValue`.
    static func decode<Value: RawRepresentable>(_ type: Value.Type, _ raw: String, column: String) throws -> Value where Value.RawValue == String {
        guard let value = Value(rawValue: raw) else { throw UnknownStoredValue(column: column, value: raw) }
        return value
    }

    static func currency(_ code: String, column: String = "currency") throws -> Currency {
        guard let currency = Currency.named(code) else { throw UnknownStoredValue(column: column, value: code) }
        return currency
    }
}
