import TallyCore

/// Types whose JSON may be a number as well as a string. The decoder hands them the number's
/// exact literal text, so `1.3` and `"1.3"` decode to the same exact amount.
public protocol JSONNumberLiteralDecodable: Decodable {}

extension Credits: JSONNumberLiteralDecodable {}

/// Decodes `Decodable` request types from a `JSONValue`, strictly: a member the type does not
/// read is an unknown field, a wrong JSON type is named with its path, and every failure is a
/// `422 validation_failed` whose `field` says where. Members are read by their snake-case names
/// (`KeyCase`), and fields are named as the JSON spells them.
public enum StrictJSONDecoder {
    public static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws(TallyError) -> T {
        let state = DecodingState()
        let decoded: T
        do {
            decoded = try T(from: StrictDecoder(value: value, codingPath: [], state: state, for: T.self))
        } catch let error as TallyError {
            throw error
        } catch let error as DecodingError {
            throw Self.translate(error)
        } catch {
            throw TallyError.validation("The request body is invalid: \(error)")
        }
        if let unknown = state.firstUnknownField() {
            throw TallyError.validation("Unknown field '\(unknown)'.", field: unknown)
        }
        return decoded
    }

    static func path(_ codingPath: [any CodingKey]) -> String {
        var text = ""
        for key in codingPath {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
        return text
    }

    static func translate(_ error: DecodingError) -> TallyError {
        switch error {
        case .keyNotFound(let key, let context):
            let field = path(context.codingPath + [key])
            return .validation("Field '\(field)' is required.", field: field)
        case .valueNotFound(_, let context):
            let field = path(context.codingPath)
            return .validation("Field '\(field)' must not be null.", field: field)
        case .typeMismatch(_, let context), .dataCorrupted(let context):
            let field = path(context.codingPath)
            var reason = context.debugDescription
            if reason.hasPrefix("Cannot initialize") { reason = "has an unsupported value" }
            return .validation(field.isEmpty ? "The request body \(reason)." : "Field '\(field)' \(reason).", field: field.isEmpty ? nil : field)
        @unknown default:
            return .validation("The request body is invalid.")
        }
    }
}

/// Which members of which objects the decoded types have read.
final class DecodingState {
    final class ObjectUsage {
        let path: [any CodingKey]
        let keys: [String]
        var used: Set<String> = []
        var usedAll = false

        init(path: [any CodingKey], keys: [String]) {
            self.path = path
            self.keys = keys
        }
    }

    var objects: [ObjectUsage] = []

    /// An object that two types read (a body that embeds another's fields) is one object: a
    /// member either of them reads is known.
    func usage(at path: [any CodingKey], keys: [String]) -> ObjectUsage {
        if let existing = objects.last(where: { Self.samePath($0.path, path) }) { return existing }
        let usage = ObjectUsage(path: path, keys: keys)
        objects.append(usage)
        return usage
    }

    static func samePath(_ a: [any CodingKey], _ b: [any CodingKey]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.intValue == $1.intValue && $0.stringValue == $1.stringValue }
    }

    func firstUnknownField() -> String? {
        for object in objects where !object.usedAll {
            if let key = object.keys.first(where: { !object.used.contains($0) }) {
                return StrictJSONDecoder.path(object.path + [AnyKey(key)])
            }
        }
        return nil
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ string: String) { stringValue = string }
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) { stringValue = String(intValue); self.intValue = intValue }
}

struct StrictDecoder: Decoder, SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [any CodingKey]
    let state: DecodingState
    /// Set when the type being decoded accepts a JSON number as its decimal text.
    let numberAsString: Bool
    /// Set when the type being decoded is a `[String: Value]` dictionary, whose keys are data.
    let verbatimKeys: Bool
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init<T>(value: JSONValue, codingPath: [any CodingKey], state: DecodingState, for type: T.Type) {
        self.value = value
        self.codingPath = codingPath
        self.state = state
        numberAsString = type is any JSONNumberLiteralDecodable.Type
        verbatimKeys = type is any StringKeyedDictionary.Type
    }

    /// The coding path holds members as the JSON names them, so that errors name them so too.
    func child<T>(_ value: JSONValue, _ key: any CodingKey, for type: T.Type) -> StrictDecoder {
        StrictDecoder(value: value, codingPath: codingPath + [key], state: state, for: type)
    }

    func mismatch(_ expected: String) -> DecodingError {
        .typeMismatch(Any.self, .init(codingPath: codingPath, debugDescription: "must be \(expected), not \(value.typeName)"))
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else { throw mismatch("an object") }
        var byKey: [String: JSONValue] = [:]
        for member in members {
            guard byKey.updateValue(member.value, forKey: member.key) == nil else {
                let field = StrictJSONDecoder.path(codingPath + [AnyKey(member.key)])
                throw TallyError.validation("Field '\(field)' appears more than once.", field: field)
            }
        }
        let usage = state.usage(at: codingPath, keys: members.map(\.key))
        return KeyedDecodingContainer(StrictKeyedContainer<Key>(decoder: self, members: byKey, usage: usage, verbatimKeys: verbatimKeys))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw mismatch("an array") }
        return StrictUnkeyedContainer(decoder: self, items: items)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    // MARK: SingleValueDecodingContainer

    func decodeNil() -> Bool { value == .null }

    func decode(_ type: Bool.Type) throws -> Bool {
        guard case .bool(let flag) = value else { throw mismatch("a boolean") }
        return flag
    }

    func decode(_ type: String.Type) throws -> String {
        switch value {
        case .string(let text): return text
        case .number(let literal) where numberAsString: return literal
        default: throw mismatch(numberAsString ? "a decimal string or number" : "a string")
        }
    }

    func decode(_ type: Double.Type) throws -> Double {
        guard case .number(let literal) = value, let number = Double(literal) else { throw mismatch("a number") }
        return number
    }

    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }

    func decodeInteger<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        guard case .number(let literal) = value else { throw mismatch("an integer") }
        // JSON Schema's integer is a number with no fraction: 805, 805.0 and 8.05e2 are all 805.
        guard let whole = Self.wholeNumberText(literal) else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "must be a whole number"))
        }
        guard let number = T(whole) else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "is out of range"))
        }
        return number
    }

    /// The integer a JSON number literal denotes, as plain digits, or nil when it has a fraction
    /// (or is too large to be worth reading: more than 40 digits).
    static func wholeNumberText(_ literal: String) -> String? {
        var text = Substring(literal)
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            guard let value = Int(text[text.index(after: e)...].drop(while: { $0 == "+" })), abs(value) <= 40 else { return nil }
            exponent = value
            text = text[..<e]
        }
        let negative = text.hasPrefix("-")
        if negative { text = text.dropFirst() }
        var digits = String(text)
        if let dot = digits.firstIndex(of: ".") {
            exponent -= digits.distance(from: digits.index(after: dot), to: digits.endIndex)
            digits.remove(at: dot)
        }
        if exponent > 0 {
            digits += String(repeating: "0", count: exponent)
        } else if exponent < 0 {
            guard digits.suffix(-exponent).allSatisfy({ $0 == "0" }) else { return nil }
            digits = String(digits.dropLast(-exponent))
        }
        digits = String(digits.drop(while: { $0 == "0" }))
        if digits.isEmpty { return "0" }
        guard digits.count <= 40 else { return nil }
        return negative ? "-" + digits : digits
    }

    func decode(_ type: Int.Type) throws -> Int { try decodeInteger(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try decodeInteger(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decodeInteger(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decodeInteger(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decodeInteger(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try decodeInteger(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decodeInteger(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decodeInteger(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decodeInteger(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decodeInteger(type) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == JSONValue.self { return value as! T }
        return try T(from: self)
    }
}

struct StrictKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: StrictDecoder
    let members: [String: JSONValue]
    let usage: DecodingState.ObjectUsage
    let verbatimKeys: Bool

    var codingPath: [any CodingKey] { decoder.codingPath }
    /// The members as the JSON names them (a name in snake case reads back as itself).
    var allKeys: [Key] {
        usage.usedAll = true
        return usage.keys.compactMap { Key(stringValue: $0) }
    }

    /// The member a key reads: its snake-case name, or a dictionary's key as it is.
    private func name(_ key: Key) -> AnyKey {
        AnyKey(verbatimKeys ? key.stringValue : KeyCase.snakeCase(key.stringValue))
    }

    func contains(_ key: Key) -> Bool {
        let name = name(key).stringValue
        usage.used.insert(name)
        return members[name] != nil
    }

    private func member(_ key: Key) throws -> (JSONValue, AnyKey) {
        let name = name(key)
        usage.used.insert(name.stringValue)
        guard let value = members[name.stringValue] else {
            throw DecodingError.keyNotFound(name, .init(codingPath: codingPath, debugDescription: "required"))
        }
        return (value, name)
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        try member(key).0 == .null
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let (value, name) = try member(key)
        if value == .null, !(T.self == JSONValue.self) {
            throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath + [name], debugDescription: "null"))
        }
        return try decoder.child(value, name, for: T.self).decode(T.self)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        let name = name(key)
        usage.used.insert(name.stringValue)
        guard let value = members[name.stringValue], value != .null else { return nil }
        return try decoder.child(value, name, for: T.self).decode(T.self)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        let (value, name) = try member(key)
        return try decoder.child(value, name, for: Never.self).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let (value, name) = try member(key)
        return try decoder.child(value, name, for: Never.self).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { decoder }
    func superDecoder(forKey key: Key) throws -> any Decoder {
        let (value, name) = try member(key)
        return decoder.child(value, name, for: Never.self)
    }
}

struct StrictUnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: StrictDecoder
    let items: [JSONValue]
    var currentIndex = 0

    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private mutating func next() throws -> (JSONValue, AnyKey) {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath, debugDescription: "has too few items"))
        }
        defer { currentIndex += 1 }
        return (items[currentIndex], AnyKey(intValue: currentIndex))
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { return false }
        if items[currentIndex] == .null {
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (value, key) = try next()
        return try decoder.child(value, key, for: T.self).decode(T.self)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let (value, key) = try next()
        return try decoder.child(value, key, for: Never.self).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let (value, key) = try next()
        return try decoder.child(value, key, for: Never.self).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let (value, key) = try next()
        return decoder.child(value, key, for: Never.self)
    }
}

extension JSONValue: Decodable {
    /// Free-form JSON (operation `params`, `metadata`): taken as written.
    public init(from decoder: any Decoder) throws {
        if let strict = decoder as? StrictDecoder {
            self = strict.value
            return
        }
        throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "JSONValue decodes with StrictJSONDecoder only"))
    }
}
